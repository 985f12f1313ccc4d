"""Checkpoint I/O of training runs: model, optimiser and RNG tensors in safetensors, the
metadata in its header and a JSON sidecar, each written to a temp file and renamed (a failed
write leaves the previous checkpoint intact)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from irnbench.distributed import DistContext
from irnbench.errors import IrnbenchError
from irnbench.methods import Method
from irnbench.training.presets import read_preset_config
from irnbench.weights.record import WeightsRecord, atomic_write, write_weights

__all__ = ["CHECKPOINT", "WEIGHTS", "CheckpointWriteWarning", "save_checkpoint",
           "read_checkpoint_meta", "load_checkpoint", "save_weights", "read_resume_checkpoint"]

CHECKPOINT = "checkpoint.safetensors"
WEIGHTS = "weights.safetensors"


class CheckpointWriteWarning(UserWarning):
    """A checkpoint could not be written; the previous one is intact and training goes on."""


def _flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, state in sd["state"].items():
        for k, v in state.items():
            if torch.is_tensor(v):
                tensors[f"optim.{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(opt, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, pid, k = key.split(".", 2)
            state.setdefault(int(pid), {})[k] = v
    for key, v in meta.get("scalars", {}).items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(path: Path, model: Method, opt, meta: dict[str, Any]) -> None:
    """Tensors (weights, optimiser, RNG) → safetensors; metadata → JSON sidecar; both atomic."""
    from safetensors.torch import save

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt_tensors, opt_meta = _flatten_optimizer(opt)
    tensors.update(opt_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {**meta, "optimizer": opt_meta}
    # The metadata also lives in the safetensors header, so the tensor file alone is a complete,
    # consistent checkpoint even if a kill lands between the two renames.
    blob = save(tensors, metadata={"irnbench": json.dumps(meta)})
    atomic_write(path, blob)
    side = {**meta, "sha256": hashlib.sha256(blob).hexdigest()}
    atomic_write(path.with_suffix(".json"), json.dumps(side, indent=1).encode())


def read_checkpoint_meta(path: Path) -> dict[str, Any]:
    """The metadata of a checkpoint, from its safetensors header (authoritative)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return json.loads((f.metadata() or {})["irnbench"])
    except Exception as exc:  # noqa: BLE001 - any unreadable header means a bad checkpoint
        raise IrnbenchError(f"checkpoint {path} is unreadable ({exc})") from exc


def _blob_meta(blob: bytes, where: Path) -> dict[str, Any]:
    """``read_checkpoint_meta`` of a checkpoint held in memory."""
    try:
        n = int.from_bytes(blob[:8], "little")
        return json.loads(json.loads(blob[8 : 8 + n])["__metadata__"]["irnbench"])
    except Exception as exc:  # noqa: BLE001 - any unreadable header means a bad checkpoint
        raise IrnbenchError(f"checkpoint {where} is unreadable ({exc})") from exc


def load_checkpoint(path: Path | bytes, model: Method, opt) -> dict[str, Any]:
    """Load a checkpoint (a file, or its bytes) into ``model`` and ``opt``; return its metadata."""
    from safetensors.torch import load, load_file

    if isinstance(path, bytes):
        meta, tensors = _blob_meta(path, Path("<memory>")), load(path)
    else:
        meta, tensors = read_checkpoint_meta(path), load_file(str(path))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    _unflatten_optimizer(opt, tensors, meta["optimizer"])
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
    return meta


def save_weights(path: Path, model: Method, meta: dict[str, Any]) -> str:
    """Final weights (model tensors only) + sidecar (``meta``, a weights record); returns the
    file's sha256."""
    return write_weights(path, model.state_dict(), WeightsRecord.from_json(meta, str(path)))


def read_resume_checkpoint(ckpt: Path, out_dir: Path, meta_base: dict[str, Any],
                            fingerprint: str, ctx: DistContext) -> bytes:
    """Rank 0 reads and checks the checkpoint and hands its bytes to every rank."""
    blob, error = None, None
    if ctx.is_main:
        try:
            if not ckpt.exists():
                raise IrnbenchError(f"--resume: no checkpoint in {out_dir}")
            blob = ckpt.read_bytes()
            meta = _blob_meta(blob, ckpt)
            init_sha = (meta.get("init") or {}).get("sha256")
            if init_sha != (meta_base.get("init") or {}).get("sha256"):
                raise IrnbenchError(
                    f"--resume: the checkpoint started from weights with sha256 {init_sha}, "
                    "this run from other ones; resume with the same --init"
                )
            # checkpoints from before --amp record only ``bf16``
            old_amp = meta.get("amp") or ("bf16" if meta.get("bf16") else "off")
            if old_amp != meta_base["amp"]:
                raise IrnbenchError(
                    f"--resume: the checkpoint was trained with --amp {old_amp}, this run has "
                    f"--amp {meta_base['amp']}; resume with the same --amp (autocast changes "
                    "the numbers, so the resumed run would not continue the same one)"
                )
            for key in ("method", "task_key", "preset", "seed"):
                if meta.get(key) != meta_base[key]:
                    raise IrnbenchError(
                        f"--resume: checkpoint {key} is {meta.get(key)!r}, this run has "
                        f"{meta_base[key]!r}"
                    )
            old_cfg = meta.get("preset_config")  # absent in checkpoints from before it
            old_cfg = read_preset_config(old_cfg) if old_cfg else old_cfg  # old colour flags
            new_cfg = meta_base["preset_config"]
            # Fields on one side only are Preset fields added or removed since: not a change.
            changed = sorted(k for k in (old_cfg or {}).keys() & new_cfg.keys()
                             if old_cfg[k] != new_cfg[k])
            if changed:
                raise IrnbenchError(
                    f"--resume: preset {meta_base['preset']!r} changed since the checkpoint "
                    f"({', '.join(changed)}); resume with the irnbench version that started it"
                )
            if meta["data"]["fingerprint"] != fingerprint:
                raise IrnbenchError("--resume: the training data changed since the checkpoint")
        except IrnbenchError as exc:
            error = exc
    blob, error = ctx.broadcast_object((blob, error))
    if error is not None:
        raise error
    return blob
