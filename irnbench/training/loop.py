"""The training runner, generic over methods: the method supplies ``training_loss`` and presets.

Determinism is by construction: every training sample is a pure function of (seed, global
sample index) — which image, where to crop, which flips — so a run does not depend on data-loader
state, a resumed run sees exactly the batches an uninterrupted one would, and (for DDP) the
global batch does not depend on the world size. The training noise a method draws through
``batch["randn"]`` is per sample too (see ``SampleNoise``). The learning rate is a pure function
of the step (warm-up, then MultiStep decay). Weights match bit-for-bit after a resume with one
intra-op thread; with several, vectorised maths may differ in the last bits between processes
(docs/training.md says how far that goes).
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

import functools
import json
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from irnbench import __version__
from irnbench.data.loading import resolve_dataset
from irnbench.distributed import setup
from irnbench.errors import InvalidSetting, IrnbenchError
from irnbench.methods import Method
from irnbench.metrics import psnr
from irnbench.ops.quantize import to_uint8
from irnbench.registry import (
    create_method,
    create_task,
    get_method_class,
)
from irnbench.runfolder import check_writable, refuse_existing, remove_own_files
from irnbench.tasks.base import Task
from irnbench.training.amp import amp_dtype, fp16_overflow, resolve_amp
from irnbench.training.chains import load_init, recorded_command, weights_label
from irnbench.training.data import BatchSource, SampleNoise, TrainingData
from irnbench.training.presets import Preset, preset_config
from irnbench.training.state import (
    CHECKPOINT,
    WEIGHTS,
    CheckpointWriteWarning,
    load_checkpoint,
    read_checkpoint_meta,
    read_resume_checkpoint,
    save_checkpoint,
    save_weights,
)
from irnbench.weights.record import WeightsExist, WeightsRecord, install_weights, refuse_replace
from irnbench.weights.store import check_cache, user_home
from irnbench.weights.tags import DEFAULT_TRAIN_TAG, OFFICIAL_TAG, SHIPPED_TAG, check_tag

__all__ = ["TrainResult", "train_method", "lr_factor", "NonFiniteLoss", "validate",
           "validation_side", "batch_fetcher", "default_workers", "NEVER_INSTALLED"]

class NonFiniteLoss(IrnbenchError):
    """Too many non-finite losses or gradients in a row: the run stopped."""


def lr_factor(step: int, preset: Preset) -> float:
    """Learning-rate multiplier at ``step``: linear warm-up, then ×gamma at each milestone."""
    warm = min(1.0, (step + 1) / preset.warmup) if preset.warmup else 1.0
    decays = sum(1 for m in preset.milestones if step >= m)
    return warm * preset.gamma**decays


@dataclass
class TrainResult:
    out_dir: Path
    weights: Path
    iterations: int
    wall_seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    installed: Path | None = None


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
    colours differ from the test photos: two irn ×2 fine-tunes, with and without colour
    augmentation, ranked the same way on the whole muted ``sail`` as on its 64² crop, the other
    way round from ``mini`` (docs/experiments.md, IRN ``cpu-ft``).
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
    overwrite: bool = False,
    channels_last: bool = False,
    seed: int = 0,
    amp: str | None = None,
    compile: bool = False,  # noqa: A002 - the CLI's --compile
    install: bool = True,
    progress: bool = True,
    max_bad_steps: int = 10,
    command: str | None = None,
    init: str | Path | None = None,
    init_sha256: str | None = None,
    tag: str = DEFAULT_TRAIN_TAG,
    workers: int | None = None,
    replace: bool = False,
    **setting: Any,
) -> TrainResult:
    """Train ``name`` on ``task`` with one of its presets; install the weights in the user cache
    under ``tag`` (default ``local``: used only when named, as ``NAME.local``).

    A ``smoke`` preset never installs, so a wiring check cannot change what a later ``run``
    measures; other weights under ``tag`` need ``replace`` (else refused before training).
    ``iterations`` overrides the preset's total (e.g. to continue a run for longer with
    ``resume``); milestones stay those of the preset. ``init`` starts from trained weights (a
    fine-tune, like the official ``pretrain_model_G``; fresh optimiser, the preset's schedule from
    step 0), refused unless its sha256 starts with ``init_sha256`` (when given); chain-step
    presets (``Preset.continues``) need it. The weights' sha256 and steps are recorded (a CLI
    command with ``--init`` is recorded with ``--init-sha256``), and the label names every
    preset of the chain and counts all their steps (``weights_label``). Under
    torchrun (``WORLD_SIZE`` > 1) this runs data-parallel (see the module docstring); every rank
    returns the same result, but only rank 0 writes files. ``workers`` DataLoader processes
    sample the crops ahead of the steps (default ``default_workers``); results do not depend on
    their number.

    ``amp`` (``AMP_MODES``; ``bf16=True`` is the older spelling of ``amp="bf16"``) autocasts the
    forward pass, fp16 with a GradScaler whose state is checkpointed; ``channels_last`` and
    ``compile`` (``torch.compile`` of the method's ``training_loss``) are opt-in. The resolved
    settings are recorded in the checkpoint and the weights' sidecar.
    """
    if workers is not None and workers < 0:  # before any data is loaded or folder made
        raise InvalidSetting(f"workers must be ≥ 0, got {workers}")
    if bf16 and amp not in (None, "bf16"):
        raise InvalidSetting(f"bf16=True contradicts amp={amp!r} (--bf16 is --amp bf16)")
    amp = "bf16" if bf16 else (amp or "off")
    run = _setup_run(name, task, preset, datasets, out, device, iterations, amp, channels_last,
                     compile, seed, install, progress, max_bad_steps, init, init_sha256, tag,
                     setting, resume, overwrite, replace)
    run.workers = default_workers(run.dev) if workers is None else int(workers)
    if resume:
        _resume(run)
    run.ctx.broadcast_module(run.model)  # identical start on every rank, whatever the init did
    command = command or f"train_method({name!r}, preset={preset!r})"
    run.commands = [*run.commands, recorded_command(command, run.init_meta)]
    _loop(run)
    installed = run.ctx.on_main(lambda: _finish(run), "writing the final weights")
    if run.ctx.enabled:
        # rank 0's view (validation included) on every rank
        installed, run.history = run.ctx.broadcast_object((installed, run.history))
    return TrainResult(run.out_dir, run.out_dir / WEIGHTS, run.total, run.wall, run.history,
                       installed)


@dataclass
class _Run:
    """Everything one training run holds between its steps."""

    name: str
    task: Task
    preset: str
    p: Preset
    total: int
    ctx: Any
    dev: torch.device
    shard: range
    out_dir: Path
    model: Method
    opt: torch.optim.Optimizer
    params: list[torch.Tensor]
    data: TrainingData
    meta_base: dict[str, Any]
    init_meta: dict[str, Any]
    seed: int
    amp: str  #: resolved: off, bf16 or fp16 (see ``resolve_amp``)
    channels_last: bool
    compile: bool
    scaler: Any  #: a torch.amp.GradScaler, enabled for fp16 only
    loss_fn: Any  #: the method's training_loss, compiled or not
    tag: str
    install: bool
    progress: bool
    max_bad_steps: int
    replace: bool = False  #: the install may replace other weights under the tag
    start: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    wall: float = 0.0
    commands: list[str] = field(default_factory=list)
    saved_at: int | None = None  #: iteration of the checkpoint on disk that is known good
    t0: float = 0.0
    bar: Any = None
    workers: int = 0  #: DataLoader worker processes (not recorded: results do not depend on it)
    source: BatchSource | None = None  #: the loop's data source, opened at the first step

    @property
    def ckpt(self) -> Path:
        return self.out_dir / CHECKPOINT

    @property
    def val_key(self) -> str:
        return f"val_{getattr(self.task, 'validation_metric', 'psnr_y')}"  # e.g. val_psnr_y

    def checkpoint(self, step: int) -> None:
        """Rank 0: write the checkpoint; a failed write is reported and training goes on."""
        try:
            save_checkpoint(self.ckpt, self.model, self.opt, {
                **self.meta_base, "iteration": step, "history": self.history,
                "wall": self.wall + time.perf_counter() - self.t0, "commands": self.commands,
                "scaler": self.scaler.state_dict()})
        except OSError as exc:
            try:  # the tensor file is authoritative: say which iteration it holds now
                self.saved_at = read_checkpoint_meta(self.ckpt)["iteration"]
            except (IrnbenchError, KeyError):
                self.saved_at = None
            kept = (f"the previous checkpoint (iteration {self.saved_at}) in {self.ckpt} is "
                    "intact" if self.saved_at is not None else "there is no earlier checkpoint")
            msg = f"checkpoint at iteration {step} could not be written ({exc}); {kept}"
            warnings.warn(msg, CheckpointWriteWarning, stacklevel=2)
            if self.bar is not None:
                self.bar.write(f"warning: {msg}")
            return
        self.saved_at = step


def _preset_of(cls: type[Method], name: str, task: Task, preset: str) -> Preset:
    if cls.training_note:
        raise InvalidSetting(f"irnbench does not train {name!r}: {cls.training_note}")
    if not cls.trainable():
        raise InvalidSetting(f"method {name!r} has nothing to train")
    presets = cls.presets_for(task)
    if preset not in presets:
        raise InvalidSetting(
            f"method {name!r} has no preset {preset!r}; presets: {', '.join(presets)}"
        )
    return presets[preset]


def _setup_run(name, task, preset, datasets, out, device, iterations, amp, channels_last,
               compile_, seed, install, progress, max_bad_steps, init, init_sha256, tag,
               setting, resume=False, overwrite=False, replace=False) -> _Run:
    """Check the arguments and build the model, optimiser, data and the run's metadata."""
    cls = get_method_class(name)
    _check_train_tag(tag)
    task_obj = create_task(task, **setting) if isinstance(task, str) else task
    task_obj = cls.weights_task(task_obj)  # e.g. IRN on compress trains its rescale weights
    p = _preset_of(cls, name, task_obj, preset)
    total = int(p.iterations if iterations is None else iterations)
    if total < 0:
        raise InvalidSetting(f"iterations must be ≥ 0, got {total}")
    out_dir = Path(out) if out else user_home() / "runs" / f"train-{name}-{task_obj.key}-{preset}"
    installs = install and preset not in NEVER_INSTALLED
    replaced = _check_out_dir(out_dir, resume, overwrite, installs)
    if installs:
        refuse_replace(name, task_obj.key, tag, replace)
    ctx, dev = setup(device)
    amp = resolve_amp(amp, dev)
    if p.batch_size % ctx.world:
        raise InvalidSetting(
            f"preset {preset!r} of {name!r} has batch size {p.batch_size}, which {ctx.world} "
            f"processes cannot share equally: use a world size that divides {p.batch_size}"
        )
    per_rank = p.batch_size // ctx.world
    torch.manual_seed(seed)
    model = create_method(name, task_obj, pretrained=False, **p.options).to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    init_meta = load_init(model, cls, task_obj, p, init, init_sha256)
    if ctx.is_main:  # after the checks of --init: a refused run leaves no folder behind
        remove_own_files(replaced)  # --overwrite: the old run's files go only now
        out_dir.mkdir(parents=True, exist_ok=True)
    model.train()
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.Adam(params, lr=p.lr, betas=p.betas, eps=p.eps,
                           weight_decay=p.weight_decay)
    data = TrainingData(resolve_dataset(datasets), task_obj)
    # The scaler's torch ops run on the device (torch.amp.GradScaler("cpu") on CPU); disabled,
    # its scale/unscale_/step/update are plain pass-throughs.
    scaler = torch.amp.GradScaler(dev.type, enabled=amp == "fp16")
    # The loss, not the module: training_loss is what runs, and the state dict keeps its keys.
    loss_fn = torch.compile(model.training_loss) if compile_ else model.training_loss
    run = _Run(name, task_obj, preset, p, total, ctx, dev,
               range(ctx.rank * per_rank, (ctx.rank + 1) * per_rank), out_dir, model, opt,
               params, data, {}, init_meta, seed, amp, channels_last, compile_, scaler, loss_fn,
               tag, installs, progress, max_bad_steps, replace)
    run.meta_base = _meta_base(run)
    return run


def _check_out_dir(out_dir: Path, resume: bool, overwrite: bool, install: bool) -> list[Path]:
    """Before any work: ``--out`` (and the cache the weights install into) must be writable, and
    a folder holding a checkpoint or weights needs ``--resume`` or ``--overwrite``. Returns the
    files ``--overwrite`` replaces (removed once every other check has passed)."""
    own = [CHECKPOINT, Path(CHECKPOINT).with_suffix(".json").name, WEIGHTS,
           Path(WEIGHTS).with_suffix(".json").name]
    present = refuse_existing(out_dir, own, "a training run", resume, overwrite)
    if resume and not present:
        raise IrnbenchError(f"--resume: no checkpoint in {out_dir}")
    if install:
        check_cache()
    check_writable(out_dir)
    return present if overwrite else []


def _meta_base(run: _Run) -> dict[str, Any]:
    """What every checkpoint and the final weights record about the run."""
    meta = {
        "kind": "irnbench-checkpoint",
        "method": run.name,
        "task": run.task.name,
        "setting": run.task.setting,
        "task_key": run.task.key,
        "preset": run.preset,
        # The preset's full settings: its numbers may change under the same name.
        "preset_config": preset_config(run.p),
        "iterations_planned": run.total,
        "seed": run.seed,
        "data": {"name": run.data.name, "fingerprint": run.data.fingerprint,
                 "train_images": run.data.train_names, "val_images": run.data.val_names},
        "irnbench_version": __version__,
        "amp": run.amp,
        "bf16": run.amp == "bf16",  # the field of runs made before --amp
        "channels_last": run.channels_last,
        "compile": run.compile,
        "world_size": run.ctx.world,
        "tag": run.tag,
    }
    if run.init_meta:
        meta["init"] = run.init_meta
    inputs = run.model.training_inputs()
    if inputs:
        meta["inputs"] = inputs
    return meta


def _resume(run: _Run) -> None:
    """Continue from the checkpoint in the run folder (checked against this run's settings)."""
    blob = read_resume_checkpoint(run.ckpt, run.out_dir, run.meta_base, run.data.fingerprint,
                                  run.ctx)
    meta = load_checkpoint(blob, run.model, run.opt)
    run.start, run.history = meta["iteration"], meta.get("history", [])
    run.wall, run.commands = meta.get("wall", 0.0), meta.get("commands", [])
    run.saved_at = run.start
    if run.scaler.is_enabled() and meta.get("scaler"):  # fp16 continues at its loss scale
        run.scaler.load_state_dict(meta["scaler"])


def default_workers(dev: torch.device) -> int:
    """DataLoader workers when ``--workers`` is not given: none on a CPU device (the model's
    threads use every core, and a crop costs far less than a step), else up to 2."""
    return 0 if dev.type == "cpu" else min(2, os.cpu_count() or 1)


def batch_fetcher(data: TrainingData, p: Preset, seed: int,
                  indices: Sequence[int] | None = None
                  ) -> Callable[[int], dict[str, torch.Tensor]]:
    """``step`` → the batch of ``step`` under preset ``p`` (only ``indices`` of it), on the CPU:
    what the loop's data source (and ``benchmarks/bench_train_data.py``) samples."""
    return functools.partial(data.batch, size=p.batch_size, seed=seed, crop=p.crop,
                             augment=p.augment, indices=indices, color=p.color)


def _batch(run: _Run, step: int) -> dict[str, Any]:
    """This rank's share of the global batch of ``step``, on the device."""
    p = run.p
    if run.source is None:  # the first step of this process: start the workers here
        run.source = BatchSource(batch_fetcher(run.data, p, run.seed, run.shard),
                                 range(step, run.total), run.workers,
                                 pin_memory=run.dev.type == "cuda")
    batch: dict[str, Any] = run.source.get(step)
    batch = {k: v.to(run.dev, non_blocking=True) for k, v in batch.items()}
    if run.channels_last:
        batch.update({k: batch[k].contiguous(memory_format=torch.channels_last)
                      for k in ("hr", "lr_ref")})
    batch["global_batch"] = p.batch_size
    batch["randn"] = SampleNoise(run.seed, [step * p.batch_size + i for i in run.shard],
                                 run.dev)
    batch["generator"] = torch.Generator(device=run.dev).manual_seed(
        run.seed * 1_000_003 + step + run.ctx.rank * 2**40)
    return batch


def _step(run: _Run, step: int, autocast) -> tuple[list[str], torch.Tensor, bool]:
    """Forward, one all-reduce of the loss terms, backward, clip: (loss keys, global sums with
    the count of non-finite ranks last, whether the step is finite on every rank)."""
    with autocast:
        losses = run.loss_fn(_batch(run, step), run.task)
    keys = list(losses)
    # The loss terms (→ global means) and the count of ranks whose optimised ``total`` is
    # not finite, so that every rank takes the same decision.
    stats = torch.stack([losses[k].detach().float().reshape(()) for k in keys])
    stats = torch.cat([stats, (~torch.isfinite(losses["total"].detach().float())).float()
                       .reshape(1)])
    run.ctx.all_reduce_sum(stats)
    run.opt.zero_grad(set_to_none=True)
    finite = bool(stats[-1] == 0)
    if finite:
        run.scaler.scale(losses["total"]).backward()
        run.ctx.average_gradients(run.params)
        # Unscaled after the average, so every rank sees the same gradients and overflow; clip
        # the true gradients.
        run.scaler.unscale_(run.opt)
        gnorm = torch.nn.utils.clip_grad_norm_(run.params, run.p.grad_clip or float("inf"))
        finite = bool(torch.isfinite(gnorm))  # the same on every rank: same gradients
        if not finite:
            run.scaler.update()  # fp16: an overflow, the scale backs off (the step is skipped)
    return keys, stats, finite


def _stop_non_finite(run: _Run, step: int, bad: int) -> None:
    """``max_bad_steps`` non-finite steps in a row: checkpoint the last good state and stop."""
    good = step - bad + 1
    _close_source(run)

    def stop_checkpoint() -> int | None:
        run.checkpoint(good)  # the state after the last good step
        return run.saved_at

    last = run.ctx.broadcast_object(run.ctx.on_main(stop_checkpoint, "checkpointing"))
    where = (f"the last good state (iteration {last}) is in {run.ckpt}"
             if last is not None else "no checkpoint could be written")
    raise NonFiniteLoss(
        f"{bad} non-finite steps in a row at step {step}; stopped. {where} "
        "(resume with a lower learning rate)"
    )


def _loop(run: _Run) -> None:
    """The optimisation steps from ``run.start`` to ``run.total``."""
    p, ctx = run.p, run.ctx
    val_side = validation_side(p)
    dtype = amp_dtype(run.amp)
    autocast = torch.autocast(run.dev.type, dtype=dtype or torch.bfloat16,
                              enabled=dtype is not None)
    bad = 0
    run.t0 = time.perf_counter()
    run.bar = bar = tqdm(range(run.start, run.total), initial=run.start, total=run.total,
                         disable=not (run.progress and ctx.is_main),
                         desc=f"train {run.name} {run.task.setting_label} ({run.preset})",
                         unit="it")
    for step in bar:
        for g in run.opt.param_groups:
            g["lr"] = p.lr * lr_factor(step, p)
        keys, stats, finite = _step(run, step, autocast)
        if not finite and fp16_overflow(run.scaler, stats):
            continue  # the scaler backed off; not a bad step (the first ones overflow often)
        if not finite:
            bad += 1
            if ctx.is_main:
                bar.write(f"step {step}: non-finite loss or gradient, step skipped "
                          f"({bad} in a row)")
            if bad >= run.max_bad_steps:
                _stop_non_finite(run, step, bad)
            continue
        bad = 0
        run.scaler.step(run.opt)  # opt.step(), unless fp16 found an overflow
        run.scaler.update()
        _record(run, step, keys, stats, val_side)
    bar.close()
    _close_source(run)
    run.wall += time.perf_counter() - run.t0
    if run.channels_last:
        run.model = run.model.to(memory_format=torch.contiguous_format)


def _close_source(run: _Run) -> None:
    """Stop the data workers of a finished or stopped loop."""
    if run.source is not None:
        run.source.close()
        run.source = None


def _record(run: _Run, step: int, keys: list[str], stats: torch.Tensor, val_side: int) -> None:
    """History, validation, progress bar and periodic checkpoint after a good step."""
    p, ctx = run.p, run.ctx
    mean = (stats[:-1] / ctx.world).tolist()
    record = {"step": step + 1, **dict(zip(keys, mean, strict=True))}
    val_step = bool(p.val_every and (step + 1) % p.val_every == 0)
    if val_step and ctx.is_main:
        record[run.val_key] = validate(run.model, run.task, run.data, run.dev, val_side)
    if (step + 1) % max(1, run.total // 200) == 0 or val_step or step + 1 == run.total:
        run.history.append(record)
    if ctx.is_main:
        run.bar.set_postfix(loss=f"{record['total']:.3g}",
                            **({"val": f"{record[run.val_key]:.2f}"}
                               if run.val_key in record else {}))
        if p.checkpoint_every and (step + 1) % p.checkpoint_every == 0:
            run.checkpoint(step + 1)


def _finish(run: _Run) -> Path | None:
    """Rank 0: last checkpoint, the final weights + sidecar, and the install under the tag."""
    if run.start < run.total and run.saved_at != run.total:
        run.checkpoint(run.total)
    weights = run.out_dir / WEIGHTS
    weights_meta = {**run.meta_base, "kind": "irnbench-weights", "iteration": run.total,
                    "steps_in_all": run.total + int(run.init_meta.get("steps_in_all") or 0),
                    "wall": run.wall, "label": weights_label(run.preset, run.total,
                                                             run.init_meta),
                    "commands": run.commands, "history": run.history[-20:],
                    f"final_{run.val_key}": validate(run.model, run.task, run.data, run.dev,
                                                     validation_side(run.p))}
    try:
        save_weights(weights, run.model, weights_meta)
    except OSError as exc:
        kept = (f"the last checkpoint (iteration {run.saved_at}) in {run.ckpt} is intact: "
                "free space and `--resume`" if run.saved_at is not None else
                "no checkpoint was written")
        raise IrnbenchError(f"the final weights could not be written to {weights} "
                            f"({exc}); {kept}") from exc
    if not run.install:
        return None
    record = WeightsRecord.from_json(json.loads(weights.with_suffix(".json").read_text()))
    try:
        return install_weights(weights.read_bytes(), record.with_(tag=run.tag),
                               replace=run.replace).path
    except WeightsExist as exc:  # installed by another process while this one trained
        raise WeightsExist(f"not installed: {exc}; the trained weights are in {weights} "
                           "(the same command with --resume --replace installs them)") from None
    except OSError as exc:
        raise IrnbenchError(f"the weights could not be installed in the cache ({exc}); they "
                            f"are in {weights}") from None

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
