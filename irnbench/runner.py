"""The ``run`` job: build methods per setting, evaluate, save results, visuals and the report.

Under torchrun the evaluation is sharded over ranks (``irnbench.evaluate``); every rank gets the
gathered table, and rank 0 alone writes the run folder and the report.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from PIL import Image

from irnbench.data.loading import resolve_dataset
from irnbench.device import describe_device
from irnbench.distributed import setup
from irnbench.errors import WeightsNotFound
from irnbench.evaluate import Visual, evaluate
from irnbench.metrics import iqa_metric
from irnbench.registry import create_method, create_task, get_method_class
from irnbench.results import frame, paper_frame, save_run
from irnbench.runfolder import (
    UNITS,
    UnitLog,
    check_run,
    check_same_request,
    remove_own_files,
    write_request,
)
from irnbench.runinfo import public_command, run_metadata, scrub_paths
from irnbench.tasks.base import Task

__all__ = ["RunOutput", "run_benchmark", "save_visuals"]


@dataclass
class RunOutput:
    run_dir: Path
    df: pd.DataFrame
    meta: dict[str, Any]
    report: Path | None


def _save_png(crop: torch.Tensor, path: Path) -> None:
    """A uint8 C×h×w crop as PNG: 1 channel → greyscale ("L"), 3 channels → RGB."""
    arr = crop.permute(1, 2, 0).cpu().numpy()
    Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr).save(path)


def save_visuals(run_dir: Path, visuals: Sequence[Visual]) -> None:
    """Crops as PNG files under ``visuals/`` plus ``visuals/index.json`` (re-renderable)."""
    vdir = run_dir / "visuals"
    vdir.mkdir(parents=True, exist_ok=True)
    index = []
    for i, v in enumerate(visuals):
        entry = {"dataset": v.dataset, "image": v.image, "setting": v.setting,
                 "codec": v.codec, "quality": v.quality, "box": list(v.box), "crops": {}}
        for j, (name, crop) in enumerate(v.crops.items()):
            fname = f"{i:03d}_{j:02d}.png"
            _save_png(crop, vdir / fname)
            entry["crops"][name] = fname
        if v.channel_crops:
            # the degraded images (e.g. decolorize's 1-channel grey, saved as an "L" PNG)
            entry["channel_label"] = v.channel_label
            entry["channel_crops"] = {}
            for j, (name, crop) in enumerate(v.channel_crops.items()):
                fname = f"{i:03d}_c{j:02d}.png"
                _save_png(crop, vdir / fname)
                entry["channel_crops"][name] = fname
        index.append(entry)
    (vdir / "index.json").write_text(json.dumps(index, indent=1))


def weights_info(method) -> dict[str, str]:
    """What a run records of the weights a method resolved to."""
    if not method.weights_tag and not method.weights_sha256:
        return {"tag": "", "label": method.weights_label, "sha256": ""}
    from irnbench.weights import read_sidecar, training_budget

    side = read_sidecar(method.weights_path) if method.weights_path else {}
    budget = training_budget(side)
    info = {"tag": method.weights_tag, "label": method.weights_label,
            "sha256": method.weights_sha256, "budget": budget.get("text", ""),
            "training": budget}
    # where imported or fetched weights came from (files, sha256, pinned URL, commit, blob)
    info.update({k: side[k] for k in ("sources", "origin") if side.get(k)})
    return info


def describe_weights(method, setting_label: str, info: dict[str, str]) -> str:
    """One line: ``irn x2: tag cpu · irnbench cpu preset… · sha256 3b32639000e8``."""
    if not info["sha256"]:
        return f"{method.spec} {setting_label}: {info['label']}"
    tag = info["tag"] or "file"
    return (f"{method.spec} {setting_label}: tag {tag} · {info['label']} · "
            f"sha256 {info['sha256'][:12]}")


def _train_missing(name: str, task_obj, preset: str, device: str, progress: bool,
                   options: dict[str, Any]):
    """``--train-missing``: train under the named tag (default ``local``) and use that."""
    from irnbench.training import train_method  # only when asked
    from irnbench.weights import DEFAULT_TRAIN_TAG, OFFICIAL_TAG, SHIPPED_TAG, parse_spec

    base, tag = parse_spec(name)
    if tag in (OFFICIAL_TAG, SHIPPED_TAG):
        raise WeightsNotFound(f"{name}: tag {tag!r} cannot be trained (--train-missing trains "
                              f"under {DEFAULT_TRAIN_TAG!r} or a tag of your own)")
    tag = tag or DEFAULT_TRAIN_TAG
    res = train_method(base, task_obj, preset=preset, device=device, progress=progress, tag=tag)
    if res.installed is None:  # a smoke preset never installs: use the run's own file
        return create_method(base, task_obj, weights=res.weights, **options)
    return create_method(f"{base}.{tag}", task_obj, **options)


def _protocol(task_obj: Task, draws: int) -> str:
    """The task's protocol paragraph, plus a sentence when the run's draws depart from it."""
    text = task_obj.protocol()
    if draws != task_obj.default_draws:
        used = f"{draws} z draw" + ("s" if draws != 1 else "")
        text += f" This run used {used}, not the protocol's {task_obj.default_draws}."
    return text


#: Free-text columns of measured rows that may quote a path (error messages, data notes).
_TEXT_COLUMNS = ("error", "notes", "weights")


def _scrub_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Measured rows with no absolute path of this machine in their free-text columns."""
    df = df.copy()
    measured = df["source"] == "measured"
    for col in _TEXT_COLUMNS:
        if col in df.columns:
            df.loc[measured, col] = df.loc[measured, col].map(
                lambda v: scrub_paths(v) if isinstance(v, str) else v)
    return df


def run_benchmark(
    task: str,
    methods: Sequence[str],
    settings: Sequence[dict[str, Any]],
    datasets: Sequence[str],
    out: str | Path,
    device: str = "auto",
    draws: int | None = None,
    weights: str | None = None,
    train_missing: bool = False,
    preset: str = "cpu",
    command: str | None = None,
    report: bool = True,
    progress: bool = True,
    iqa: Sequence[str] = (),
    announce: Callable[[str], None] | None = None,
    options: dict[str, Any] | None = None,
    download: bool = False,
    resume: bool = False,
    overwrite: bool = False,
) -> RunOutput:
    """Evaluate ``methods`` (names or ``NAME.TAG`` specs) on every task setting and dataset;
    write everything to ``out``. ``draws`` (z draws of stochastic methods) defaults to the
    task's ``default_draws``. ``announce`` gets one line per method and setting saying which
    weights (tag, label, sha256[:12]) it resolved to, and a resumed run's count of rows on
    file. ``options`` (typed method options, or their strings from ``--option``) go to every
    method; the metadata records each method's converted options. ``download`` lets an
    untagged method without local weights fetch its published checkpoint
    (``create_method(download=True)``; the CLI's default, off with ``--no-download``). What is
    written names datasets by name and content fingerprint and quotes no absolute path of
    this machine.

    ``out`` must be writable and hold no run, unless ``resume`` (continue the run there: only
    the units not on file are computed; the request must be the same) or ``overwrite``
    (remove that run's own files, once every other check has passed). Every finished unit is
    written to ``out/units/`` as it completes (``irnbench.runfolder.UnitLog``)."""
    options = dict(options or {})
    replaced, previous = check_run(Path(out), datasets, draws, resume, overwrite)
    task_objs = [create_task(task, **s) for s in settings]  # bad settings fail before any work
    if draws is None:
        draws = (task_objs[0] if task_objs else create_task(task)).default_draws
    ctx, dev = setup(device)
    run_dir = Path(ctx.broadcast_object(str(out)))  # one folder, whatever each rank's default
    eval_sets = [resolve_dataset(d) for d in datasets]
    prints = [d.fingerprint for d in eval_sets]
    classes = [get_method_class(m) for m in methods]  # unknown names fail before any work
    extra = {name: iqa_metric(name, dev) for name in iqa}  # fails fast when pyiqa cannot
    request = {"task": task, "methods": list(methods), "settings": [t.setting for t in task_objs],
               "datasets": [{"name": d.name, "fingerprint": fp}
                            for d, fp in zip(eval_sets, prints, strict=True)],
               "draws": draws, "iqa": list(iqa)}
    if previous is not None:  # before any method is built
        check_same_request(run_dir, previous, request, list(request))
    built = _build_methods(methods, task_objs, ctx, dict(
        weights=weights, download=download, options=options, train_missing=train_missing,
        preset=preset, device=device, progress=progress), announce)
    request["options"] = built.method_options
    request["weights"] = {spec: {s: i["sha256"] for s, i in by.items()}
                          for spec, by in built.resolved.items()}
    if previous is not None:
        check_same_request(run_dir, previous, request, ("options", "weights"))
    store = _open_folder(ctx, run_dir, replaced, request, command)
    if resume and ctx.is_main and announce is not None:
        announce(_resume_line(store, task_objs, built.methods, eval_sets, draws))
    results = [evaluate(ms, t, eval_sets, device=dev, draws=draws, progress=progress,
                        extra_metrics=extra, store=store)
               for t, ms in zip(task_objs, built.methods, strict=True)]
    frames = [r.df for r in results]
    measured = _scrub_rows(pd.concat(frames, ignore_index=True)) if frames else frame([])
    papers = paper_frame(classes, task)
    df = pd.concat([measured, papers], ignore_index=True) if len(papers) else measured
    meta = _run_meta(command, task, task_objs, methods, classes,
                     _datasets_meta(eval_sets, prints, [i for r in results for i in r.images]),
                     dev, draws, notes=[n for r in results for n in r.notes],
                     trained=built.trained, weights=built.resolved,
                     method_options=built.method_options, world_size=ctx.world)
    visuals = [v for r in results for v in r.visuals]
    report_path = ctx.on_main(lambda: _write(run_dir, df, meta, visuals, report),
                              "writing the results")
    if ctx.enabled:
        report_path = ctx.broadcast_object(report_path)
    return RunOutput(run_dir, df, meta, report_path)


def _write(run_dir: Path, df: pd.DataFrame, meta: dict[str, Any], visuals: Sequence[Visual],
           report: bool) -> Path | None:
    """The run's results, visuals and (``report``) report, from the rows of its units."""
    save_run(run_dir, df, meta)
    remove_own_files([run_dir / "visuals"])  # a resumed run writes them all again
    save_visuals(run_dir, visuals)
    if not report:
        return None
    from irnbench.report import render_report

    return render_report([run_dir], run_dir / "report.html")


@dataclass
class _Built:
    """The methods of every setting and what the run records of them."""

    methods: list[list[Any]] = field(default_factory=list)  #: per setting, in ``methods`` order
    resolved: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    trained: list[str] = field(default_factory=list)


def _build_methods(names: Sequence[str], task_objs: Sequence[Task], ctx: Any,
                   how: dict[str, Any], announce: Callable[[str], None] | None) -> _Built:
    """Build every method for every setting (weights resolved, or trained with
    ``train_missing``) before any evaluation, so a ``--resume`` can compare their sha256."""
    out = _Built()
    for task_obj in task_objs:
        built = []
        for name in names:
            try:
                method = create_method(name, task_obj, weights=how["weights"],
                                       download=how["download"], **how["options"])
            except WeightsNotFound:
                if not how["train_missing"]:
                    raise
                method = _train_missing(name, task_obj, how["preset"], how["device"],
                                        how["progress"], how["options"])
                out.trained.append(f"{method.spec} {task_obj.setting_label} ({how['preset']})")
            built.append(method)
            info = weights_info(method)
            out.resolved.setdefault(method.spec, {})[task_obj.setting_label] = info
            out.method_options[method.spec] = method.options
            if announce is not None and ctx.is_main:
                announce("weights: " + describe_weights(method, task_obj.setting_label, info))
        out.methods.append(built)
    return out


def _open_folder(ctx: Any, run_dir: Path, replaced: Sequence[Path], request: dict[str, Any],
                 command: str | None) -> UnitLog:
    """Rank 0 removes what ``--overwrite`` replaces (every check has passed by now) and
    records the request; then every rank reads the units on file, before any is written."""

    def prepare() -> None:
        remove_own_files(replaced)
        write_request(run_dir, request, public_command(command) if command else None)

    ctx.on_main(prepare, "preparing --out")
    store = UnitLog(run_dir / UNITS, ctx.rank).load()
    ctx.barrier()
    return store


def _resume_line(store: UnitLog, task_objs: Sequence[Task], built: Sequence[Sequence[Any]],
                 eval_sets: Sequence[Any], draws: int) -> str:
    """``resume: 96 rows on file, 24 to compute`` (unusable images count as to compute)."""
    on_file = sum(len(u["rows"]) for u in store.units.values())
    todo = 0
    for task_obj, methods in zip(task_objs, built, strict=True):
        failed = {tuple(u["key"][3:]): tuple(u["key"][1:3]) for u in store.units.values()
                  if u["status"] == "failed" and u["key"][0] == task_obj.setting_label}
        for d, ds in enumerate(eval_sets):
            for r in range(len(ds)):
                for m in methods:
                    after = failed.get((m.spec,))
                    if store.get([task_obj.setting_label, d, r, m.spec]) is None and not (
                            after is not None and after < (d, r)):
                        todo += len(task_obj.conditions_for(m)) * (draws if m.stochastic else 1)
    return f"resume: {on_file} rows on file, {todo} to compute"


def _datasets_meta(eval_sets: Sequence[Any], prints: Sequence[str],
                   images: Sequence[tuple[int, str, bool]]) -> list[dict[str, Any]]:
    """Each dataset by name and fingerprint, the number of images evaluated (in any setting)
    and the files skipped (unusable in every setting; the notes say why)."""
    out = []
    for d, (ds, fp) in enumerate(zip(eval_sets, prints, strict=True)):
        used = {name for i, name, ok in images if i == d and ok}
        skipped = sorted({name for i, name, ok in images if i == d and not ok} - used)
        out.append({"name": ds.name, "images": len(used), "fingerprint": fp,
                    "skipped": skipped})
    return out


def _run_meta(command: str | None, task: str, task_objs: Sequence[Task], methods: Sequence[str],
              classes: Sequence[type], datasets: list[dict[str, Any]], dev: torch.device,
              draws: int, **recorded: Any) -> dict[str, Any]:
    """The run's metadata: command, settings, datasets (by name and content fingerprint, never
    by where they lie), device, draws, the protocol per setting and what each method is."""
    return run_metadata(
        command,
        task=task,
        settings=[t.setting for t in task_objs],
        methods=list(methods),
        datasets=datasets,
        device=describe_device(dev),
        draws=draws,
        protocol={t.setting_label: _protocol(t, draws) for t in task_objs},
        methods_info={spec: {"method": c.name, "description": c.description,
                             "citation": c.paper.citation if c.paper else "",
                             "stochastic": c.stochastic,
                             "codec": bool(getattr(c, "codec", False))}
                      for spec, c in zip(methods, classes, strict=True)},
        torch_version=torch.__version__,
        **recorded,  # notes (free text is scrubbed of paths by run_metadata), trained, weights…
    )
