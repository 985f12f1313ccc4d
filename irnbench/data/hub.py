"""Standard benchmark sets: fetch, verify, extract and cache them.

A card (``datasets/*.yaml``) with ``source: hub`` names a Hugging Face Hub file
(``hub: {repo, repo_type, filename, revision}``), one with ``source: url`` a ``url:`` (``file://``
works too). ``sha256:`` pins the archive's digest; where it is ``null`` the card is *verified on
first use*: the fetch checks the digest the hub publishes for the file (its LFS sha256) when it
can and records the digest it saw in the cache's ``fetch.json``.

Cache layout (``$IRNBENCH_HOME`` or the platform's user cache dir)::

    datasets/<name>/images/...    the decoded-on-demand image files, as in the archive
    datasets/<name>/fetch.json    source, sha256, how it was verified, date, image count

Extraction happens in a temporary folder inside ``datasets/`` that replaces the final folder
(``os.replace``) only once everything succeeded; on any failure the temporary folder is removed
and an existing cached copy is left untouched. Images are read by the same code as bundled and
local sets (:func:`irnbench.data.decode.load_image`), so decoding and modcrop rules are shared.

Offline (``HF_HUB_OFFLINE=1``: only the local HF cache is read) or with the hub unreachable (one
metadata request, hard-bounded at 3 s, DNS included), a set that is not cached fails within
seconds with a one-line message naming the command to run on a connected machine and the ways to
point irnbench at a local copy. Pre-downloaded archives are installed through the same
verify/extract code: ``irnbench datasets fetch NAME --from DIR``, ``$IRNBENCH_ARCHIVES`` (a folder
searched by every fetch) or ``--datasets DIR/Set5_HR.tar.gz`` (an archive, or a folder of them).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import tarfile
import tempfile
import threading
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

from irnbench.data.cards import DatasetCard, list_image_files
from irnbench.errors import DatasetUnavailable
from irnbench.weights import sha256_file

__all__ = [
    "ARCHIVE_SUFFIXES",
    "archive_name",
    "cache_root",
    "cached_dir",
    "fetch",
    "fetch_record",
    "install_archive",
    "is_cached",
    "is_pinned",
    "load_hf",
    "match_archive",
    "offline_message",
    "source_kind",
]

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz", ".zip")
CONNECT_TIMEOUT = 3.0  #: seconds for the reachability probe / a URL's first answer
ETAG_TIMEOUT = 3.0  #: seconds for the hub's metadata request (HEAD)
READ_TIMEOUT = 30.0  #: seconds a download may stall once the server has answered
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_TRUE = {"1", "true", "yes", "on"}


# ------------------------------------------------------------------------------------------
# where things are


def cache_root() -> Path:
    """``$IRNBENCH_HOME/datasets`` (or the platform user cache's ``irnbench/datasets``)."""
    from irnbench.weights import user_home

    return user_home() / "datasets"


def cached_dir(name: str) -> Path:
    return cache_root() / name


def fetch_record(name: str) -> dict[str, Any] | None:
    """The ``fetch.json`` of a cached set, or ``None`` when it is not cached."""
    path = cached_dir(name) / "fetch.json"
    if not path.is_file() or not (cached_dir(name) / "images").is_dir():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def is_cached(card: DatasetCard) -> bool:
    rec = fetch_record(card.name)
    if rec is None:
        return False
    pinned = card.extra.get("sha256")
    return not pinned or rec.get("sha256") == pinned


def source_kind(card: DatasetCard) -> str:
    """``bundled``, ``hub`` or ``url``."""
    if card.source in ("hub", "url", "bundled"):
        return card.source
    if card.extra.get("hub"):
        return "hub"
    if card.extra.get("url"):
        return "url"
    return card.source


def is_pinned(card: DatasetCard) -> bool:
    """Whether the card carries the archive's sha256 (else: verified on first use)."""
    return bool(card.extra.get("sha256"))


def archive_name(card: DatasetCard) -> str | None:
    """The file name of the card's archive (e.g. ``Set5_HR.tar.gz``)."""
    hub = card.extra.get("hub") or {}
    if hub.get("filename"):
        return Path(str(hub["filename"])).name
    url = card.extra.get("url")
    if url:
        return Path(urllib.parse.urlparse(str(url)).path).name or None
    return None


def _is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def match_archive(path: Path, cards: dict[str, DatasetCard]) -> DatasetCard | None:
    """The card whose archive has ``path``'s file name."""
    for card in cards.values():
        if source_kind(card) != "bundled" and archive_name(card) == path.name:
            return card
    return None


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def _hf_cache_dir() -> Path:
    """huggingface_hub's cache, read from the environment now (its constants are import-time)."""
    env = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if env:
        return Path(env).expanduser()
    home = os.environ.get("HF_HOME")
    if home:
        return Path(home).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def _hf_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


# ------------------------------------------------------------------------------------------
# messages


def offline_message(card: DatasetCard, why: str) -> str:
    """One line: what went wrong, what to run on a connected machine, how to use a local copy."""
    arch = archive_name(card) or "the archive"
    home = cache_root()
    return (
        f"dataset {card.name!r} is not cached and cannot be downloaded ({why}). "
        f"On a connected machine run `irnbench datasets fetch {card.name}`, then copy that "
        f"machine's $IRNBENCH_HOME/datasets/{card.name} folder to {home / card.name} "
        f"(or point IRNBENCH_HOME at a copy of its cache); "
        f"or download {arch} yourself and run `irnbench datasets fetch {card.name} --from DIR` "
        f"(or set IRNBENCH_ARCHIVES=DIR, or pass --datasets DIR/{arch}); "
        f"or pass --datasets PATH to a folder of the images."
    )


# ------------------------------------------------------------------------------------------
# network helpers


def progress_bar(total: int | None, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                disable=not enabled or None, leave=False)


def _download_url(card: DatasetCard, dest: Path, progress: bool) -> dict[str, Any]:
    url = str(card.extra["url"])
    scheme = urllib.parse.urlparse(url).scheme
    if scheme in ("http", "https", "ftp"):
        if offline():
            raise DatasetUnavailable(offline_message(card, "offline mode: HF_HUB_OFFLINE is set"))
    try:
        resp = bounded(lambda: urllib.request.urlopen(url, timeout=READ_TIMEOUT),  # noqa: S310
                        CONNECT_TIMEOUT)
        with resp:
            total = resp.headers.get("Content-Length")
            with open(dest, "wb") as f, progress_bar(
                int(total) if total else None, card.name, progress
            ) as bar:
                for chunk in iter(lambda: resp.read(1 << 20), b""):
                    f.write(chunk)
                    bar.update(len(chunk))
    except (OSError, ValueError, TimeoutError) as exc:
        if scheme == "file":
            raise DatasetUnavailable(f"dataset {card.name!r}: cannot read {url}: {exc}") from exc
        raise DatasetUnavailable(offline_message(card, f"download failed: {exc}")) from exc
    return {"kind": "url", "url": url}


def bounded(fn, timeout: float):
    """Run ``fn()`` in a daemon thread; raise :class:`TimeoutError` after ``timeout`` s.

    A hard bound on anything that might wait on the network (DNS, connect, a silent server).
    """
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise TimeoutError(f"no answer within {timeout:.0f} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _hub_metadata(repo: str, filename: str, repo_type: str, revision: str):
    """The hub's metadata of a file (one HEAD request, bounded): its etag is the LFS sha256."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(repo, filename, repo_type=repo_type, revision=revision,
                     endpoint=_hf_endpoint())
    return bounded(lambda: get_hf_file_metadata(url, timeout=ETAG_TIMEOUT,
                                                 endpoint=_hf_endpoint()),
                    ETAG_TIMEOUT)


def _download_hub(card: DatasetCard, progress: bool) -> tuple[Path, dict[str, Any], str | None]:
    """Path of the archive in the HF cache, source info, and the hub's published sha256.

    Online, one bounded metadata request decides whether the hub answers (and gives the LFS
    sha256); offline (``HF_HUB_OFFLINE``) or when it does not answer, only the local HF cache is
    read (``try_to_load_from_cache``: no network at all).
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    hub = card.extra.get("hub") or {}
    repo = str(hub["repo"])
    filename = str(hub["filename"])
    repo_type = str(hub.get("repo_type", "dataset"))
    revision = str(hub.get("revision") or "main")
    info = {"kind": "hub", "repo": repo, "repo_type": repo_type, "filename": filename,
            "revision": revision}
    where = f"{repo}/{filename}@{revision}"
    why: str | None = "offline mode: HF_HUB_OFFLINE is set" if offline() else None
    published: str | None = None
    if why is None:
        try:
            meta = _hub_metadata(repo, filename, repo_type, revision)
            etag = (meta.etag or "").strip('"').lower()
            published = etag if _HEX64.match(etag) else None
        except (EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError) as exc:
            raise DatasetUnavailable(
                f"dataset {card.name!r}: the hub has no {where} ({type(exc).__name__})"
            ) from exc
        except Exception as exc:  # noqa: BLE001 - timeouts, DNS, refused, HTTP 5xx
            why = f"the hub at {_hf_endpoint()} did not answer: {type(exc).__name__}: " + (
                str(exc).splitlines()[0][:160] if str(exc) else "")
    if why is not None:
        # Local HF cache only. try_to_load_from_cache is hf_hub_download(local_files_only=True)
        # minus the header building, which in huggingface_hub 2.x may itself try the network.
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(repo, filename, cache_dir=str(_hf_cache_dir()),
                                     revision=revision, repo_type=repo_type)
        if not isinstance(hit, str):
            raise DatasetUnavailable(offline_message(card, why))
        path = Path(hit)
        return path, info, _blob_digest(path)
    kwargs: dict[str, Any] = dict(
        repo_type=repo_type, revision=revision, cache_dir=str(_hf_cache_dir()),
        etag_timeout=ETAG_TIMEOUT, endpoint=_hf_endpoint(),
    )
    if not progress:
        from tqdm.auto import tqdm as _tqdm

        class _Silent(_tqdm):
            def __init__(self, *a, **k):
                k["disable"] = True
                super().__init__(*a, **k)

        kwargs["tqdm_class"] = _Silent
    try:
        path = Path(hf_hub_download(repo, filename, **kwargs))
    except Exception as exc:  # noqa: BLE001 - HTTP errors, timeouts during the download
        msg = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise DatasetUnavailable(
            f"dataset {card.name!r}: download of {where} failed: {type(exc).__name__}: {msg}; "
            f"nothing was installed"
        ) from exc
    return path, info, published or _blob_digest(path)


def _blob_digest(path: Path) -> str | None:
    """The hub cache names an LFS file's blob by its sha256: the digest the hub published."""
    blob = path.resolve().name
    return blob if _HEX64.match(blob) else None


# ------------------------------------------------------------------------------------------
# verify and extract


def _extract(archive: Path, dest: Path) -> None:
    name = archive.name.lower()
    if name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise zipfile.BadZipFile(f"corrupt member {bad}")
            root = dest.resolve()
            for member in zf.infolist():
                target = (dest / member.filename).resolve()
                if root not in target.parents and target != root:
                    raise zipfile.BadZipFile(f"unsafe path {member.filename!r}")
            zf.extractall(dest)
    else:
        with tarfile.open(archive) as tf:
            if hasattr(tarfile, "data_filter"):
                tf.extractall(dest, filter="data")
            else:  # Python without extraction filters: refuse unsafe members ourselves
                root = dest.resolve()
                for m in tf.getmembers():
                    target = (dest / m.name).resolve()
                    if m.issym() or m.islnk() or (root not in target.parents and target != root):
                        raise tarfile.TarError(f"unsafe member {m.name!r}")
                tf.extractall(dest)  # noqa: S202 - members checked above


def _images_root(extracted: Path, subdir: str | None) -> Path:
    """The folder whose images form the set: ``subdir`` or the archive's single top folder."""
    if subdir:
        root = extracted / subdir
        if not root.is_dir():
            raise DatasetUnavailable(f"archive has no folder {subdir!r}")
        return root
    root = extracted
    while True:
        entries = [p for p in root.iterdir() if not p.name.startswith((".", "__MACOSX"))]
        if len(entries) == 1 and entries[0].is_dir():
            root = entries[0]
        else:
            return root


def install_archive(
    card: DatasetCard,
    archive: Path,
    source: dict[str, Any],
    published_sha256: str | None = None,
) -> Path:
    """Verify ``archive`` and extract it atomically into the cache; return the images folder.

    The expected digest is the card's ``sha256`` (pinned), else ``published_sha256`` (the hub's
    LFS digest), else none (the digest seen is recorded: trust on first use). Raises
    :class:`DatasetUnavailable` on a mismatch, a damaged archive or a wrong image count, leaving
    any existing cached copy as it was and nothing half-extracted behind.
    """
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    got = sha256_file(archive)
    pinned = card.extra.get("sha256")
    expected = pinned or published_sha256
    if expected and got != expected:
        what = "pinned in the card" if pinned else "published by the hub"
        raise DatasetUnavailable(
            f"dataset {card.name!r}: checksum mismatch for {archive.name}: sha256 {got[:16]}… "
            f"!= {expected[:16]}… ({what}); the file is corrupt or was replaced; "
            f"the cache was left unchanged"
        )
    verified = "pinned" if pinned else ("hub-lfs" if published_sha256 else "first-use")
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{card.name}-", dir=root))
    old: Path | None = None
    try:
        extracted = tmp / "extract"
        extracted.mkdir()
        try:
            _extract(archive, extracted)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            raise DatasetUnavailable(
                f"dataset {card.name!r}: archive {archive.name} is damaged or cut short "
                f"({type(exc).__name__}: {exc}); nothing was installed"
            ) from exc
        src = _images_root(extracted, card.extra.get("subdir"))
        files = list_image_files(src)
        files = [f for f in files if not any(p.startswith((".", "__MACOSX"))
                                             for p in f.relative_to(src).parts)]
        if not files:
            raise DatasetUnavailable(
                f"dataset {card.name!r}: archive {archive.name} holds no image files"
            )
        if card.images and len(files) != int(card.images):
            raise DatasetUnavailable(
                f"dataset {card.name!r}: archive {archive.name} holds {len(files)} images, "
                f"the card says {card.images}; nothing was installed"
            )
        final_tmp = tmp / "final"
        images = final_tmp / "images"
        for f in files:
            target = images / f.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(f, target)
        record = {
            "name": card.name,
            "source": source,
            "archive": archive.name,
            "sha256": got,
            "verified": verified,
            "images": len(files),
            "bytes": archive.stat().st_size,
            "fetched": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        (final_tmp / "fetch.json").write_text(json.dumps(record, indent=2) + "\n")
        final = cached_dir(card.name)
        if final.exists():
            old = tmp / "previous"
            os.replace(final, old)
        try:
            os.replace(final_tmp, final)
        except OSError:
            if old is not None:
                os.replace(old, final)
                old = None
            raise
        return final / "images"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _local_archive(card: DatasetCard, folders: list[Path]) -> Path | None:
    name = archive_name(card)
    if not name:
        return None
    for folder in folders:
        cand = Path(folder).expanduser() / name
        if cand.is_file():
            return cand
    return None


def fetch(
    card: DatasetCard,
    *,
    force: bool = False,
    from_dir: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """Make a hub/URL set available in the cache and return its images folder.

    A cached set is a no-op (nothing is downloaded) unless ``force``. Pre-downloaded archives are
    looked for, by the card's archive file name, in ``from_dir`` and ``$IRNBENCH_ARCHIVES``
    (``os.pathsep``-separated) before any network access.
    """
    kind = source_kind(card)
    if kind == "bundled":
        return card.local_dir()
    if kind not in ("hub", "url"):
        raise DatasetUnavailable(f"dataset {card.name!r}: unknown source {card.source!r}")
    if not force and is_cached(card):
        return cached_dir(card.name) / "images"
    folders = [Path(from_dir)] if from_dir else []
    folders += [Path(p) for p in os.environ.get("IRNBENCH_ARCHIVES", "").split(os.pathsep) if p]
    local = _local_archive(card, folders)
    if local is not None:
        return install_archive(card, local, {"kind": "local", "path": str(local.resolve())})
    if from_dir:
        raise DatasetUnavailable(
            f"dataset {card.name!r}: {archive_name(card)} not found in {from_dir}"
        )
    if kind == "hub":
        path, info, published = _download_hub(card, progress)
        return install_archive(card, path, info, published)
    cache_root().mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".download-{card.name}-", dir=cache_root()))
    try:
        dest = tmp / (archive_name(card) or "archive")
        info = _download_url(card, dest, progress)
        return install_archive(card, dest, info)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def install_from_path(path: Path, cards: dict[str, DatasetCard]) -> list[DatasetCard]:
    """Install the card archives found at ``path`` (an archive, or a folder of them)."""
    candidates = [path] if path.is_file() else sorted(p for p in path.iterdir() if _is_archive(p))
    installed = []
    for arch in candidates:
        card = match_archive(arch, cards)
        if card is None:
            continue
        install_archive(card, arch, {"kind": "local", "path": str(arch.resolve())})
        installed.append(card)
    return installed


# ------------------------------------------------------------------------------------------
# datasets.load_dataset


def load_hf(name: str, *, fetch_missing: bool = True, split: str = "train"):
    """The cached set as a ``datasets.Dataset`` via ``load_dataset("imagefolder", data_dir=…)``.

    Column ``image`` holds PIL images; for pixel-exact tensors under irnbench's decoding rules
    use :func:`irnbench.data.resolve_dataset` (both read the same cached files).
    """
    import datasets
    from irnbench.plugins import registered_datasets

    cards = registered_datasets()
    card = cards.get(name.lower())
    if card is None:
        from irnbench.errors import UnknownNameError

        raise UnknownNameError("dataset", name, list(cards))
    if source_kind(card) == "bundled":
        folder = card.local_dir()
    elif fetch_missing:
        folder = fetch(card, progress=False)
    elif is_cached(card):
        folder = cached_dir(card.name) / "images"
    else:
        raise DatasetUnavailable(offline_message(card, "not fetched"))
    return datasets.load_dataset("imagefolder", data_dir=str(folder), split=split,
                                 cache_dir=str(cache_root() / ".hf-datasets"))
