"""Weights: tags, where each tagged file lives, how it is described and checked.

Every weights file of a method and task setting has a *tag* (timm's ``arch.tag``): ``cpu`` is
irnbench's own shipped CPU-preset weights (in the plugin package), ``official`` a published
checkpoint imported with ``irnbench weights import``, and any other name the user's own
(``irnbench train --tag NAME``, default ``local``), kept in the user cache
(``$IRNBENCH_HOME/weights/<method>/<task_key>.<tag>.safetensors``). Each file has a JSON sidecar
(same stem, ``.json``) saying how it was made; a ``PretrainedCfg`` on the method class names a
shipped file and its sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from irnbench.errors import WeightsNotFound

__all__ = [
    "PretrainedCfg",
    "chain_commands",
    "OfficialFile",
    "OfficialCheckpoint",
    "SHIPPED_TAG",
    "OFFICIAL_TAG",
    "DEFAULT_TRAIN_TAG",
    "RESOLUTION_ORDER",
    "parse_spec",
    "format_spec",
    "check_tag",
    "cached_tags",
    "training_budget",
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


@dataclass(frozen=True)
class OfficialFile:
    """One file of a published checkpoint and the part of the irnbench model it fills."""

    name: str  #: as released, e.g. ``IRN_x4.pth`` or ``4x/kgn.pth``
    target_prefix: str  #: the irnbench state-dict keys it fills start with this, e.g. ``net.``
    what: str  #: e.g. "IRN ×4 InvRescaleNet"


@dataclass(frozen=True)
class OfficialCheckpoint:
    """The authors' release of one method for one task setting, and how to convert it.

    ``rename(file_name, key)`` maps a source tensor name (``module.`` already stripped) of the
    file released as ``file_name`` to the irnbench state-dict key it fills (values are copied
    unchanged), or ``None`` when irnbench has no such tensor; ``irnbench.checkpoints`` checks
    that the mapping is one to one with equal shapes.
    """

    task: str  #: e.g. ``rescale``
    setting: dict[str, Any]  #: e.g. ``{"scale": 4}``
    files: tuple[OfficialFile, ...]
    rename: Callable[[str, str], str | None]
    repository: str  #: e.g. ``github.com/pkuxmq/Invertible-Image-Rescaling``
    download: str  #: where the authors link the files
    licence: str  #: what the authors state (code licence; the weights' own terms)
    paper: str = ""
    options: dict[str, Any] = field(default_factory=dict)  #: constructor options to build it
    #: irnbench tensors that describe the configuration (filled from the built model)
    config_keys: tuple[str, ...] = ()
    note: str = ""  #: added to the label, e.g. "CRM trained at q = 90"
    #: Other releases with the same tensors, by the tag to import them under, e.g.
    #: ``{"plus": "IRN+_x4.pth"}``.
    variants: dict[str, str] = field(default_factory=dict)

    @property
    def file_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.files)


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


#: The tag of the weights shipped in a plugin package (irnbench's CPU-preset trainings).
SHIPPED_TAG = "cpu"
#: The tag of an imported published checkpoint.
OFFICIAL_TAG = "official"
#: The tag ``irnbench train`` installs under unless ``--tag`` names another.
DEFAULT_TRAIN_TAG = "local"
#: What an untagged method name resolves to, in this order: the user's own trainings are used
#: only when named, so no test or smoke run changes what a later ``run`` measures.
RESOLUTION_ORDER = (OFFICIAL_TAG, SHIPPED_TAG)

_TAG_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_")


def check_tag(tag: str) -> str:
    """A tag is lower-case letters, digits, ``-`` and ``_`` (it becomes part of a file name)."""
    from irnbench.errors import InvalidSetting

    if not tag or not set(tag) <= _TAG_CHARS or tag[0] in "-_":
        raise InvalidSetting(
            f"weights tag must be lower-case letters, digits, '-' or '_', got {tag!r}"
        )
    return tag


def parse_spec(spec: str, tag: str | None = None) -> tuple[str, str | None]:
    """``"irn.official"`` → ``("irn", "official")``; ``"irn"`` → ``("irn", tag)``.

    A ``tag=`` given beside a tagged spec must agree with it.
    """
    from irnbench.errors import InvalidSetting

    name, dot, spec_tag = spec.partition(".")
    if not dot:
        return spec, (check_tag(tag) if tag else None)
    check_tag(spec_tag)
    if tag and tag != spec_tag:
        raise InvalidSetting(f"{spec!r} names tag {spec_tag!r} but tag={tag!r} was given")
    return name, spec_tag


def format_spec(name: str, tag: str | None) -> str:
    """``("irn", "official")`` → ``"irn.official"`` (just the name without a tag)."""
    return f"{name}.{tag}" if tag else name


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


def _stages(side: dict[str, Any]) -> list[dict[str, Any]]:
    """A weights sidecar and the sidecars of the runs it was fine-tuned from, latest first."""
    out, cur = [], side
    while isinstance(cur, dict) and cur:
        out.append(cur)
        cur = cur.get("init")
    return out


def chain_commands(side: dict[str, Any]) -> list[str]:
    """The commands that rebuild a weights file from scratch, oldest step first.

    Each step of a fine-tune chain contributes its ``rebuild`` list when its record has one
    (shipped steps trained before explicit ``--init``: their command with the starting weights
    named by path and sha256), else its ``commands`` as recorded (a CLI ``--init`` is recorded
    with ``--init-sha256``). Run in order in a clean cache they retrace the chain; every step's
    ``--init-sha256`` refuses a predecessor that came out different.
    """
    out: list[str] = []
    for st in reversed(_stages(side)):
        out.extend(st.get("rebuild") or st.get("commands") or [])
    return out


def training_budget(side: dict[str, Any], presets: dict[str, Any] | None = None
                    ) -> dict[str, Any]:
    """What training a weights file cost, from its sidecar (and its fine-tune chain):
    steps, batch, crop, HR pixels seen, hours and machine, with a one-line ``text``.

    Imported checkpoints say "official checkpoint"; a stage whose sidecar predates the
    recorded preset settings takes its batch and crop from the method's preset of that name.
    """
    if side.get("preset") == OFFICIAL_TAG or side.get("sources"):
        return {"text": "official checkpoint", "official": True}
    stages = _stages(side)
    steps = pixels = 0
    seconds = 0.0
    for st in stages:
        cfg = st.get("preset_config") or {}
        preset = (presets or {}).get(st.get("preset"))
        batch = cfg.get("batch_size") or getattr(preset, "batch_size", None)
        crop = cfg.get("crop") or getattr(preset, "crop", None)
        n = int(st.get("iteration") or 0)
        steps += n
        pixels += n * int(batch or 0) * int(crop or 0) ** 2
        seconds += float(st.get("wall") or 0.0)
    if not steps:
        return {"text": ""}
    last = (stages[0].get("preset_config") or {})
    batch = last.get("batch_size") or getattr((presets or {}).get(stages[0].get("preset")),
                                              "batch_size", "?")
    crop = last.get("crop") or getattr((presets or {}).get(stages[0].get("preset")), "crop", "?")
    machine = re.sub(r"\s*\([^)]*\)", "", str(side.get("machine") or "")).split(",")[0]
    hours = seconds / 3600
    text = (f"{steps:,} steps × batch {batch} × {crop}² crops ({pixels / 1e6:,.0f} M px), "
            f"{hours:.1f} h" + (f" on {machine}" if machine else ""))
    return {"text": text, "steps": steps, "batch": batch, "crop": crop, "pixels": pixels,
            "hours": round(hours, 2), "machine": machine, "official": False}
