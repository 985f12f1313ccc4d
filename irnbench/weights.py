"""Weights: where they are found, how they are described, checked and loaded.

Lookup order (DESIGN.md §4): an explicit ``--weights PATH``, the user cache
(``$IRNBENCH_HOME/weights`` or the platform cache dir), then weights shipped in the plugin. Each
weights file is a safetensors file with a JSON sidecar (same stem, ``.json``) describing how it
was made; a timm-style ``PretrainedCfg`` on the method class names the shipped file and its
sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from irnbench.errors import WeightsNotFound

__all__ = [
    "PretrainedCfg",
    "user_home",
    "cache_weights_dir",
    "sha256_file",
    "shipped_cfgs",
    "WeightsNotFound",
]


@dataclass(frozen=True)
class PretrainedCfg:
    """Shipped weights of one method for one task setting (timm-style)."""

    file: str  #: path relative to the plugin's package folder
    sha256: str
    task_key: str  #: e.g. ``rescale-x4``
    label: str  #: how every table names them, e.g. "irnbench cpu preset (not the paper's model)"
    preset: str = "cpu"
    licence: str = "MIT (irnbench)"
    paper: str = ""
    training: dict[str, Any] = field(default_factory=dict)  #: steps, wall time, commands, data

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def cache_weights_path(method: str, task_key: str) -> Path:
    """Where ``irnbench train`` installs finished weights for a method and setting."""
    return cache_weights_dir() / method / f"{task_key}.safetensors"


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The JSON sidecar of a weights file (empty dict when there is none)."""
    side = Path(path).with_suffix(".json")
    if side.exists():
        return json.loads(side.read_text())
    return {}


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
                                          "preset_config", "init", "steps_in_all")
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
