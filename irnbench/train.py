"""The training runner, generic over methods: the method supplies ``training_loss`` and presets.

Determinism is by construction: every training sample is a pure function of (seed, global
sample index) — which image, where to crop, which flips — so a run does not depend on data-loader
state, a resumed run sees exactly the batches an uninterrupted one would, and (for DDP) the
global batch does not depend on the world size. The training noise a method draws through
``batch["randn"]`` is per sample too (see ``SampleNoise``). The learning rate is a pure function
of the step (warm-up, then MultiStep decay). Weights match bit-for-bit after a resume with one
intra-op thread. With several (a departure from DESIGN's "bit-for-bit on CPU"), ``torch.exp`` in
the couplings gave other last bits for the same input in the resumed process (apparently MKL's
vector math: ``MKL_CBWR=AVX512,STRICT`` or one thread removed it), and training amplifies that:
up to 1.4e-2 in the weights after 200 ``smoke`` steps.
Checkpoints hold model and optimiser tensors plus RNG states in safetensors and the metadata in
a JSON sidecar, each written to a temp file and renamed; a failed write (disk full…) leaves the
previous checkpoint intact and is reported.

Under ``torchrun`` (see ``irnbench.distributed``) each rank takes a contiguous block of the global
batch, gradients are averaged over ranks before clipping, and rank 0 alone writes.

The batch a method's ``training_loss(batch, task)`` receives:

* ``hr``, ``lr_ref``: this rank's share of the global batch (B/world samples);
* ``randn(*shape, dtype=None)``: Gaussian noise of shape ``(b, *shape)``, row i drawn from a
  generator seeded by (seed, global sample index, call number): draw training noise with it and
  a run does not depend on the world size (each call gives fresh noise);
* ``sample_index``: the global sample indices of the rows (int64), ``global_batch``: B;
* ``generator``: a per-step, per-rank ``torch.Generator`` (kept for methods that draw noise for the
  whole batch at once; such noise does depend on the split of the batch over ranks).

A method's loss should be a mean over the samples of the batch (e.g. per-sample sums averaged
over the batch): the mean over ranks of the per-rank gradients is then the global-batch gradient.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from irnbench import __version__
from irnbench.data.loading import EvalDataset, resolve_dataset
from irnbench.distributed import DistContext, setup
from irnbench.errors import InvalidSetting, IrnbenchError
from irnbench.methods import Method, Preset
from irnbench.metrics import psnr
from irnbench.ops.quantize import to_uint8
from irnbench.protocol import GREY_WEIGHTS
from irnbench.registry import (
    WeightsLocation,
    create_method,
    create_task,
    find_weights,
    get_method_class,
    load_weights,
)
from irnbench.tasks.base import Task
from irnbench.weights import (
    DEFAULT_TRAIN_TAG,
    OFFICIAL_TAG,
    SHIPPED_TAG,
    cache_weights_path,
    check_tag,
    read_sidecar,
    sha256_file,
    user_home,
)

__all__ = ["TrainingData", "TrainResult", "train_method", "lr_factor", "NonFiniteLoss",
           "SampleNoise", "CheckpointWriteWarning"]

CHECKPOINT = "checkpoint.safetensors"
WEIGHTS = "weights.safetensors"


class NonFiniteLoss(IrnbenchError):
    """Too many non-finite losses or gradients in a row: the run stopped."""


class CheckpointWriteWarning(UserWarning):
    """A checkpoint could not be written; the previous one is intact and training goes on."""


class SampleNoise:
    """``batch["randn"]``: per-sample Gaussian noise, a pure function of (seed, sample index).

    ``noise(*shape)`` returns ``len(indices) × shape``; row i comes from its own generator seeded
    by (seed, indices[i], n) where n counts the calls on this batch, so every call is fresh noise
    and a sample's noise does not depend on which rank, or which position, draws it.
    """

    def __init__(self, seed: int, indices: Sequence[int], device: torch.device):
        self.seed, self.indices, self.device = seed, list(indices), device
        self.calls = 0

    def __call__(self, *shape: int | Sequence[int], dtype: torch.dtype | None = None
                 ) -> torch.Tensor:
        if len(shape) == 1 and not isinstance(shape[0], int):
            shape = tuple(shape[0])
        call, self.calls = self.calls, self.calls + 1
        rows = []
        for index in self.indices:
            state = np.random.SeedSequence([self.seed, index, call, 0x5EED]).generate_state(2)
            g = torch.Generator(device=self.device).manual_seed(
                int(state[0]) << 32 | int(state[1]))
            rows.append(torch.randn(shape, generator=g, device=self.device, dtype=dtype))
        return torch.stack(rows)


#: Range of the saturation gain drawn by the colour augmentation (before the no-clip cap).
SATURATION_GAIN = (0.5, 2.0)
#: The same with ``color_clip``: the gain is not capped and HR values are clipped to [0, 1].
SATURATION_GAIN_CLIPPED = (0.5, 3.0)
#: Largest per-channel offset of ``color_cast`` (drawn uniformly in ±this, before clipping).
COLOR_CAST = 0.4


def color_jitter(
    hr: torch.Tensor, ref: torch.Tensor, perm: Sequence[int], gain: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reorder the channels and scale the chroma about the luma: x′ = g + a·(x − g), g = luma.

    One 3×3 linear map at every pixel, so it commutes with any channel-wise linear resampling:
    applying it to the whole-image bicubic reference equals recomputing the reference from the
    transformed HR (exactly, in real arithmetic). A 1-channel reference must be the luma guide of
    ``hr`` (decolorize; checked) and is recomputed from the transformed HR. The gain a is capped
    so that no HR value leaves [0, 1] (nothing is clipped, which would break that identity);
    a ≤ 1 never needs the cap. Measured for IRN ×2 on ``mini`` (1 z draw): from scratch (1500
    steps of 64² crops at 2e-4) it cost 4.6 dB Y-PSNR against the same run without it; as a
    500-step fine-tune of trained weights (irn's ``cpu-ft-color``) it gained 1.7 dB, fixing the
    saturated photos that the muted ``mini-train`` never shows.
    """
    w = torch.tensor(GREY_WEIGHTS, dtype=hr.dtype).view(3, 1, 1)
    grey_ref = ref.shape[0] == 1
    if grey_ref and not torch.allclose(ref, (hr * w).sum(0, keepdim=True), atol=1e-5):
        raise InvalidSetting("color_augment: a 1-channel reference must be the luma of the HR")
    idx = torch.as_tensor(list(perm), dtype=torch.long)
    hr = hr[idx]
    ref = ref if grey_ref else ref[idx]
    g = (hr * w).sum(0, keepdim=True)
    d = hr - g
    if gain > 1.0:
        gain = max(1.0, min(gain, _no_clip_cap(hr)))  # largest a with g + a·d in [0, 1]
    out = g + gain * d
    if grey_ref:
        return out, (out * w).sum(0, keepdim=True)
    g_ref = (ref * w).sum(0, keepdim=True)
    return out, g_ref + gain * (ref - g_ref)


def saturate_clipped(hr: torch.Tensor, perm: Sequence[int], gain: float,
                     cast: Sequence[float] = ()) -> torch.Tensor:
    """``color_jitter``'s map without the cap: x′ = clip(g + a·(x − g) + b, 0, 1), reordered.

    Clipping makes the colours the muted training photos lack (saturated yellows, pure reds),
    where one HR channel sits at 0 or 1; the reference must then be recomputed from the result.
    ``cast`` b adds one offset per channel: gains and channel orders alone almost never make
    a bright saturated yellow from ``mini-train`` (measured: no 32² crop in 400 had 5 % of
    such pixels; with offsets up to ±0.4, 4 %).
    """
    w = torch.tensor(GREY_WEIGHTS, dtype=hr.dtype).view(3, 1, 1)
    hr = hr[torch.as_tensor(list(perm), dtype=torch.long)]
    g = (hr * w).sum(0, keepdim=True)
    out = g + gain * (hr - g)
    if len(cast):
        out = out + torch.tensor(list(cast), dtype=hr.dtype).view(3, 1, 1)
    return out.clamp(0.0, 1.0)


def _no_clip_cap(hr: torch.Tensor) -> float:
    """The largest saturation gain that leaves every value of ``hr`` in [0, 1] (inf if grey)."""
    w = torch.tensor(GREY_WEIGHTS, dtype=hr.dtype).view(3, 1, 1)
    g = (hr * w).sum(0, keepdim=True)
    d = hr - g
    room = torch.where(d > 0, (1 - g) / d.clamp_min(1e-12), g / (-d).clamp_min(1e-12))
    room = room[d.abs() > 1e-6]
    return float(room.min()) if room.numel() else float("inf")


def lr_factor(step: int, preset: Preset) -> float:
    """Learning-rate multiplier at ``step``: linear warm-up, then ×gamma at each milestone."""
    warm = min(1.0, (step + 1) / preset.warmup) if preset.warmup else 1.0
    decays = sum(1 for m in preset.milestones if step >= m)
    return warm * preset.gamma**decays


class TrainingData:
    """HR images of a training set, their whole-image references, and a held-out slice.

    The reference (e.g. the bicubic LR) is computed once from the whole image, as the official
    IRN code does, and crops of HR and reference are taken at aligned positions.
    """

    def __init__(self, dataset: EvalDataset, task: Task, val_images: int | None = None):
        self.name = dataset.name
        self.task = task
        images, names = [], []
        for rec in dataset:
            img = rec.load()
            if img is None or min(img.shape[-2:]) < task.min_size():
                continue
            images.append(task.prepare(img.unsqueeze(0))[0])
            names.append(rec.name)
        if len(images) < 2:
            raise IrnbenchError(f"training set {dataset.name!r} needs at least 2 usable images")
        n_val = val_images if val_images is not None else max(1, round(0.1 * len(images)))
        self.val_names = names[len(names) - n_val:]
        self.val_images = images[len(images) - n_val:]
        self.train_names = names[: len(names) - n_val]
        self.images = images[: len(images) - n_val]
        with torch.no_grad():
            self.refs = [task.reference(im.unsqueeze(0))[0] for im in self.images]
        self.factor = self.images[0].shape[-1] // self.refs[0].shape[-1]
        h = hashlib.sha256()
        for n, rec in sorted((r.name, r) for r in dataset):
            h.update(n.encode())
            h.update(sha256_file(rec.path).encode())
        self.fingerprint = h.hexdigest()

    def sample(self, index: int, seed: int, crop: int, augment: bool,
               color_augment: bool = False, color_clip: bool = False,
               color_cast: bool = False, color_permute: bool = True
               ) -> tuple[torch.Tensor, ...]:
        """Training sample number ``index``: a pure function of (seed, index).

        ``color_augment`` draws after the crop and flips, so turning it on leaves those alone.
        With ``color_clip`` a gain past the no-clip cap (computed on the crop in its original
        channel order, as the shipped ``cpu-sat``/``cpu-cast`` weights were trained; the
        reordered crop's cap can differ, and then ``color_jitter`` caps the gain instead of
        clipping) is applied in full and clipped, and the
        reference is recomputed by ``task.reference`` on the clipped crop plus a margin of the
        clipped image around it, so it equals the whole-image reference of the clipped image.
        A gain that clips nothing inside the crop takes ``color_jitter``'s exact linear path;
        its reference is that of the unclipped image, which differs (by about 1e-4, at the LR
        border) where the margin alone would clip. ``color_cast`` (with ``color_clip``) also adds a
        random offset to each channel and always recomputes the reference that way.
        ``color_permute=False`` keeps the channel order (the permutation is still drawn, so the
        other draws do not move).
        """
        rng = np.random.default_rng([seed, index])
        i = int(rng.integers(len(self.images)))
        hr, ref = self.images[i], self.refs[i]
        f = self.factor
        h, w = hr.shape[-2:]
        c = min(crop, h - h % f, w - w % f)
        c -= c % f
        top = int(rng.integers(0, (h - c) // f + 1)) * f
        left = int(rng.integers(0, (w - c) // f + 1)) * f
        hr_c = hr[:, top : top + c, left : left + c]
        ref_c = ref[:, top // f : (top + c) // f, left // f : (left + c) // f]
        flips = rng.random(3) < 0.5 if augment else (False, False, False)
        if color_augment:
            if ref_c.shape[0] not in (1, 3) or hr_c.shape[0] != 3:
                raise InvalidSetting(
                    "color_augment needs an RGB HR and a reference computed channel by channel "
                    f"(rescale, compress) or its luma (decolorize); this task's has "
                    f"{ref_c.shape[0]} channel(s)"
                )
            perm = rng.permutation(3)
            if not color_permute:
                perm = np.arange(3)
            gain = float(rng.uniform(*(SATURATION_GAIN_CLIPPED if color_clip
                                       else SATURATION_GAIN)))
            cast = tuple(float(v) for v in rng.uniform(-COLOR_CAST, COLOR_CAST, 3)) \
                if color_cast else ()
            # Both maps act pixel by pixel, so applying them before the flips changes nothing.
            if color_cast or (color_clip and gain > 1.0 and gain > _no_clip_cap(hr_c)):
                hr_c, ref_c = self._clipped_pair(i, top, left, c, perm, gain, cast)
            else:
                hr_c, ref_c = color_jitter(hr_c, ref_c, perm, gain)
        hflip, vflip, rot = flips
        out = []
        for t in (hr_c, ref_c):
            if hflip:
                t = t.flip(-1)
            if vflip:
                t = t.flip(-2)
            if rot:
                t = t.transpose(-1, -2)
            out.append(t)
        hr_c, ref_c = out
        return hr_c.contiguous(), ref_c.contiguous()

    #: HR margin (in LR pixels, times the factor) around a clipped crop for its reference: the
    #: bicubic kernel of a 1/f downscale reaches 2f HR pixels; 4 LR pixels leave room.
    CLIP_MARGIN_LR = 4

    def _clipped_pair(self, i: int, top: int, left: int, c: int, perm: Sequence[int],
                      gain: float, cast: Sequence[float] = ()
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """HR crop of the clipped, saturated image ``i`` and that image's reference at the crop."""
        hr = self.images[i]
        f = self.factor
        h, w = hr.shape[-2:]
        m = self.CLIP_MARGIN_LR * f
        t0, l0 = max(0, top - m), max(0, left - m)
        t1, l1 = min(h - h % f, top + c + m), min(w - w % f, left + c + m)
        region = saturate_clipped(hr[:, t0:t1, l0:l1], perm, gain, cast)
        with torch.no_grad():
            ref = self.task.reference(region.unsqueeze(0))[0]
        hr_c = region[:, top - t0 : top - t0 + c, left - l0 : left - l0 + c]
        if ref.shape[-1] == region.shape[-1]:  # a full-size guide (decolorize's luma)
            return hr_c, ref[:, top - t0 : top - t0 + c, left - l0 : left - l0 + c]
        r_t, r_l = (top - t0) // f, (left - l0) // f
        return hr_c, ref[:, r_t : r_t + c // f, r_l : r_l + c // f]

    def batch(self, step: int, size: int, seed: int, crop: int, augment: bool,
              indices: Sequence[int] | None = None,
              color_augment: bool = False, color_clip: bool = False,
              color_cast: bool = False, color_permute: bool = True
              ) -> dict[str, torch.Tensor]:
        """The global batch of ``step`` (or only the given positions of it, for DDP ranks).

        ``sample_index`` holds the global sample index of each row.
        """
        positions = range(size) if indices is None else indices
        index = [step * size + p for p in positions]
        pairs = [self.sample(i, seed, crop, augment, color_augment, color_clip, color_cast,
                             color_permute) for i in index]
        return {"hr": torch.stack([p[0] for p in pairs]),
                "lr_ref": torch.stack([p[1] for p in pairs]),
                "sample_index": torch.tensor(index, dtype=torch.int64)}


@dataclass
class TrainResult:
    out_dir: Path
    weights: Path
    iterations: int
    wall_seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    installed: Path | None = None


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to ``path.tmp``, fsync, rename: ``path`` is the old file or the new one, never half.

    On any failure (disk full…) the temp file is removed, ``path`` is untouched, and the error is
    raised.
    """
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
    _atomic_write_bytes(path, blob)
    side = {**meta, "sha256": hashlib.sha256(blob).hexdigest()}
    _atomic_write_bytes(path.with_suffix(".json"), json.dumps(side, indent=1).encode())


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
    """Final weights (model tensors only) + sidecar; returns the file's sha256."""
    from safetensors.torch import save

    blob = save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()})
    digest = hashlib.sha256(blob).hexdigest()
    _atomic_write_bytes(path, blob)
    side = {**meta, "sha256": digest}
    _atomic_write_bytes(path.with_suffix(".json"), json.dumps(side, indent=1).encode())
    return digest


def validation_side(preset: Preset) -> int:
    """The held-out crop side a preset validates on (0: whole images; see ``Preset.val_side``)."""
    if preset.val_side is not None:
        if preset.val_side < 0:
            raise InvalidSetting(f"val_side must be ≥ 0 (0: whole images), got {preset.val_side}")
        return preset.val_side
    return min(256, max(64, 2 * preset.crop))  # validation crops scale with the preset


@torch.no_grad()
def validate(model: Method, task: Task, data: TrainingData, device: torch.device,
             max_side: int = 256) -> float:
    """Mean PSNR (the task's ``validation_metric``: Y or RGB; task crop) on the held-out slice:
    centre crops of at most ``max_side``, or the whole images when ``max_side`` is 0.

    A whole image scores every region, not one crop. It does not fix a held-out slice whose
    colours differ from the test photos: irn ×2 ``cpu-ft`` vs ``cpu-ft-color`` rank the same way
    on the whole muted ``sail`` (29.60 vs 29.22 dB) as on its 64² crop, the other way round from
    ``mini`` (29.91 vs 31.59).
    """
    metric = getattr(task, "validation_metric", "psnr_y")
    if metric not in ("psnr_y", "psnr_rgb"):
        raise InvalidSetting(f"validation_metric must be psnr_y or psnr_rgb, got {metric!r}")
    model.eval()
    vals = []
    for img in data.val_images:
        h, w = img.shape[-2:]
        ch, cw = (h, w) if max_side == 0 else (min(h, max_side), min(w, max_side))
        top, left = (h - ch) // 2, (w - cw) // 2
        x = task.prepare(img[:, top : top + ch, left : left + cw].unsqueeze(0)).to(device)
        # The task's last channel condition (e.g. its highest JPEG quality; plain: uint8 only).
        tr = task.transmit(model.degrade(x), **task.conditions()[-1])
        kwargs: dict[str, Any] = dict(tr.info)
        if model.stochastic:
            kwargs["generator"] = torch.Generator(device=device).manual_seed(0)
        out = to_uint8(model.restore(tr.y, **kwargs))
        vals.append(float(psnr(x, out, getattr(task, "crop_border", 0),
                               y_channel=metric == "psnr_y")[0]))
    model.train()
    return float(np.mean(vals))


def train_method(
    name: str,
    task: Task | str,
    preset: str = "cpu",
    datasets: str = "mini-train",
    out: str | Path | None = None,
    device: str = "auto",
    resume: bool = False,
    iterations: int | None = None,
    bf16: bool = False,
    channels_last: bool = False,
    seed: int = 0,
    install: bool = True,
    progress: bool = True,
    max_bad_steps: int = 10,
    command: str | None = None,
    init: str | Path | None = None,
    tag: str = DEFAULT_TRAIN_TAG,
    **setting: Any,
) -> TrainResult:
    """Train ``name`` on ``task`` with one of its presets; install the weights in the user cache
    under ``tag`` (default ``local``: used only when named, as ``NAME.local``).

    A ``smoke`` preset never installs, so a wiring check cannot change what a later ``run``
    measures.
    ``iterations`` overrides the preset's total (e.g. to continue a run for longer with
    ``resume``); milestones stay those of the preset. ``init`` starts from trained weights (a
    fine-tune, like the official ``pretrain_model_G``; fresh optimiser, the preset's schedule from
    step 0); presets with ``init_from="shipped"`` start from the shipped weights without it. The
    weights' sha256 and steps are recorded, and the label names every preset of the chain and
    counts all their steps (``weights_label``). Under
    torchrun (``WORLD_SIZE`` > 1) this runs data-parallel (see the module docstring); every rank
    returns the same result, but only rank 0 writes files.
    """
    cls = get_method_class(name)
    _check_train_tag(tag)
    task_obj = create_task(task, **setting) if isinstance(task, str) else task
    task_obj = cls.weights_task(task_obj)  # e.g. IRN on compress trains its rescale weights
    if not cls.trainable():
        raise InvalidSetting(f"method {name!r} has nothing to train")
    presets = cls.presets_for(task_obj)
    if preset not in presets:
        raise InvalidSetting(
            f"method {name!r} has no preset {preset!r}; presets: {', '.join(presets)}"
        )
    p = presets[preset]
    install = install and preset not in NEVER_INSTALLED
    total = int(p.iterations if iterations is None else iterations)
    if total < 0:
        raise InvalidSetting(f"iterations must be ≥ 0, got {total}")
    ctx, dev = setup(device)
    if p.batch_size % ctx.world:
        raise InvalidSetting(
            f"preset {preset!r} of {name!r} has batch size {p.batch_size}, which {ctx.world} "
            f"processes cannot share equally: use a world size that divides {p.batch_size}"
        )
    per_rank = p.batch_size // ctx.world
    shard = range(ctx.rank * per_rank, (ctx.rank + 1) * per_rank)  # this rank's block
    out_dir = Path(out) if out else user_home() / "runs" / f"train-{name}-{task_obj.key}-{preset}"
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = out_dir / CHECKPOINT

    torch.manual_seed(seed)
    model = create_method(name, task_obj, pretrained=False, **p.options).to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    init_meta = _load_init(model, cls, task_obj, p, init)
    model.train()
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.Adam(params, lr=p.lr, betas=p.betas, eps=p.eps,
                           weight_decay=p.weight_decay)
    data = TrainingData(resolve_dataset(datasets), task_obj)
    start, history, wall = 0, [], 0.0
    meta_base = {
        "kind": "irnbench-checkpoint",
        "method": name,
        "task": task_obj.name,
        "setting": task_obj.setting,
        "task_key": task_obj.key,
        "preset": preset,
        # The preset's full settings: its numbers may change under the same name.
        "preset_config": json.loads(json.dumps(asdict(p))),
        "iterations_planned": total,
        "seed": seed,
        "data": {"name": data.name, "fingerprint": data.fingerprint,
                 "train_images": data.train_names, "val_images": data.val_names},
        "irnbench_version": __version__,
        "bf16": bf16,
        "channels_last": channels_last,
        "world_size": ctx.world,
        "tag": tag,
    }
    if init_meta:
        meta_base["init"] = init_meta
    commands: list[str] = []
    saved_at: int | None = None  # iteration of the checkpoint on disk that is known good
    if resume:
        blob = _read_resume_checkpoint(ckpt, out_dir, meta_base, data, ctx)
        meta = load_checkpoint(blob, model, opt)
        start, history, wall = meta["iteration"], meta.get("history", []), meta.get("wall", 0.0)
        commands = meta.get("commands", [])
        saved_at = start
    ctx.broadcast_module(model)  # identical start on every rank, whatever the init did
    commands = [*commands, command or f"train_method({name!r}, preset={preset!r})"]

    def checkpoint(step: int) -> None:
        """Rank 0: write the checkpoint; a failed write is reported and training goes on."""
        nonlocal saved_at
        try:
            save_checkpoint(ckpt, model, opt, {**meta_base, "iteration": step,
                                               "history": history,
                                               "wall": wall + time.perf_counter() - t0,
                                               "commands": commands})
        except OSError as exc:
            try:  # the tensor file is authoritative: say which iteration it holds now
                saved_at = read_checkpoint_meta(ckpt)["iteration"]
            except (IrnbenchError, KeyError):
                saved_at = None
            kept = (f"the previous checkpoint (iteration {saved_at}) in {ckpt} is intact"
                    if saved_at is not None else "there is no earlier checkpoint")
            msg = f"checkpoint at iteration {step} could not be written ({exc}); {kept}"
            warnings.warn(msg, CheckpointWriteWarning, stacklevel=2)
            if bar is not None:
                bar.write(f"warning: {msg}")
            return
        saved_at = step

    val_side = validation_side(p)
    val_key = f"val_{getattr(task_obj, 'validation_metric', 'psnr_y')}"  # e.g. val_psnr_y
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16)
    bad = 0
    t0 = time.perf_counter()
    bar = tqdm(range(start, total), initial=start, total=total,
               disable=not (progress and ctx.is_main),
               desc=f"train {name} {task_obj.setting_label} ({preset})", unit="it")
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = p.lr * lr_factor(step, p)
        batch: dict[str, Any] = data.batch(step, p.batch_size, seed, p.crop, p.augment,
                                           indices=shard, color_augment=p.color_augment,
                                           color_clip=p.color_clip, color_cast=p.color_cast,
                                           color_permute=p.color_permute)
        batch = {k: v.to(dev) for k, v in batch.items()}
        if channels_last:
            batch.update({k: batch[k].contiguous(memory_format=torch.channels_last)
                          for k in ("hr", "lr_ref")})
        batch["global_batch"] = p.batch_size
        batch["randn"] = SampleNoise(seed, [step * p.batch_size + i for i in shard], dev)
        batch["generator"] = torch.Generator(device=dev).manual_seed(
            seed * 1_000_003 + step + ctx.rank * 2**40)
        with autocast:
            losses = model.training_loss(batch, task_obj)
        keys = list(losses)
        # One all-reduce: the loss terms (→ global means) and the count of non-finite ranks,
        # so that every rank takes the same decision.
        stats = torch.stack([losses[k].detach().float().reshape(()) for k in keys])
        stats = torch.cat([stats, (~torch.isfinite(stats[:1])).float()])
        ctx.all_reduce_sum(stats)
        opt.zero_grad(set_to_none=True)
        finite = bool(stats[-1] == 0)
        if finite:
            losses["total"].backward()
            ctx.average_gradients(params)
            gnorm = torch.nn.utils.clip_grad_norm_(params, p.grad_clip or float("inf"))
            finite = bool(torch.isfinite(gnorm))  # the same on every rank: same gradients
        if not finite:
            bad += 1
            if ctx.is_main:
                bar.write(f"step {step}: non-finite loss or gradient, step skipped "
                          f"({bad} in a row)")
            if bad >= max_bad_steps:
                good = step - bad + 1

                def stop_checkpoint(good=good):
                    checkpoint(good)  # the state after the last good step
                    return saved_at

                last = ctx.broadcast_object(ctx.on_main(stop_checkpoint, "checkpointing"))
                where = (f"the last good state (iteration {last}) is in {ckpt}"
                         if last is not None else "no checkpoint could be written")
                raise NonFiniteLoss(
                    f"{bad} non-finite steps in a row at step {step}; stopped. {where} "
                    "(resume with a lower learning rate)"
                )
            continue
        bad = 0
        opt.step()
        mean = (stats[:-1] / ctx.world).tolist()
        record = {"step": step + 1, **dict(zip(keys, mean, strict=True))}
        val_step = bool(p.val_every and (step + 1) % p.val_every == 0)
        if val_step and ctx.is_main:
            record[val_key] = validate(model, task_obj, data, dev, val_side)
        if (step + 1) % max(1, total // 200) == 0 or val_step or step + 1 == total:
            history.append(record)
        if ctx.is_main:
            bar.set_postfix(loss=f"{record['total']:.3g}",
                            **({"val": f"{record[val_key]:.2f}"}
                               if val_key in record else {}))
            if p.checkpoint_every and (step + 1) % p.checkpoint_every == 0:
                checkpoint(step + 1)
    bar.close()
    wall += time.perf_counter() - t0
    if channels_last:
        model = model.to(memory_format=torch.contiguous_format)
    steps_in_all = total + int((init_meta or {}).get("steps_in_all") or 0)
    label = weights_label(preset, total, init_meta)
    weights = out_dir / WEIGHTS

    def finish() -> Path | None:
        if start < total and saved_at != total:
            checkpoint(total)
        weights_meta = {**meta_base, "kind": "irnbench-weights", "iteration": total,
                        "steps_in_all": steps_in_all,
                        "wall": wall, "label": label, "commands": commands,
                        "history": history[-20:],
                        f"final_{val_key}": validate(model, task_obj, data, dev, val_side)}
        try:
            save_weights(weights, model, weights_meta)
        except OSError as exc:
            kept = (f"the last checkpoint (iteration {saved_at}) in {ckpt} is intact: "
                    "free space and `--resume`" if saved_at is not None else
                    "no checkpoint was written")
            raise IrnbenchError(f"the final weights could not be written to {weights} "
                                f"({exc}); {kept}") from exc
        if not install:
            return None
        target = cache_weights_path(name, task_obj.key, tag)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(weights, target)
        shutil.copyfile(weights.with_suffix(".json"), target.with_suffix(".json"))
        return target

    installed = ctx.on_main(finish, "writing the final weights")
    if ctx.enabled:
        # rank 0's view (validation included) on every rank
        installed, history = ctx.broadcast_object((installed, history))
    return TrainResult(out_dir, weights, total, wall, history, installed)


def weights_label(preset: str, steps: int, init: dict[str, Any] | None = None) -> str:
    """The label every table shows, naming each preset of a chain of fine-tunes in order.

    ``init`` is the run's record of its starting weights (which holds their own ``init``, and so
    on): "irnbench cpu preset + cpu-ft-color preset + cpu-ft-color preset, 2500 steps in all".
    """
    if not init:
        return f"irnbench {preset} preset, {steps} steps (not the paper's model)"
    chain, rec = [preset], init
    while rec:
        chain.append(rec.get("preset") or "other")
        rec = rec.get("init")
    steps_in_all = steps + int(init.get("steps_in_all") or 0)
    return (f"irnbench {' + '.join(f'{p} preset' for p in reversed(chain))}, "
            f"{steps_in_all} steps in all (not the paper's model)")


#: Presets whose weights are never installed in the user cache (wiring checks).
NEVER_INSTALLED = ("smoke",)


def _check_train_tag(tag: str) -> None:
    """``official`` and ``cpu`` name published and shipped weights: a training cannot take them."""
    check_tag(tag)
    if tag in (OFFICIAL_TAG, SHIPPED_TAG):
        raise InvalidSetting(
            f"tag {tag!r} is reserved ({OFFICIAL_TAG!r}: imported published checkpoints, "
            f"{SHIPPED_TAG!r}: irnbench's shipped weights); train under {DEFAULT_TRAIN_TAG!r} "
            "or a name of your own"
        )


#: What a fine-tune keeps of the record of the weights it started from.
INIT_RECORD_KEYS = ("iteration", "wall", "commands", "commit", "machine", "preset_config", "init")


def _load_init(model: Method, cls: type[Method], task: Task, preset: Preset,
               init: str | Path | None) -> dict[str, Any]:
    """Load the starting weights of a fine-tune (``init``, or the shipped ones when the preset
    says so) into ``model``; return what the run records about them ({} for a fresh start)."""
    if init is None and preset.init_from != "shipped":
        return {}
    if init is None:
        cfg = cls.pretrained_cfgs.get(task.key)
        path = cls.package_dir() / cfg.file if cfg is not None else None
        if path is None or not path.exists():
            raise InvalidSetting(
                f"preset {preset.name!r} of {cls.name!r} continues the shipped weights for "
                f"{task.key}, and there are none: pass --init PATH"
            )
        loc = WeightsLocation(path, cfg.label, "shipped", cfg.sha256)
    else:
        loc = find_weights(cls, task, init)
    side = read_sidecar(loc.path)
    if side.get("task_key") not in (None, task.key):
        raise InvalidSetting(f"--init {loc.path} holds {side['task_key']} weights, not {task.key}")
    load_weights(model, loc)  # checks the file against its recorded sha256, when there is one
    # The starting weights' own record travels along, so the chain of runs stays on file.
    return {"file": loc.path.name, "source": loc.source,
            "sha256": loc.sha256 or sha256_file(loc.path),
            "label": loc.label, "preset": side.get("preset"),
            "steps_in_all": side.get("steps_in_all", side.get("iteration")),
            **{k: side[k] for k in INIT_RECORD_KEYS if k in side}}


def _read_resume_checkpoint(ckpt: Path, out_dir: Path, meta_base: dict[str, Any],
                            data: TrainingData, ctx: DistContext) -> bytes:
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
            for key in ("method", "task_key", "preset", "seed"):
                if meta.get(key) != meta_base[key]:
                    raise IrnbenchError(
                        f"--resume: checkpoint {key} is {meta.get(key)!r}, this run has "
                        f"{meta_base[key]!r}"
                    )
            old_cfg = meta.get("preset_config")  # absent in checkpoints from before it
            new_cfg = meta_base["preset_config"]
            # Fields on one side only are Preset fields added or removed since: not a change.
            changed = sorted(k for k in (old_cfg or {}).keys() & new_cfg.keys()
                             if old_cfg[k] != new_cfg[k])
            if changed:
                raise IrnbenchError(
                    f"--resume: preset {meta_base['preset']!r} changed since the checkpoint "
                    f"({', '.join(changed)}); resume with the irnbench version that started it"
                )
            if meta["data"]["fingerprint"] != data.fingerprint:
                raise IrnbenchError("--resume: the training data changed since the checkpoint")
        except IrnbenchError as exc:
            error = exc
    blob, error = ctx.broadcast_object((blob, error))
    if error is not None:
        raise error
    return blob
