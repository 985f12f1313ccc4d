"""Where each tagged weights file lives (shipped in a plugin package or in the user cache),
and how a file is found, hashed and checked."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from irnbench.errors import WeightsNotFound
from irnbench.weights.cards import PretrainedCfg
from irnbench.weights.tags import DEFAULT_TRAIN_TAG, check_tag

__all__ = ["user_home", "cache_weights_dir", "cache_weights_path", "legacy_cache_path",
           "cached_path", "cached_tags", "sha256_file", "verify", "shipped_cfgs"]


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


def verify(path: str | Path, expected_sha256: str | None) -> None:
    """Raise when a weights file does not match its recorded digest."""
    if not expected_sha256:
        return
    got = sha256_file(path)
    if got != expected_sha256:
        raise WeightsNotFound(
            f"weights file {path} is corrupt or replaced: sha256 {got[:12]}… != "
            f"{expected_sha256[:12]}…"
        )


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
