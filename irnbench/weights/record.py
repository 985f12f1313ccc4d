"""The JSON sidecar of a weights file (``WeightsRecord``) and the one writer that publishes a
weights file with its sidecar: each written to a temp file, fsynced and renamed, the temp files
removed on failure, so a reader sees the old pair or the new one, never half of one."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from irnbench.errors import IrnbenchError
from irnbench.weights.tags import OFFICIAL_TAG

__all__ = ["SIDECAR_KIND", "WeightsRecord", "atomic_write", "write_weights", "read_sidecar",
           "chain_commands", "training_budget"]

#: ``kind`` of every weights sidecar (training checkpoints and other JSON files have others).
SIDECAR_KIND = "irnbench-weights"

#: What a training run records besides the core fields (``irnbench train``).
TRAINING_KEYS = ("iteration", "iterations_planned", "steps_in_all", "wall", "seed", "data",
                 "commands", "rebuild", "history", "preset_config", "init", "inputs", "amp",
                 "bf16", "channels_last", "world_size", "irnbench_version", "commit", "machine")
#: What an import of published files records (``irnbench weights import``/``fetch``).
IMPORT_KEYS = ("sources", "origin", "licence", "paper", "options", "note", "imported",
               "irnbench_version")


@dataclass(frozen=True)
class WeightsRecord:
    """What a weights file is (method, task setting, tag, label), its sha256, and how it was made.

    The sidecar JSON is flat: the core fields plus ``extra`` (a training's record, see
    ``TRAINING_KEYS``, or an import's, see ``IMPORT_KEYS``), so sidecars of every irnbench
    version read the same way.
    """

    method: str
    task: str
    setting: Mapping[str, Any]
    task_key: str
    label: str
    preset: str  #: the training preset, or ``official`` for published files
    tag: str = ""
    sha256: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    CORE = ("method", "task", "setting", "task_key", "label", "preset")

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "sidecar") -> WeightsRecord:
        """The record of a sidecar's JSON; one clear error when it is not a weights sidecar."""
        if data.get("kind") != SIDECAR_KIND:
            raise IrnbenchError(f"{where} is not an irnbench weights sidecar "
                                f"(kind {data.get('kind')!r})")
        lacking = [k for k in cls.CORE if k not in data]
        if lacking:
            raise IrnbenchError(f"{where} lacks {', '.join(lacking)}")
        known = {*cls.CORE, "kind", "tag", "sha256"}
        return cls(**{k: data[k] for k in cls.CORE}, tag=data.get("tag", ""),
                   sha256=data.get("sha256", ""),
                   extra={k: v for k, v in data.items() if k not in known})

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": SIDECAR_KIND}
        out.update({k: getattr(self, k) for k in self.CORE})
        out["setting"] = dict(self.setting)
        if self.tag:
            out["tag"] = self.tag
        out.update(self.extra)
        if self.sha256:
            out["sha256"] = self.sha256
        return out

    def with_(self, **changes: Any) -> WeightsRecord:
        """A copy with some fields changed (``extra`` keys may be given too)."""
        core = {k: changes.pop(k) for k in (*self.CORE, "tag", "sha256") if k in changes}
        extra = {**self.extra, **changes}
        return WeightsRecord(**{k: getattr(self, k) for k in (*self.CORE, "tag", "sha256")}
                             | core | {"extra": extra})


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``path`` via ``path.tmp``: fsync, rename; on any failure the temp file is removed,
    ``path`` is untouched and the error is raised."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise


def write_weights(target: Path, weights: Mapping[str, torch.Tensor] | bytes,
                  record: WeightsRecord) -> str:
    """Publish a weights file (tensors, or a safetensors blob) and its sidecar; the sidecar is
    written last, with the file's sha256, so a sidecar always describes the file beside it.
    Returns the sha256."""
    from safetensors.torch import save

    blob = weights if isinstance(weights, bytes) else save(
        {k: v.detach().cpu().contiguous() for k, v in weights.items()})
    digest = hashlib.sha256(blob).hexdigest()
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, blob)
    text = json.dumps(record.with_(sha256=digest).to_json(), indent=1) + "\n"
    atomic_write(target.with_suffix(".json"), text.encode())
    return digest


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The JSON sidecar of a weights file (empty dict when there is none)."""
    side = Path(path).with_suffix(".json")
    if side.exists():
        return json.loads(side.read_text())
    return {}




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


def training_budget(side: dict[str, Any]) -> dict[str, Any]:
    """What training a weights file cost, from its sidecar alone (and its fine-tune chain):
    steps, batch, crop, HR pixels seen, hours and machine, with a one-line ``text``.

    Imported checkpoints say "official checkpoint". Batch and crop come from each stage's
    recorded ``preset_config``, never from today's presets, so editing a preset cannot change
    what a published report says about weights trained before; a stage without one shows "?".
    """
    if side.get("preset") == OFFICIAL_TAG or side.get("sources"):
        return {"text": "official checkpoint", "official": True}
    stages = _stages(side)
    steps = pixels = 0
    seconds = 0.0
    for st in stages:
        cfg = st.get("preset_config") or {}
        n = int(st.get("iteration") or 0)
        steps += n
        pixels += n * int(cfg.get("batch_size") or 0) * int(cfg.get("crop") or 0) ** 2
        seconds += float(st.get("wall") or 0.0)
    if not steps:
        return {"text": ""}
    last = stages[0].get("preset_config") or {}
    batch, crop = last.get("batch_size", "?"), last.get("crop", "?")
    machine = re.sub(r"\s*\([^)]*\)", "", str(side.get("machine") or "")).split(",")[0]
    hours = seconds / 3600
    text = (f"{steps:,} steps × batch {batch} × {crop}² crops ({pixels / 1e6:,.0f} M px), "
            f"{hours:.1f} h" + (f" on {machine}" if machine else ""))
    return {"text": text, "steps": steps, "batch": batch, "crop": crop, "pixels": pixels,
            "hours": round(hours, 2), "machine": machine, "official": False}
