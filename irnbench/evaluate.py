"""Evaluation: methods × task setting × datasets → one row per (image, channel condition, draw).

The harness owns everything between ``degrade`` and ``restore``: it prepares the HR image
(modcrop), runs the channel (uint8, optionally JPEG or WebP), rounds the output, and scores it
with the task's protocol. One method failing does not stop the others: its rows are marked failed.

Under torchrun (``WORLD_SIZE`` > 1, see ``irnbench.distributed``) the images are split across
ranks (rank r takes images r, r + world, … of the run's image list), every rank's rows, notes and
visual crops are gathered and put back in the single-process order, so the table is the one a
single process gives (``seconds`` aside); every rank returns it.

With a ``store`` (:class:`irnbench.runfolder.UnitLog`) the evaluation is durable and resumable:
each finished unit, one (setting, image, method) with all its channel-condition × draw rows (or
its failure), is written as it completes, and units already stored are read back, not computed.
Draws are seeded by their index alone, so a resumed run's rows equal an uninterrupted run's.
"""

from __future__ import annotations

import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from irnbench.channel import condition_codec
from irnbench.data.decode import DataWarning
from irnbench.data.loading import EvalDataset
from irnbench.distributed import setup
from irnbench.methods import Method
from irnbench.ops.quantize import from_uint8, to_uint8
from irnbench.protocol import DEFAULT_TEMPERATURE, DRAW_SEED, STOCHASTIC_DRAWS
from irnbench.results import frame
from irnbench.runfolder import UnitLog
from irnbench.tasks.base import Task

__all__ = ["EvalResult", "Visual", "evaluate", "pick_crop", "error_crop", "place_crops"]


@dataclass
class Visual:
    """A zoomed crop of one image: GT and each method's restoration (uint8 ``C×h×w``)."""

    dataset: str
    image: str
    setting: str
    quality: int | None
    box: tuple[int, int, int, int]  #: top, left, height, width in HR pixels
    crops: dict[str, torch.Tensor] = field(default_factory=dict)  #: "GT" / method → crop
    codec: str | None = None  #: the channel's codec ("jpeg", "webp"; None: plain uint8)
    #: Same box of the degraded images, for tasks with ``visual_channel`` (e.g. decolorize's
    #: grey): "guide" (the uint8 reference) / method → what came through the channel.
    channel_crops: dict[str, torch.Tensor] = field(default_factory=dict)
    channel_label: str | None = None  #: the task's ``visual_channel``, e.g. "grey"
    #: Whole uint8 images until the box is chosen (``place_crops``), then emptied.
    full: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    channel_full: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)


@dataclass
class EvalResult:
    df: pd.DataFrame
    visuals: list[Visual]
    notes: list[str]  #: data warnings (conversions, skips, modcrops), shown in the report
    #: (dataset index, image, evaluated) of every record, in order; False: skipped (unusable)
    images: list[tuple[int, str, bool]] = field(default_factory=list)


def pick_crop(hr: torch.Tensor, size: int) -> tuple[int, int, int, int]:
    """The ``size``² window (on a coarse grid) with the most luma variance: a detailed region."""
    _, h, w = hr.shape[-3:]
    size = min(size, h, w)
    grey = hr.reshape(-1, h, w).mean(0)
    best, box = -1.0, (0, 0, size, size)
    step = max(size // 2, 1)
    for top in range(0, h - size + 1, step):
        for left in range(0, w - size + 1, step):
            v = float(grey[top : top + size, left : left + size].var())
            if v > best:
                best, box = v, (top, left, size, size)
    return box


def error_crop(gt: torch.Tensor, restored: Sequence[torch.Tensor], size: int
               ) -> tuple[int, int, int, int]:
    """The ``size``² window (on a half-window grid) where the methods differ most: the largest
    sum of the per-pixel spread (std over methods) of the absolute error; one method: its
    largest error; none: ``pick_crop``'s most detailed window."""
    if not restored:
        return pick_crop(gt.float(), size)
    h, w = gt.shape[-2:]
    size = min(size, h, w)
    err = torch.stack([(r.float() - gt.float()).abs().mean(0) for r in restored])
    spread = err.std(0, unbiased=False) if len(restored) > 1 else err[0]
    step = max(size // 2, 1)
    sums = torch.nn.functional.avg_pool2d(spread[None, None], size, stride=step)[0, 0]
    i = int(torch.argmax(sums))
    top, left = divmod(i, sums.shape[-1])
    return (top * step, left * step, size, size)


def place_crops(v: Visual, size: int) -> None:
    """Choose the box of a visual from the methods' whole restorations, then crop them all."""
    gt = v.full.pop("GT")
    v.box = error_crop(gt, list(v.full.values()), size)
    v.crops = {"GT": _crop(gt, v.box), **{k: _crop(x, v.box) for k, x in v.full.items()}}
    v.channel_crops = {k: _crop(x, v.box) for k, x in v.channel_full.items()}
    v.full, v.channel_full = {}, {}


def _crop(img_u8: torch.Tensor, box: tuple[int, int, int, int]) -> torch.Tensor:
    t, l, h, w = box
    return img_u8[..., t : t + h, l : l + w].cpu().clone()


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def evaluate(
    methods: Sequence[Method],
    task: Task,
    datasets: Sequence[EvalDataset],
    device: str | torch.device = "auto",
    draws: int = STOCHASTIC_DRAWS,
    temperature: float = DEFAULT_TEMPERATURE,
    visual_images: int = 3,
    visual_crop: int = 96,
    failed: dict[str, str] | None = None,
    progress: bool = True,
    extra_metrics: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] | None = None,
    store: UnitLog | None = None,
) -> EvalResult:
    """Evaluate ``methods`` on ``task`` over ``datasets`` (see module docstring).

    ``failed`` maps method names that could not even be built to their error; they get a
    failed row per dataset so that the leaderboard shows them. ``extra_metrics`` maps a column
    name to ``f(restored, hr) -> scores`` (e.g. pyiqa's LPIPS from ``metrics.iqa_metric``),
    computed on the uint8-rounded images. ``store``: write each finished unit durably, and
    read back the units it already holds (``run --resume``).
    """
    ctx, dev = setup(device)
    methods = [m.to(dev).eval() for m in methods]
    run = _Run(task=task, dev=dev, draws=draws, temperature=temperature,
               extra_metrics=extra_metrics or {}, built_failed=dict(failed or {}),
               degrade_keys={m.spec: m.degrade_key() for m in methods}, store=store)
    if store is not None:
        run.failures = _stored_failures(store, task.setting_label)
    n = 0  # running image number over all datasets: rank r takes n ≡ r (mod world)
    for d, ds in enumerate(datasets):
        n_shown = 0  # usable images of this dataset seen by this rank
        bar = tqdm(ds.records, desc=f"{task.name} {task.setting_label} {ds.name}",
                   disable=not (progress and ctx.is_main), unit="img", leave=False)
        for r, rec in enumerate(bar):
            n += 1
            if (n - 1) % ctx.world != ctx.rank:
                continue
            hr, img_base = _load_image(run, ds, rec, (d, r))
            run.images.append(((d, r), (d, rec.name, hr is not None)))
            if hr is None:
                continue
            # Fewer than ``visual_images`` usable images before this one on this rank: it may be
            # among the dataset's first ``visual_images`` (decided after gathering).
            show = n_shown < visual_images
            n_shown += 1
            _evaluate_image(run, methods, hr, img_base, (d, r), show, visual_crop)
        bar.close()
    if ctx.enabled:
        _gather(run, ctx, visual_images)
    return _result(run, methods, datasets)


@dataclass
class _Run:
    """One evaluation's settings and what it has gathered so far, keyed by the image's place
    (dataset, record) so that the pieces of a sharded run go back into single-process order."""

    task: Task
    dev: torch.device
    draws: int
    temperature: float
    extra_metrics: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]
    built_failed: dict[str, str]
    #: Method spec → ``Method.degrade_key()``: methods with one key share one degrade per image.
    degrade_keys: dict[str, str | None]
    rows: list[tuple[tuple[int, int], dict[str, Any]]] = field(default_factory=list)
    visuals: list[tuple[tuple[int, int], Visual]] = field(default_factory=list)
    notes: list[tuple[tuple[int, int], str]] = field(default_factory=list)
    #: method → (key, error, note) of its first failure
    failures: dict[str, tuple[tuple[int, int], str, str]] = field(default_factory=dict)
    store: UnitLog | None = None  #: the durable record of finished units, if any
    #: (dataset index, image, evaluated) of every record this rank loaded
    images: list[tuple[tuple[int, int], tuple[int, str, bool]]] = field(default_factory=list)

    @property
    def base(self) -> dict[str, Any]:
        return {"source": "measured", "task": self.task.name, "setting": self.task.setting_label}


def _load_image(run: _Run, ds: EvalDataset, rec: Any, key: tuple[int, int]
                ) -> tuple[torch.Tensor | None, dict[str, Any]]:
    """Decode one record, note data warnings and skips, and prepare the HR (modcrop) on the
    device; ``None`` when the image is unusable."""
    task = run.task
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        img = rec.load()
    for w in caught:
        if not issubclass(w.category, DataWarning):
            continue
        run.notes.append((key, f"{ds.name}: {w.message}"))
        warnings.warn(f"{ds.name}: {w.message}", DataWarning, stacklevel=3)
    if img is None:
        return None, {}
    h0, w0 = img.shape[-2:]
    if min(h0, w0) < task.min_size():
        msg = (f"{ds.name}: {rec.name}: {w0}x{h0} is smaller than the "
               f"{task.min_size()} px this task needs; skipped")
        run.notes.append((key, msg))
        warnings.warn(msg, DataWarning, stacklevel=3)
        return None, {}
    hr = task.prepare(img.unsqueeze(0)).to(run.dev)
    h, w = hr.shape[-2:]
    note = ""
    if (h, w) != (h0, w0):
        note = f"modcropped {w0}x{h0} → {w}x{h}"
        run.notes.append((key, f"{ds.name}: {rec.name}: {note}"))
    return hr, {**run.base, "dataset": ds.name, "image": rec.name, "height": h, "width": w,
                "notes": note}


def _evaluate_image(run: _Run, methods: Sequence[Method], hr: torch.Tensor,
                    img_base: dict[str, Any], key: tuple[int, int], show: bool,
                    visual_crop: int) -> None:
    """Run every method on one HR image (a failing method is isolated and dropped). With a
    store, units on file are read back, and each new one is written as it completes."""
    task = run.task
    reference: list[torch.Tensor] = []  # the task's reference, computed when first needed

    def ref() -> torch.Tensor:
        if not reference:
            reference.append(task.reference(hr))
        return reference[0]

    vis: dict[tuple[str | None, int | None], Visual] = {}
    stored = _stored_crops(run, key, img_base) if show else None
    if stored is not None:  # every unit of this shown image was done: its crops are on file
        run.visuals.extend((key, v) for v in stored)
    elif show:  # the box is chosen once every method has run (``place_crops``)
        vis = _new_visuals(task, hr, ref(), img_base)
        run.visuals.extend((key, v) for v in vis.values())
    degraded: dict[str, tuple[torch.Tensor, float]] = {}  # degrade key → (y, seconds)
    fulls = []  # this image's stored restorations, removed once its crops are stored
    for method in methods:
        spec = method.spec
        if spec in run.built_failed or (spec in run.failures and run.failures[spec][0] < key):
            continue  # a method stops at its first failure (a single process's order)
        unit, images = _stored_unit(run, _unit_key(run, key, spec), bool(vis))
        if unit is None:
            unit = _compute_unit(run, method, hr, ref(), img_base, key, vis, degraded)
        else:
            _restore_fulls(images, spec, vis)
        fulls += [unit["full"]] if unit.get("full") else []
        _apply_unit(run, spec, key, unit)
    for v in vis.values():
        place_crops(v, visual_crop)
    if vis and run.store is not None:
        run.store.save_images(UnitLog.image_name(_unit_key(run, key), "crops"),
                              [_crops_record(v) for v in vis.values()])
        run.store.remove_images(fulls)


def _unit_key(run: _Run, key: tuple[int, int], *spec: str) -> list[Any]:
    """A unit's durable key: setting, dataset index, record index, method spec."""
    return [run.task.setting_label, key[0], key[1], *spec]


def _compute_unit(run: _Run, method: Method, hr: torch.Tensor, reference: torch.Tensor,
                  img_base: dict[str, Any], key: tuple[int, int],
                  vis: dict[tuple[str | None, int | None], Visual],
                  degraded: dict[str, tuple[torch.Tensor, float]]) -> dict[str, Any]:
    """One method on one image, its rows or its failure; with a store, written durably (with
    the restorations of a shown image) before it counts."""
    unit: dict[str, Any] = {"key": _unit_key(run, key, method.spec),
                            "dataset": img_base["dataset"], "image": img_base["image"],
                            "shown": bool(vis)}
    try:
        unit.update(status="ok",
                    rows=_run_method(run, method, hr, reference, img_base, vis, degraded))
    except Exception as exc:  # noqa: BLE001 - failure isolation is the point
        err = f"{type(exc).__name__}: {exc}"
        unit.update(status="failed", rows=[], error=err,
                    note=f"{method.spec} failed on {img_base['dataset']}/{img_base['image']}: "
                         f"{err}\n" + traceback.format_exc(limit=3))
    if run.store is None:
        return unit
    if vis:
        unit["full"] = UnitLog.image_name(unit["key"], "full")
        run.store.save_images(unit["full"], [
            {"cond": list(ck), "full": v.full.get(method.spec),
             "channel": v.channel_full.get(method.spec)} for ck, v in vis.items()])
    return run.store.append(unit)


def _stored_unit(run: _Run, ukey: list[Any], shown: bool) -> tuple[dict[str, Any] | None, Any]:
    """The unit on file and, for a shown image, its stored restorations; (None, None) when it
    must be computed (not on file, or shown now without restorations on file)."""
    unit = run.store.get(ukey) if run.store is not None else None
    if unit is None or not shown:
        return unit, None
    images = run.store.load_images(unit.get("full")) if unit.get("shown") else None
    return (unit, images) if images is not None else (None, None)


def _restore_fulls(images: Any, spec: str,
                   vis: dict[tuple[str | None, int | None], Visual]) -> None:
    """Put a stored unit's restorations back into the shown image's visuals."""
    for entry in images or []:
        v = vis.get(tuple(entry["cond"]))
        if v is None:
            continue
        if entry["full"] is not None:
            v.full[spec] = entry["full"]
        if entry["channel"] is not None:
            v.channel_full[spec] = entry["channel"]


def _apply_unit(run: _Run, spec: str, key: tuple[int, int], unit: dict[str, Any]) -> None:
    """A unit's rows into the table, or its failure (the first one of the method counts)."""
    if unit["status"] == "ok":
        run.rows.extend((key, row) for row in unit["rows"])
    elif spec not in run.failures or key < run.failures[spec][0]:
        run.failures[spec] = (key, unit["error"], unit["note"])


def _stored_failures(store: UnitLog, setting: str
                     ) -> dict[str, tuple[tuple[int, int], str, str]]:
    """Each method's first failure on file for one setting (whichever rank met it)."""
    out: dict[str, tuple[tuple[int, int], str, str]] = {}
    for unit in store.units.values():
        label, d, r, spec = unit["key"]
        if label == setting and unit["status"] == "failed":
            if spec not in out or (d, r) < out[spec][0]:
                out[spec] = ((d, r), unit["error"], unit["note"])
    return out


def _crops_record(v: Visual) -> dict[str, Any]:
    return {"codec": v.codec, "quality": v.quality, "box": list(v.box), "crops": v.crops,
            "channel_crops": v.channel_crops, "channel_label": v.channel_label}


def _stored_crops(run: _Run, key: tuple[int, int], img_base: dict[str, Any]
                  ) -> list[Visual] | None:
    """The visuals of a shown image whose units were all done, from file (None: not there)."""
    if run.store is None:
        return None
    saved = run.store.load_images(UnitLog.image_name(_unit_key(run, key), "crops"))
    if saved is None:
        return None
    return [Visual(img_base["dataset"], img_base["image"], run.task.setting_label,
                   e["quality"], tuple(e["box"]), dict(e["crops"]), codec=e["codec"],
                   channel_crops=dict(e["channel_crops"]), channel_label=e["channel_label"])
            for e in saved]


def _cond_key(cond: dict[str, Any]) -> tuple[str | None, int | None]:
    """(codec, quality) of a channel condition: what tells its rows and visuals apart."""
    return condition_codec(cond), cond.get("quality")


def _new_visuals(task: Task, hr: torch.Tensor, reference: torch.Tensor,
                 img_base: dict[str, Any]) -> dict[tuple[str | None, int | None], Visual]:
    """One visual per channel condition of a shown image, holding the whole GT (and guide)."""
    gt = to_uint8(hr)[0].cpu()
    guide = (to_uint8(reference)[0].cpu()
             if task.visual_channel and reference.shape[-2:] == hr.shape[-2:] else None)
    vis = {}
    for cond in task.conditions():
        v = Visual(img_base["dataset"], img_base["image"], task.setting_label,
                   cond.get("quality"), (0, 0, 0, 0), codec=condition_codec(cond))
        v.full["GT"] = gt
        if guide is not None:
            v.channel_label = task.visual_channel
            v.channel_full["guide"] = guide
        vis[_cond_key(cond)] = v
    return vis


def _gather(run: _Run, ctx: Any, visual_images: int) -> None:
    """Merge every rank's rows, visuals, notes and failures back into single-process order."""
    parts = ctx.gather_objects((run.rows, run.visuals, run.notes, run.failures, run.images))
    run.rows = [x for part in parts for x in part[0]]
    run.visuals = [x for part in parts for x in part[1]]
    run.notes = [x for part in parts for x in part[2]]
    run.images = sorted(x for part in parts for x in part[4])
    run.failures = {}
    for part in parts:
        for name, fail in part[3].items():
            if name not in run.failures or fail[0] < run.failures[name][0]:
                run.failures[name] = fail  # the one a single process meets first
    # rows of one image come from one rank, in order: a stable sort restores the order
    run.rows.sort(key=lambda kv: kv[0])
    run.notes.sort(key=lambda kv: kv[0])
    run.visuals.sort(key=lambda kv: kv[0])
    # a rank cannot tell whether other ranks' earlier images were usable: keep the first
    # ``visual_images`` usable images of each dataset
    kept, shown = [], {}
    for key, v in run.visuals:
        images = shown.setdefault(key[0], [])
        if key[1] not in images:
            images.append(key[1])
        if len(images) <= visual_images:
            kept.append((key, v))
    run.visuals = kept


def _drop_after_failures(run: _Run) -> None:
    """A single process stops running a method after its first failure: drop its crops from
    later images (another rank, or a run resumed from other ranks' units, may have made them)."""
    for name, (key, _, _) in run.failures.items():
        for vkey, v in run.visuals:
            if vkey > key:
                v.crops.pop(name, None)
                v.channel_crops.pop(name, None)


def _result(run: _Run, methods: Sequence[Method], datasets: Sequence[EvalDataset]
            ) -> EvalResult:
    """The rows, with a failed method's partial rows replaced by one failed row per dataset."""
    _drop_after_failures(run)
    order = {m.spec: i for i, m in enumerate(methods)}
    first = sorted(run.failures.items(), key=lambda kv: (kv[1][0], order.get(kv[0], 0)))
    broken = {**run.built_failed, **{name: err for name, (_, err, _) in first}}
    # a failure's note goes after the data notes of its image (as a single process writes them)
    notes = sorted([*run.notes, *((key, note) for _, (key, _, note) in first)],
                   key=lambda kv: kv[0])
    rows_out = [row for _, row in run.rows]
    for name, err in broken.items():
        # A failed method keeps no partial numbers: a partial mean would mislead.
        rows_out = [r for r in rows_out if r.get("method") != name]
        for ds in datasets:
            for cond in run.task.conditions():
                rows_out.append({**run.base, "dataset": ds.name, "method": name, "label": name,
                                 "codec": condition_codec(cond),
                                 "quality": cond.get("quality"), "status": "failed",
                                 "error": err})
    return EvalResult(frame(rows_out), [v for _, v in run.visuals], [note for _, note in notes],
                      [info for _, info in run.images])


def resolved_spec(method) -> str:
    """``NAME.TAG`` of the weights a method runs (just the name when it needs none)."""
    return f"{method.name}.{method.weights_tag}" if method.weights_tag else method.name


def _degrade(run: _Run, method: Method, hr: torch.Tensor,
             degraded: dict[str, tuple[torch.Tensor, float]]) -> tuple[torch.Tensor, float]:
    """``method.degrade(hr)`` and its seconds; a method whose ``degrade_key`` another method
    of this image already ran reuses that output and is charged the same seconds."""
    key = run.degrade_keys.get(method.spec)
    if key is not None and key in degraded:
        return degraded[key]
    _sync(run.dev)
    t0 = time.perf_counter()
    y = method.degrade(hr)
    _sync(run.dev)
    out = (y, time.perf_counter() - t0)
    if key is not None:
        degraded[key] = out
    return out


@torch.no_grad()
def _run_method(run: _Run, method: Method, hr: torch.Tensor, reference: torch.Tensor,
                img_base: dict[str, Any], vis: dict[tuple[str | None, int | None], Visual],
                degraded: dict[str, tuple[torch.Tensor, float]]) -> list[dict[str, Any]]:
    """One method on one image: every channel condition × draw → one scored row each."""
    task, dev = run.task, run.dev
    rows = []
    y, t_degrade = _degrade(run, method, hr, degraded)
    n_draws = run.draws if method.stochastic else 1
    for cond in task.conditions_for(method):
        t1 = time.perf_counter()
        tr = task.transmit(y, **cond)
        t_channel = time.perf_counter() - t1
        for d in range(n_draws):
            kwargs: dict[str, Any] = dict(tr.info)
            if method.stochastic:
                gen = torch.Generator(device=dev).manual_seed(DRAW_SEED + d)
                kwargs.update(temperature=run.temperature, generator=gen)
            _sync(dev)
            t2 = time.perf_counter()
            out = method.restore(tr.y, **kwargs)
            _sync(dev)
            t_restore = time.perf_counter() - t2
            if out.shape != hr.shape:
                raise ValueError(
                    f"restore returned shape {tuple(out.shape)} for an HR of {tuple(hr.shape)}"
                )
            restored = to_uint8(out)  # the protocol: clamp and round the output to uint8
            scores = _scores(run, hr, restored, tr, reference)
            rows.append({
                **img_base,
                "method": method.spec,
                "label": resolved_spec(method),
                "weights": method.weights_label,
                "tag": method.weights_tag,
                "codec": condition_codec(cond),
                "quality": cond.get("quality"),
                "draw": d,
                **scores,
                "seconds": t_degrade + t_channel + t_restore,
                "params": method.num_parameters(),
                "status": "ok",
            })
            v = vis.get(_cond_key(cond))
            if v is not None and d == 0:
                v.full[method.spec] = restored[0].cpu()
                if task.visual_channel and tr.y_u8.shape[-2:] == hr.shape[-2:]:
                    v.channel_full[method.spec] = tr.y_u8[0].cpu()
    return rows


def _scores(run: _Run, hr: torch.Tensor, restored: torch.Tensor, tr: Any,
            reference: torch.Tensor) -> dict[str, float]:
    """The task's protocol scores of one restoration, the extra metrics, and bpp."""
    scores = run.task.score(hr, restored, tr, reference)
    for key, fn in run.extra_metrics.items():
        scores[key] = float(fn(from_uint8(restored), from_uint8(to_uint8(hr)))[0])
    if tr.nbytes is not None:
        scores["bpp"] = tr.nbytes[0] * 8.0 / (hr.shape[-2] * hr.shape[-1])
    return scores
