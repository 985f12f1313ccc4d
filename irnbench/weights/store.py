"""Where each tagged weights file lives (shipped in a plugin package or in the user cache),
how a file is found, hashed and checked, and the per-setting lock of the cache.

Every writer of a cache pair (weights + sidecar) holds ``weights_lock(path)`` exclusively, every
reader shares it, so a reader never sees the weights of one install with the sidecar of another.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from irnbench.errors import WeightsNotFound
from irnbench.weights.cards import PretrainedCfg
from irnbench.weights.tags import DEFAULT_TRAIN_TAG, check_tag

try:
    import fcntl
except ImportError:  # not POSIX: no lock (unique temp files and atomic renames remain)
    fcntl = None  # type: ignore[assignment]

__all__ = ["user_home", "cache_weights_dir", "cache_weights_path", "legacy_cache_path",
           "cached_path", "cached_tags", "sha256_file", "verify", "shipped_cfgs",
           "weights_lock", "reading", "in_cache", "check_cache", "CACHE_WHAT"]

#: How errors name the weights cache (it moves with ``$IRNBENCH_HOME``).
CACHE_WHAT = "the weights cache ($IRNBENCH_HOME/weights)"


def user_home() -> Path:
    """irnbench's user folder: ``$IRNBENCH_HOME`` or the platform's user cache dir."""
    env = os.environ.get("IRNBENCH_HOME")
    if env:
        return Path(env).expanduser()
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    elif os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "irnbench"


def cache_weights_dir() -> Path:
    return user_home() / "weights"


def cache_weights_path(method: str, task_key: str, tag: str = DEFAULT_TRAIN_TAG) -> Path:
    """Where the ``tag`` weights of a method and setting live in the user cache."""
    return cache_weights_dir() / method / f"{task_key}.{check_tag(tag)}.safetensors"


def legacy_cache_path(method: str, task_key: str) -> Path:
    """Where ``irnbench train`` installed weights before tags; such a file is tag ``local``."""
    return cache_weights_dir() / method / f"{task_key}.safetensors"


def cached_path(method: str, task_key: str, tag: str) -> Path | None:
    """The cache file of ``tag`` (a pre-tag file counts as ``local``), or None."""
    path = cache_weights_path(method, task_key, tag)
    if path.exists():
        return path
    legacy = legacy_cache_path(method, task_key)
    if tag == DEFAULT_TRAIN_TAG and legacy.exists():
        return legacy
    return None


def cached_tags(method: str, task_key: str) -> list[str]:
    """Tags with a file in the user cache for this method and setting, sorted."""
    folder = cache_weights_dir() / method
    tags = set()
    for f in folder.glob(f"{task_key}.*safetensors"):
        rest = f.name[len(task_key):-len(".safetensors")]
        if rest == "":
            tags.add(DEFAULT_TRAIN_TAG)
        elif rest.startswith(".") and "." not in rest[1:]:
            tags.add(rest[1:])
    return sorted(tags)


def sha256_file(path: str | Path) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks (weights, archives, dataset files)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path: str | Path, expected_sha256: str | None, data: bytes | None = None) -> str:
    """The sha256 of a weights file (of ``data``, its bytes, when given); raise when it does not
    match the recorded digest (when there is one)."""
    got = hashlib.sha256(data).hexdigest() if data is not None else sha256_file(path)
    if expected_sha256 and got != expected_sha256:
        raise WeightsNotFound(
            f"weights file {path} is corrupt or replaced: sha256 {got[:12]}… != "
            f"{expected_sha256[:12]}…"
        )
    return got


def shipped_cfgs(package_dir: str | Path, method: str | None = None,
                 paper: str = "") -> dict[str, PretrainedCfg]:
    """The ``PretrainedCfg`` of every weights file shipped in ``package_dir/weights``
    (only ``method``'s when given: a plugin package may ship weights of several methods).

    Each ``<task_key>.safetensors`` has a JSON sidecar written by ``irnbench train`` (and copied
    by ``scripts/ship_weights.py``); the sidecar is the one place that holds its sha256, label
    and training record, so the code never repeats them.
    """
    folder = Path(package_dir) / "weights"
    cfgs: dict[str, PretrainedCfg] = {}
    for side in sorted(folder.glob("*.json")):
        meta = json.loads(side.read_text())
        if meta.get("kind") != "irnbench-weights" or method not in (None, meta.get("method")):
            continue
        training = {k: meta[k] for k in ("iteration", "wall", "commands", "data", "seed",
                                          "irnbench_version", "commit", "machine",
                                          "final_val_psnr_y", "final_val_psnr_rgb",
                                          "preset_config", "init", "steps_in_all", "rebuild")
                    if k in meta}
        cfgs[meta["task_key"]] = PretrainedCfg(
            file=f"weights/{side.stem}.safetensors",
            sha256=meta["sha256"],
            task_key=meta["task_key"],
            label=meta["label"],
            preset=meta.get("preset", "cpu"),
            licence=meta.get("licence", "MIT (irnbench)"),
            paper=paper,
            training=training,
        )
    return cfgs


# -- the cache's lock and checks -------------------------------------------------------------
def check_cache(write: bool = True) -> Path:
    """The weights cache folder; one ``InvalidSetting`` line naming ``$IRNBENCH_HOME`` (exit 2)
    when it is under a file, or (``write``) cannot be written. Nothing is created."""
    from irnbench.errors import InvalidSetting
    from irnbench.runfolder import check_writable

    folder = cache_weights_dir()
    if write:
        check_writable(folder, CACHE_WHAT)
        return folder
    base = folder
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise InvalidSetting(f"{CACHE_WHAT} {folder} cannot be read ({base} is not a folder)")
    return folder


def in_cache(path: str | Path) -> bool:
    """Whether ``path`` is a file of the user weights cache (so it is read under its lock)."""
    try:
        Path(path).resolve().relative_to(cache_weights_dir().resolve())
    except (ValueError, OSError):
        return False
    return True


def _lock_path(path: Path) -> Path:
    """``.<task_key>.<tag>.lock`` beside ``<task_key>.<tag>.safetensors``."""
    return path.with_name(f".{path.name.removesuffix('.safetensors')}.lock")


_held = threading.local()  #: lock path → [shared, depth] of the locks this thread holds


def _open_lock(path: Path, shared: bool) -> int | None:
    """A descriptor of the lock file (created when it can be); ``None`` for a reader of a
    cache it cannot write (a read-only cache: nobody installs there)."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        if not shared or exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
    try:
        return os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None


def _acquire(path: Path, shared: bool) -> int | None:
    """Hold ``path``'s flock; retry when its holder removed the file meanwhile, so two processes
    never hold locks of different files under one name."""
    while True:
        fd = _open_lock(path, shared)
        if fd is None:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            mine, now = os.fstat(fd), os.stat(path)
        except FileNotFoundError:
            os.close(fd)
            continue
        except BaseException:
            os.close(fd)
            raise
        if (mine.st_ino, mine.st_dev) == (now.st_ino, now.st_dev):
            return fd
        os.close(fd)


def _release(path: Path, fd: int) -> None:
    """Remove the lock file when this is its only holder (an exclusive lock taken without
    waiting; a waiter then finds the file gone and opens a new one), and let go."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        pass  # others hold it: they remove it
    else:
        with contextlib.suppress(OSError):
            path.unlink()
    finally:
        os.close(fd)


@contextlib.contextmanager
def weights_lock(path: str | Path, shared: bool = False) -> Iterator[None]:
    """Hold the lock of one cache weights file (one method, task setting and tag):
    exclusive to install or remove the pair, ``shared`` to read it.

    A ``flock`` on ``.<task_key>.<tag>.lock`` beside the weights (POSIX), removed by its last
    holder. Re-entrant within a thread (a fetch holds it around its download and install);
    a shared holder cannot take it exclusively. Writers create the folder; a reader of a
    missing folder, or of a cache it cannot write, reads without a lock.
    """
    path = Path(path)
    lock = _lock_path(path)
    key = os.path.abspath(lock)
    held = getattr(_held, "locks", None)
    if held is None:
        held = _held.locks = {}
    if key in held:
        if held[key][0] and not shared:
            raise RuntimeError(f"{lock}: a shared holder cannot take the lock exclusively")
        held[key][1] += 1
        try:
            yield
        finally:
            held[key][1] -= 1
        return
    if fcntl is None:
        yield
        return
    if shared and not path.parent.is_dir():
        yield
        return
    if not shared:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(lock, shared)
    if fd is None:
        yield
        return
    held[key] = [shared, 1]
    try:
        yield
    finally:
        del held[key]
        _release(lock, fd)


@contextlib.contextmanager
def reading(path: str | Path) -> Iterator[None]:
    """The shared lock of ``path`` when it is a cache file (else nothing): hold it while the
    sidecar and the weights are read, so both come from one install."""
    if in_cache(path):
        with weights_lock(path, shared=True):
            yield
    else:
        yield
