"""The JSON sidecar of a weights file (``WeightsRecord``), the writer that publishes a weights
file with its sidecar (``write_weights``), and the one way into the user cache
(``install_weights``): both files written to unique temp names and fsynced, then renamed under
the setting's exclusive lock (``store.weights_lock``; readers share it), so a reader sees the old
pair or the new one, never half of one or the weights of one install with another's sidecar."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from irnbench.errors import InvalidSetting, IrnbenchError
from irnbench.weights.store import (
    cache_weights_path,
    cached_path,
    check_cache,
    reading,
    sha256_file,
    weights_lock,
)
from irnbench.weights.tags import OFFICIAL_TAG, format_spec

__all__ = ["SIDECAR_KIND", "WeightsRecord", "atomic_write", "fsync_dir", "write_weights",
           "read_sidecar", "chain_commands", "training_budget", "install_weights", "Installed",
           "WeightsExist", "installed_record", "refuse_replace"]

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


def _write_temp(path: Path, data: bytes) -> Path:
    """``data`` in a new, fsynced temp file beside ``path`` (a unique name, so concurrent
    writers never share one); removed again on any failure."""
    while True:  # like mkstemp, but with the umask's permissions (0o666 & ~umask)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with open(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return tmp


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def fsync_dir(folder: Path) -> None:
    """Make a file's creation or rename in ``folder`` durable (POSIX; a no-op elsewhere)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``path`` via a unique temp file beside it: fsync, rename; on any failure the temp
    file is removed, ``path`` is untouched and the error is raised."""
    tmp = _write_temp(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    fsync_dir(path.parent)


def _blob(weights: Mapping[str, torch.Tensor] | bytes) -> bytes:
    from safetensors.torch import save

    return weights if isinstance(weights, bytes) else save(
        {k: v.detach().cpu().contiguous() for k, v in weights.items()})


def _sidecar_text(record: WeightsRecord, digest: str) -> bytes:
    return (json.dumps(record.with_(sha256=digest).to_json(), indent=1) + "\n").encode()


def _publish(target: Path, blob: bytes, side: bytes) -> None:
    """Both files to temp names first, then renamed: weights, sidecar (the caller holds the
    lock that makes the two renames one step for readers)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmps = [_write_temp(target, blob)]
    try:
        tmps.append(_write_temp(target.with_suffix(".json"), side))
        os.replace(tmps[0], target)
        os.replace(tmps[1], target.with_suffix(".json"))
    finally:
        for tmp in tmps:
            _unlink_quietly(tmp)
    fsync_dir(target.parent)  # the renames themselves survive a crash


def write_weights(target: Path, weights: Mapping[str, torch.Tensor] | bytes,
                  record: WeightsRecord) -> str:
    """Publish a weights file (tensors, or a safetensors blob) and its sidecar outside the
    cache (a run folder, a plugin package); the sidecar holds the file's sha256. Returns it."""
    blob = _blob(weights)
    digest = hashlib.sha256(blob).hexdigest()
    _publish(Path(target), blob, _sidecar_text(record, digest))
    return digest


class WeightsExist(InvalidSetting):
    """Other weights are installed under the tag and replacing them was not asked (exit 2)."""


@dataclass(frozen=True)
class Installed:
    """What ``install_weights`` left in the cache."""

    path: Path
    sha256: str
    label: str
    changed: bool  #: False: the identical file was installed already (nothing written)


def installed_record(method: str, task_key: str, tag: str) -> dict[str, Any] | None:
    """The sidecar of the cache's ``method.tag`` weights for ``task_key`` (``{}`` for a file
    without one), read under the shared lock; ``None`` when there are none."""
    path = cached_path(method, task_key, tag)
    if path is None:
        return None
    with reading(path):
        return _sidecar_or_note(path) if path.exists() else None


def _sidecar_or_note(path: Path) -> dict[str, Any]:
    """The sidecar of an installed file; a broken one reads as its label says."""
    try:
        return read_sidecar(path)
    except ValueError:
        return {"label": "unreadable sidecar"}


def _exists_message(method: str, task_key: str, tag: str, side: Mapping[str, Any]) -> str:
    label = side.get("label") or "no sidecar"
    sha = str(side.get("sha256") or "?")[:12]
    return (f"{format_spec(method, tag)} {task_key} is already installed ({label}, sha256 "
            f"{sha}); pass --replace to replace it (nothing was changed)")


def refuse_replace(method: str, task_key: str, tag: str,
                   replace: bool) -> dict[str, Any] | None:
    """Before any work: ``WeightsExist`` when ``method.tag`` is installed for ``task_key`` and
    ``replace`` is false; else the installed sidecar (``None``: nothing installed)."""
    side = installed_record(method, task_key, tag)
    if side is not None and not replace:
        raise WeightsExist(_exists_message(method, task_key, tag, side))
    return side


def install_weights(weights: Mapping[str, torch.Tensor] | bytes, record: WeightsRecord, *,
                    replace: bool = False) -> Installed:
    """The one way into the user cache (import, fetch, training): publish the weights and
    sidecar of ``record.method``/``task_key``/``tag`` under the setting's exclusive lock.

    The identical file already installed is a no-op; other weights there raise
    ``WeightsExist`` unless ``replace``.
    """
    check_cache()
    blob = _blob(weights)
    digest = hashlib.sha256(blob).hexdigest()
    target = cache_weights_path(record.method, record.task_key, record.tag)
    with weights_lock(target):
        here = cached_path(record.method, record.task_key, record.tag)  # or a pre-tag file
        if here is not None:
            side = _sidecar_or_note(here)
            if side.get("sha256") == digest and sha256_file(here) == digest:
                return Installed(here, digest, str(side.get("label", "")), False)
            if not replace:
                raise WeightsExist(_exists_message(record.method, record.task_key, record.tag,
                                                   side))
        _publish(target, blob, _sidecar_text(record, digest))
    return Installed(target, digest, record.label, True)


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The JSON sidecar of a weights file (empty dict when there is none)."""
    side = Path(path).with_suffix(".json")
    try:
        return json.loads(side.read_text())
    except (FileNotFoundError, NotADirectoryError):
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
