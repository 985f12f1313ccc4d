"""Everything the report shows, as plain dicts (no HTML here; the templates do the markup).

Merging several runs: measured rows are concatenated (a row measured twice — same method,
weights, setting, quality, dataset, image and draw — keeps the later run's numbers, and the page
says so); paper-reported rows are de-duplicated. Paper rows sit beside measured rows of the same
task, setting, JPEG quality and dataset (dataset names compared case-insensitively, so a folder
called ``Set5`` meets the paper's ``set5``); every other paper row goes to the separate
"Published results (not measured in this run)" section.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from irnbench.compare import compare
from irnbench.report.charts import cost_figure, difference_figure
from irnbench.report.pivot import measured_pivots, published_pivots
from irnbench.report.quality import quality_matrix_tables
from irnbench.results import (
    BOOTSTRAP,
    GROUP_KEYS,
    METRICS,
    MetricSpec,
    frame,
    load_run,
    summarize,
)

__all__ = [
    "RunData",
    "MetricSpec",
    "METRICS",
    "best_flags",
    "build_context",
    "format_number",
    "format_params",
    "leaderboard_tables",
    "load_runs",
    "merge_runs",
    "per_image_tables",
    "visual_groups",
]


# --------------------------------------------------------------------------------------------
# columns besides the metrics (``MetricSpec``/``METRICS``: irnbench.results)
# --------------------------------------------------------------------------------------------
#: Columns of a measured row besides the metrics.
_MEASURED_EXTRA = ("delta", "budget", "images", "draws", "params", "seconds")

LEGEND = {
    "measured": "computed by this run, under the protocol stated above the table",
    "paper-reported": "quoted from the cited publication, not re-measured here; a footnote "
    "gives its protocol where it differs from or is unconfirmed against irnbench's",
}
PUBLISHED_TITLE = "Published results (not measured in this run)"


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------
def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _num(v: Any) -> float | None:
    """A float (``inf`` kept) or ``None`` for missing / non-numeric values."""
    if _is_missing(v):
        return None
    if isinstance(v, str):
        v = v.strip()
        if v in ("inf", "+inf", "Infinity"):
            return math.inf
        if v in ("-inf", "-Infinity"):
            return -math.inf
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _quality(v: Any) -> int | None:
    f = _num(v)
    return None if f is None or math.isinf(f) else int(round(f))


def _text(v: Any) -> str:
    return "" if _is_missing(v) else str(v)


def _int_text(v: Any) -> str:
    f = _num(v)
    return "" if f is None or math.isinf(f) else str(int(round(f)))


def format_number(v: Any, digits: int) -> str:
    """``33.6612`` → ``"33.66"``; ``inf`` → ``"∞"``; missing → ``""``."""
    f = _num(v)
    if f is None:
        return ""
    if math.isinf(f):
        return "∞" if f > 0 else "−∞"
    return f"{f:.{digits}f}"


def format_params(v: Any) -> str:
    """Parameter count, compact: ``1_670_000`` → ``"1.67M"``, ``12_345`` → ``"12.3K"``."""
    f = _num(v)
    if f is None or math.isinf(f):
        return ""
    n = int(round(f))
    if abs(n) >= 1_000_000_000:
        return f"{n / 1e9:.3g}G"
    if abs(n) >= 1_000_000:
        return f"{n / 1e6:.3g}M"
    if abs(n) >= 1_000:
        return f"{n / 1e3:.3g}K"
    return str(n)


def format_seconds(v: Any) -> str:
    f = _num(v)
    if f is None or math.isinf(f):
        return ""
    if f < 1:
        return f"{f:.3f}"
    return f"{f:.2f}" if f < 100 else f"{f:.0f}"


def _sort_key(v: Any) -> str:
    """The ``data-sort`` value of a numeric cell (JS ``Number()`` parses it)."""
    f = _num(v)
    if f is None:
        return ""
    if math.isinf(f):
        return "Infinity" if f > 0 else "-Infinity"
    return repr(f)


def _natural(s: Any) -> list[Any]:
    """Natural sort key: ``x2`` < ``x4`` < ``x16``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(s))]


def best_flags(values: Sequence[Any], better: str | None = "higher") -> list[bool]:
    """Which of ``values`` is best (``higher`` → max, ``lower`` → min); ties all win.

    Missing values never win; with fewer than two present values nothing is marked (a lone row
    is not "best" of anything); ``better=None`` marks nothing.
    """
    nums = [_num(v) for v in values]
    present = [v for v in nums if v is not None]
    if better is None or len(present) < 2:
        return [False] * len(nums)
    target = max(present) if better == "higher" else min(present)
    return [v is not None and v == target for v in nums]


def quality_label(q: int | None) -> str:
    return "" if q is None else f"JPEG q{q}"


# --------------------------------------------------------------------------------------------
# loading and merging runs
# --------------------------------------------------------------------------------------------
@dataclass
class RunData:
    """One run folder, as read back from disk."""

    path: Path
    df: pd.DataFrame
    meta: dict[str, Any]
    visuals: list[dict[str, Any]] = field(default_factory=list)  #: index.json entries
    visuals_dir: Path | None = None


def load_runs(run_dirs: Iterable[str | Path]) -> list[RunData]:
    """Read each run folder (``results.json``; ``visuals/index.json`` when present)."""
    runs = []
    for d in run_dirs:
        d = Path(d)
        df, meta = load_run(d)
        vdir = d / "visuals"
        index = vdir / "index.json"
        visuals = json.loads(index.read_text()) if index.is_file() else []
        runs.append(RunData(d, df, meta, visuals, vdir))
    if not runs:
        raise ValueError("render_report needs at least one run folder")
    return runs


def _normalise(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    if "quality" in df.columns:
        df["quality"] = pd.Series([_quality(v) for v in df["quality"]], index=df.index,
                                  dtype=object)
    return df


def merge_runs(runs: Sequence[RunData]) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(measured rows with a ``run`` column, de-duplicated paper rows, merge notes)."""
    measured, papers, notes = [], [], []
    for i, r in enumerate(runs):
        df = _normalise(r.df)
        m = df[df["source"] == "measured"].copy()
        m["run"] = i
        measured.append(m)
        papers.append(df[df["source"] != "measured"])
    meas = pd.concat(measured, ignore_index=True) if measured else frame([])
    if "run" not in meas.columns:
        meas["run"] = pd.Series(dtype=int)
    if len(runs) > 1 and len(meas):
        key = GROUP_KEYS + ["image", "draw"]
        dup = meas.duplicated(subset=key, keep="last")
        if dup.any():
            notes.append(
                f"{int(dup.sum())} measured row(s) appear in more than one run folder; the later "
                "folder's numbers are used."
            )
            meas = meas[~dup].reset_index(drop=True)
    pap = pd.concat(papers, ignore_index=True) if papers else frame([])
    if len(pap):
        cols = [c for c in pap.columns if c not in ("image", "draw")]
        as_text = pap[cols].astype(str)
        pap = pap[~as_text.duplicated()].reset_index(drop=True)
    return meas, pap, notes


# --------------------------------------------------------------------------------------------
# leaderboards
# --------------------------------------------------------------------------------------------
def _table_key(row: Any) -> tuple[str, str, int | None, str]:
    return (_text(row["task"]), _text(row["setting"]), _quality(row["quality"]),
            _text(row["dataset"]))


def _order(keys: Iterable[tuple], task_order: list[str], dataset_order: list[str]) -> list[tuple]:
    def k(t: tuple) -> tuple:
        task, setting, q, ds = t
        return (
            task_order.index(task) if task in task_order else len(task_order), task,
            _natural(setting),
            -1 if q is None else q,
            dataset_order.index(ds.lower()) if ds.lower() in dataset_order else 10**6, ds,
        )

    return sorted(set(keys), key=k)


def _protocols_for(
    metas: Sequence[dict[str, Any]], runs: Iterable[int] | None, task: str, setting: str
) -> list[str]:
    """Distinct protocol texts that the given runs (all runs when ``None``) state for a setting."""
    idx = range(len(metas)) if runs is None else sorted(set(runs))
    out: list[str] = []
    for i in idx:
        meta = metas[i]
        if meta.get("task") not in (None, task):
            continue
        text = (meta.get("protocol") or {}).get(setting)
        if text and text not in out:
            out.append(str(text))
    return out


def _metric_cells(rec: dict[str, Any], shown: list[MetricSpec], best: dict[str, list[bool]],
                  i: int | None) -> list[dict[str, Any]]:
    cells = []
    for m in shown:
        v = rec.get(m.key)
        std = _num(rec.get(f"{m.key}_std"))
        cells.append({
            "text": format_number(v, m.digits),
            "sort": _sort_key(v),
            "bold": bool(i is not None and best[m.key][i]),
            # a zero spread (e.g. bpp or LR fidelity of a deterministic encoder) is not shown
            "std": None if not std else "± " + format_number(std, m.std_digits),
            "ci": _ci_text(rec, m),
            "cls": "num",
        })
    return cells


def _ci_text(rec: dict[str, Any], m: MetricSpec) -> str | None:
    """The 95 % bootstrap interval of a set mean as "[lo, hi]" (None when not computed or
    zero-width, e.g. one image)."""
    lo, hi = _num(rec.get(f"{m.key}_lo")), _num(rec.get(f"{m.key}_hi"))
    if lo is None or hi is None or lo == hi:
        return None
    return f"[{format_number(lo, m.digits)}, {format_number(hi, m.digits)}]"


def _delta_cell(d: dict[str, Any] | None) -> dict[str, Any]:
    """Δ of the lead metric from the reference method, its paired interval and the mark."""
    if d is None:
        return {"text": "—", "sort": "", "cls": "num"}
    if d["label"] == d["reference"]:
        return {"text": "reference", "sort": _sort_key(0.0), "cls": "num"}
    digits = next((m.digits for m in METRICS if m.key == d["metric"]), 2)
    mark = "*" if d["distinguishable"] else ""
    return {"text": f"{d['diff']:+.{digits}f}{mark}", "sort": _sort_key(d["diff"]),
            "ci": f"[{d['diff_lo']:+.{digits}f}, {d['diff_hi']:+.{digits}f}]", "cls": "num"}


def _figures(table: dict[str, Any], rows: list[dict], per_image: pd.DataFrame | None
             ) -> list[dict[str, str]]:
    """The table's charts: quality against cost, and the per-image difference from the
    reference method (both of the lead metric; none for a single method)."""
    ok = [r for r in rows if _text(r.get("status")) in ("", "ok")]
    lead = next((m for m in METRICS if m.better and any(_num(r.get(m.key)) is not None
                                                        for r in ok)), None)
    if lead is None or len(ok) < 2:
        return []
    out = []
    cost = cost_figure(ok, lead.key, lead.label, f"{table['title']}: {lead.label} against cost")
    if cost:
        out.append({"src": cost, "alt": f"{lead.label} against parameters and seconds",
                    "caption": f"Set-mean {lead.label} against trainable parameters (left) and "
                               "seconds per image (right)."})
    ref = table.get("reference")
    if ref and per_image is not None:
        ok_rows = per_image[per_image["status"].fillna("ok") == "ok"].copy()
        ok_rows["label"] = [_text(lab) or _text(m) for lab, m in
                            zip(ok_rows["label"], ok_rows["method"], strict=True)]
        diff = difference_figure(ok_rows, lead.key, lead.label, ref,
                                 f"{table['title']}: per-image {lead.label} − {ref}")
        if diff:
            out.append({"src": diff, "alt": f"per-image {lead.label} difference from {ref}",
                        "caption": f"Per image: each method's {lead.label} minus {ref}'s "
                                   "(a stochastic method's draws averaged)."})
    return out


def _budgets(metas: Sequence[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """(method as the run named it, setting) → the training budget its weights record."""
    out: dict[tuple[str, str], str] = {}
    for meta in metas:
        for spec, per_setting in (meta.get("weights") or {}).items():
            for setting, info in (per_setting or {}).items():
                out[(str(spec), str(setting))] = str((info or {}).get("budget") or "")
    return out


def leaderboard_tables(
    df: pd.DataFrame,
    metas: Sequence[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Leaderboards per task × setting × JPEG quality × dataset, from a flat results frame.

    ``df`` holds measured rows (per image; a ``run`` column indexes ``metas`` when several runs
    were merged) and paper-reported rows. Each table is a dict with ``section`` ("measured" or
    "published"), its keys, ``protocol`` (texts stated above it), ``columns`` and ``rows``; each
    row has ``kind`` ("measured", "failed" or "paper"), ``cells`` and the raw ``values``. Only
    metric columns with at least one value in the table are shown. The best measured value of
    each ranked metric is bold (``best_flags``).
    """
    metas = list(metas or [])
    df = _normalise(df)
    measured = df[df["source"] == "measured"]
    paper = df[df["source"] != "measured"]
    with np.errstate(invalid="ignore"):  # std of [inf, inf, …] (a lossless LR) is NaN: fine
        summary = summarize(measured) if len(measured) else pd.DataFrame()
    if len(summary):
        summary = _normalise(summary)

    task_order: list[str] = []
    dataset_order: list[str] = []
    for frame_ in (measured, paper):
        for t in frame_["task"]:
            if _text(t) not in task_order:
                task_order.append(_text(t))
        for d in frame_["dataset"]:
            if _text(d).lower() not in dataset_order:
                dataset_order.append(_text(d).lower())

    # measured tables, keyed by (task, setting, quality, dataset)
    measured_keys = [_table_key(r) for _, r in summary.iterrows()] if len(summary) else []
    by_lower = {(t, s, q, d.lower()): (t, s, q, d) for t, s, q, d in measured_keys}
    beside: dict[tuple, list[dict]] = {}
    published: dict[tuple, list[dict]] = {}
    for rec in paper.to_dict(orient="records"):
        t, s, q, d = _table_key(rec)
        target = by_lower.get((t, s, q, d.lower()))
        if target is not None:
            beside.setdefault(target, []).append(rec)
        else:
            published.setdefault((t, s, None, ""), []).append(rec)

    diffs = compare(measured) if len(measured) else pd.DataFrame()
    deltas: dict[tuple, dict[str, dict[str, Any]]] = {}
    for d in diffs.to_dict(orient="records") if len(diffs) else []:
        deltas.setdefault(_table_key(d), {})[str(d["label"])] = d
    budgets = _budgets(metas)
    per_key: dict[tuple, pd.DataFrame] = {}
    if len(measured):
        keyed = measured.assign(_key=[_table_key(r) for r in measured.to_dict(orient="records")])
        per_key = {k: g for k, g in keyed.groupby("_key", sort=False)}

    runs_of: dict[tuple, set[int]] = {}
    for r in measured.to_dict(orient="records"):
        run = _num(r.get("run"))
        runs_of.setdefault(_table_key(r), set()).update([] if run is None else [int(run)])
    summary_rows = summary.to_dict(orient="records") if len(summary) else []

    tables = []
    for key in _order(measured_keys, task_order, dataset_order):
        task, setting, q, ds = key
        rows = [r for r in summary_rows if _table_key(r) == key]
        runs = runs_of.get(key) or None
        protocol = _protocols_for(metas, runs, task, setting) if metas else []
        table = _build_table("measured", key, rows, beside.get(key, []), protocol,
                             deltas.get(key, {}), budgets)
        table["figures"] = _figures(table, rows, per_key.get(key))
        tables.append(table)
    # published: one compact table per task × setting, with dataset and JPEG columns
    for key in _order(published, task_order, dataset_order):
        task, setting, _, _ = key
        recs = sorted(published[key], key=lambda r: (
            dataset_order.index(_text(r["dataset"]).lower()), _quality(r["quality"]) or -1))
        protocol = _protocols_for(metas, None, task, setting) if metas else []
        tables.append(_build_table("published", key, [], recs, protocol))
    for i, t in enumerate(tables):
        t["id"] = f"{'lb' if t['section'] == 'measured' else 'pub'}-{i}"
    return tables


def _columns(shown: list[MetricSpec], where: bool, with_quality: bool, with_extra: bool,
             ref: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The leaderboard's columns: method, (dataset, JPEG,) weights, source, metrics, extras."""
    columns: list[dict[str, Any]] = [
        {"key": "method", "label": "Method", "type": "text", "title": "method (paper label)"},
    ]
    if where:
        columns.append({"key": "dataset", "label": "Dataset", "type": "text",
                        "title": "dataset the number was reported on"})
    if with_quality:
        columns.append({"key": "quality", "label": "JPEG", "type": "num",
                        "title": "JPEG quality of the LR image"})
    columns += [
        {"key": "weights", "label": "Weights", "type": "text", "title": "weights in use"},
        {"key": "source", "label": "Source", "type": "text", "title": "measured or quoted"},
    ]
    columns += [{"key": m.key, "label": m.label, "type": "num", "title": m.title} for m in shown]
    if not with_extra:
        return columns
    lead = next((m for m in METRICS if ref and m.key == ref["metric"]), None)
    return columns + [
        {"key": "delta", "label": f"Δ {lead.label if lead else ''} vs "
         f"{ref['reference'] if ref else 'best'}", "type": "num",
         "title": "mean per-image difference from the reference method, with its 95 % "
                  "paired bootstrap interval; * : the interval excludes 0"},
        {"key": "budget", "label": "Training", "type": "text",
         "title": "training budget of the weights (from their sidecar)"},
        {"key": "images", "label": "Images", "type": "num", "title": "images measured"},
        {"key": "draws", "label": "Draws", "type": "num",
         "title": "z draws (stochastic methods: mean over draws, ± std of the set mean)"},
        {"key": "params", "label": "Params", "type": "num", "title": "trainable parameters"},
        {"key": "seconds", "label": "s/image", "type": "num",
         "title": "wall seconds per image (degrade + channel + restore)"},
    ]


def _name_cell(r: dict[str, Any]) -> dict[str, Any]:
    label, method = _text(r.get("label")), _text(r.get("method"))
    return {"text": label or method, "sub": "" if label in ("", method) else method}


def _measured_row(r: dict[str, Any], i: int, shown: list[MetricSpec],
                  best: dict[str, list[bool]], deltas: dict[str, dict[str, Any]],
                  budgets: dict[tuple[str, str], str]) -> dict[str, Any]:
    cells = [
        _name_cell(r),
        {"text": _text(r.get("weights")) or "—"},
        {"badge": "measured", "text": "measured"},
        *_metric_cells(r, shown, best, i),
        _delta_cell(deltas.get(_text(r.get("label")) or _text(r.get("method")))),
        {"text": budgets.get((_text(r.get("method")), _text(r.get("setting")))) or "—",
         "cls": "budget"},
        {"text": _int_text(r.get("images")), "sort": _sort_key(r.get("images")), "cls": "num"},
        {"text": _int_text(r.get("draws")), "sort": _sort_key(r.get("draws")), "cls": "num"},
        {"text": format_params(r.get("params")), "sort": _sort_key(r.get("params")),
         "cls": "num"},
        {"text": format_seconds(r.get("seconds")), "sort": _sort_key(r.get("seconds")),
         "cls": "num"},
    ]
    return {"kind": "measured", "cells": cells, "method": _text(r.get("method")),
            "values": {m.key: _num(r.get(m.key)) for m in shown}}


def _failed_row(r: dict[str, Any], n_columns: int) -> dict[str, Any]:
    cells = [
        {"text": _text(r.get("label")) or _text(r.get("method"))},
        {"text": _text(r.get("weights")) or "—"},
        {"badge": "measured", "text": "measured", "failed": True},
    ]
    return {"kind": "failed", "cells": cells, "method": _text(r.get("method")),
            "error": _text(r.get("error")) or "failed (no error text recorded)",
            "colspan": n_columns - 3, "values": {}}


def _paper_row(r: dict[str, Any], shown: list[MetricSpec], best: dict[str, list[bool]],
               where: bool, with_quality: bool, with_extra: bool,
               footnotes: list[str]) -> dict[str, Any]:
    note = _text(r.get("notes"))
    fn = None
    if note:
        if note not in footnotes:
            footnotes.append(note)
        fn = footnotes.index(note) + 1
    q_r = _quality(r.get("quality"))
    cells = [
        _name_cell(r),
        *([{"text": _text(r.get("dataset"))}] if where else []),
        *([{"text": "" if q_r is None else str(q_r), "sort": _sort_key(q_r), "cls": "num"}]
          if with_quality else []),
        {"text": _text(r.get("weights")) or "as published"},
        {"badge": "paper-reported", "text": "paper-reported",
         "ref": _text(r.get("reference")), "fn": fn},
        *_metric_cells(r, shown, best, None),
    ]
    if with_extra:
        cells += [{"text": "", "sort": "", "cls": "num"} for _ in _MEASURED_EXTRA]
    return {"kind": "paper", "cells": cells, "method": _text(r.get("method")),
            "values": {m.key: _num(r.get(m.key)) for m in shown}}


def _ranked(ok: list[dict]) -> list[dict]:
    """Strongest first, by the first ranked metric present."""
    ranked = [m for m in METRICS if m.better and any(_num(r.get(m.key)) is not None for r in ok)]
    if not ranked:
        return ok
    lead = ranked[0]
    sign = -1 if lead.better == "higher" else 1
    return sorted(ok, key=lambda r: (_num(r.get(lead.key)) is None,
                                     sign * (_num(r.get(lead.key)) or 0.0)))


def _build_table(section: str, key: tuple, measured: list[dict], papers: list[dict],
                 protocol: list[str], deltas: dict[str, dict[str, Any]] | None = None,
                 budgets: dict[tuple[str, str], str] | None = None) -> dict[str, Any]:
    task, setting, q, ds = key
    ok = _ranked([r for r in measured if _text(r.get("status")) in ("", "ok")])
    failed = [r for r in measured if _text(r.get("status")) == "failed"]
    shown = [m for m in METRICS if any(_num(r.get(m.key)) is not None for r in ok + papers)]
    best = {m.key: best_flags([r.get(m.key) for r in ok], m.better) for m in shown}
    with_extra = bool(measured)
    # published tables gather several datasets (and JPEG qualities) of one setting
    where = section == "published"
    with_quality = where and any(_quality(r.get("quality")) is not None for r in papers)
    deltas = deltas or {}
    ref = next(iter(deltas.values()), None)
    columns = _columns(shown, where, with_quality, with_extra, ref)
    footnotes: list[str] = []
    rows = [_measured_row(r, i, shown, best, deltas, budgets or {}) for i, r in enumerate(ok)]
    rows += [_failed_row(r, len(columns)) for r in failed]
    rows += [_paper_row(r, shown, best, where, with_quality, with_extra, footnotes)
             for r in papers]
    title = " · ".join(p for p in (task, setting, quality_label(q), ds) if p)
    return {
        "section": section, "task": task, "setting": setting, "quality": q, "dataset": ds,
        "title": title, "protocol": protocol, "columns": columns, "rows": rows,
        "footnotes": footnotes,
        "stochastic": any(r.get(f"{m.key}_std") is not None and _num(r.get(f"{m.key}_std"))
                          is not None for r in ok for m in shown),
        "unconfirmed": any(m.key in ("psnr", "ssim") for m in shown),
        "intervals": any(c.get("ci") for r in rows for c in r["cells"]),
        "reference": ref["reference"] if ref else None,
    }


# --------------------------------------------------------------------------------------------
# per-image tables
# --------------------------------------------------------------------------------------------
def per_image_tables(measured: pd.DataFrame) -> list[dict[str, Any]]:
    """Measured rows per method and image (metrics averaged over draws), one table per
    task × setting × quality × dataset."""
    df = _normalise(measured)
    df = df[(df["source"] == "measured") & (df["status"].fillna("ok") == "ok")]
    if not len(df):
        return []
    keys = ["task", "setting", "quality", "dataset", "image", "method", "label", "weights"]
    recs = []
    for key, g in df.groupby(keys, dropna=False, sort=False):
        rec = dict(zip(keys, key, strict=True))
        rec["quality"] = _quality(rec["quality"])
        for m in METRICS:
            vals = [v for v in (_num(x) for x in g[m.key]) if v is not None]
            rec[m.key] = sum(vals) / len(vals) if vals else None
        secs = [v for v in (_num(x) for x in g["seconds"]) if v is not None]
        rec["seconds"] = sum(secs) / len(secs) if secs else None
        rec["draws"] = int(g["draw"].nunique(dropna=False))
        h, w = _num(g["height"].iloc[0]), _num(g["width"].iloc[0])
        rec["size"] = f"{int(w)}×{int(h)}" if h is not None and w is not None else ""
        notes = [n for n in (_text(x) for x in g["notes"]) if n]
        rec["notes"] = notes[0] if notes else ""
        recs.append(rec)
    task_order = list(dict.fromkeys(_text(r["task"]) for r in recs))
    ds_order = list(dict.fromkeys(_text(r["dataset"]).lower() for r in recs))
    tables = []
    for key in _order([_table_key(r) for r in recs], task_order, ds_order):
        rows = [r for r in recs if _table_key(r) == key]
        rows.sort(key=lambda r: (_natural(r["image"]), _text(r["label"])))
        shown = [m for m in METRICS if any(r[m.key] is not None for r in rows)]
        columns = [{"label": "Image", "type": "text"}, {"label": "Method", "type": "text"},
                   {"label": "Size (W×H)", "type": "text"}]
        columns += [{"label": m.label, "type": "num", "title": m.title} for m in shown]
        columns += [{"label": "Draws", "type": "num"}, {"label": "s/image", "type": "num"},
                    {"label": "Note", "type": "text"}]
        out_rows = []
        for r in rows:
            cells = [{"text": _text(r["image"])}, {"text": _text(r["label"])},
                     {"text": r["size"]}]
            cells += [{"text": format_number(r[m.key], m.digits), "sort": _sort_key(r[m.key]),
                       "cls": "num"} for m in shown]
            cells += [{"text": str(r["draws"]), "sort": str(r["draws"]), "cls": "num"},
                      {"text": format_seconds(r["seconds"]), "sort": _sort_key(r["seconds"]),
                       "cls": "num"},
                      {"text": r["notes"], "cls": "note"}]
            out_rows.append({"cells": cells, "image": _text(r["image"]),
                             "method": _text(r["method"])})
        task, setting, q, ds = key
        tables.append({
            "title": " · ".join(p for p in (task, setting, quality_label(q), ds) if p),
            "columns": columns, "rows": out_rows,
        })
    return tables


# --------------------------------------------------------------------------------------------
# visual comparisons
# --------------------------------------------------------------------------------------------
def _data_uri(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def visual_groups(runs: Sequence[RunData]) -> tuple[list[dict[str, Any]], list[str]]:
    """Visual comparisons (crops inlined as data URIs) grouped by setting and quality; crops of
    the same image, setting, quality and box from several runs share one row."""
    entries: dict[tuple, dict[str, Any]] = {}
    problems: list[str] = []
    for run in runs:
        for e in run.visuals:
            q = _quality(e.get("quality"))
            box = tuple(int(b) for b in e.get("box", ()))
            key = (_text(e.get("setting")), q, _text(e.get("dataset")), _text(e.get("image")), box)
            entry = entries.setdefault(key, {
                "setting": key[0], "quality": q, "dataset": key[2], "image": key[3],
                "box": box, "crops": {}, "channel_crops": {}, "channel_label": "",
            })
            # "channel_crops": the degraded images (e.g. decolorize's 1-channel grey PNGs)
            for field_name in ("crops", "channel_crops"):
                for name, fname in (e.get(field_name) or {}).items():
                    if name in entry[field_name]:
                        continue
                    uri = None
                    if run.visuals_dir is not None:
                        # only file names inside visuals/ are read
                        uri = _data_uri(run.visuals_dir / Path(str(fname)).name)
                    if uri is None:
                        problems.append(f"visual crop {fname} of {key[3]} ({name}) is missing")
                        continue
                    entry[field_name][name] = uri
            if e.get("channel_label") and not entry["channel_label"]:
                entry["channel_label"] = _text(e.get("channel_label"))
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for entry in entries.values():
        if not entry["crops"]:
            continue
        t, left, h, w = (list(entry["box"]) + [0, 0, 0, 0])[:4]
        entry["box_text"] = f"top {t}, left {left}, {w}×{h} px of the HR image"
        names = list(entry["crops"])
        names.sort(key=lambda n: (n != "GT",))  # GT first, methods in recorded order
        entry["figures"] = [{"label": "GT (HR)" if n == "GT" else n, "src": entry["crops"][n]}
                            for n in names]
        chan = entry["channel_label"] or "degraded"
        cnames = sorted(entry["channel_crops"], key=lambda n: (n != "guide",))  # guide first
        entry["channel_figures"] = [
            {"label": f"{chan} guide (uint8)" if n == "guide" else f"{chan} of {n}",
             "src": entry["channel_crops"][n]} for n in cnames]
        groups.setdefault((entry["setting"], entry["quality"]), []).append(entry)
    out = []
    for (setting, q), items in sorted(groups.items(),
                                      key=lambda kv: (_natural(kv[0][0]),
                                                      -1 if kv[0][1] is None else kv[0][1])):
        out.append({"title": " · ".join(p for p in (setting, quality_label(q)) if p),
                    "items": items})
    return out, problems


# --------------------------------------------------------------------------------------------
# the whole page
# --------------------------------------------------------------------------------------------
def _modcrop_summary(measured: pd.DataFrame) -> dict[str, Any]:
    """Which measured images were modcropped (per setting), and how many distinct images."""
    if not len(measured):
        return {"images": 0, "items": []}
    seen: dict[tuple, str] = {}
    for r in measured.to_dict(orient="records"):
        note = _text(r.get("notes"))
        if note.startswith("modcropped"):
            seen.setdefault((_text(r.get("dataset")), _text(r.get("image")),
                             _text(r.get("setting"))), note)
    return {
        "images": len({(ds, img) for ds, img, _ in seen}),
        "items": [f"{ds}/{img} ({setting}): {note}" for (ds, img, setting), note in seen.items()],
    }


def _environment(runs: Sequence[RunData]) -> dict[str, Any]:
    keys = ["device", "platform", "torch threads"]
    versions: list[str] = []
    for r in runs:
        for k in (r.meta.get("versions") or {}):
            if k not in versions:
                versions.append(k)
    cols = []
    for r in runs:
        m = r.meta
        vals = {"device": _text(m.get("device")), "platform": _text(m.get("platform")),
                "torch threads": _text(m.get("torch_threads"))}
        for k in versions:
            vals[k] = _text((m.get("versions") or {}).get(k))
        cols.append(vals)
    rows = [{"key": k, "values": [c.get(k, "") for c in cols]} for k in keys + versions]
    return {"runs": [r.path.name or str(r.path) for r in runs], "rows": rows}


def _header(runs: Sequence[RunData]) -> list[dict[str, Any]]:
    out = []
    for r in runs:
        m = r.meta
        settings = m.get("settings") or []
        out.append({
            "folder": r.path.name or str(r.path),
            "version": _text(m.get("irnbench_version")) or "unknown",
            "commit": _text(m.get("git_commit")) or "unknown (not run from a git checkout)",
            "command": _text(m.get("command")) or "unknown",
            "date": _text(m.get("date")) or "unknown",
            "task": _text(m.get("task")),
            "settings": ", ".join(
                ", ".join(f"{k}={v}" for k, v in s.items()) if isinstance(s, dict) else str(s)
                for s in settings),
            "datasets": ", ".join(
                f"{d.get('name')} ({d.get('images')} images)" if isinstance(d, dict) else str(d)
                for d in (m.get("datasets") or [])),
            "methods": ", ".join(str(x) for x in (m.get("methods") or [])),
            "draws": _text(m.get("draws")),
            "trained": [str(t) for t in (m.get("trained") or [])],
        })
    return out


def _methods_info(runs: Sequence[RunData]) -> list[dict[str, Any]]:
    info: dict[str, dict[str, Any]] = {}
    for r in runs:
        for name, d in (r.meta.get("methods_info") or {}).items():
            if name not in info and isinstance(d, dict):
                info[name] = {"name": name, "description": _text(d.get("description")),
                              "citation": _text(d.get("citation")),
                              "stochastic": bool(d.get("stochastic"))}
    return list(info.values())


def _measured_keys(summary: pd.DataFrame) -> set[tuple[str, str, str]]:
    if not len(summary):
        return set()
    return {(str(t), str(s), str(d).lower()) for t, s, d in
            zip(summary["task"], summary["setting"], summary["dataset"], strict=True)}


def build_context(runs: Sequence[RunData], generated: str | None = None) -> dict[str, Any]:
    """Everything the template shows, from loaded runs (pure: no file is written)."""
    measured, paper, merge_notes = merge_runs(runs)
    metas = [r.meta for r in runs]
    df = pd.concat([measured, paper], ignore_index=True) if len(paper) else measured
    tables = leaderboard_tables(df, metas)
    with np.errstate(invalid="ignore"):
        summary = summarize(_normalise(measured)) if len(measured) else pd.DataFrame()
    if len(summary):
        summary = _normalise(summary)
    quality_tables = quality_matrix_tables(df, summary, metas)
    for t in quality_tables:
        t["protocol"] = _protocols_for(metas, None, t["task"], t["setting"])
    visuals, visual_problems = visual_groups(runs)
    notes: list[str] = []
    for r in runs:
        prefix = f"[{r.path.name}] " if len(runs) > 1 else ""
        for n in r.meta.get("notes") or []:
            if prefix + str(n) not in notes:
                notes.append(prefix + str(n))
    notes += merge_notes + visual_problems
    tasks = list(dict.fromkeys(_text(m.get("task")) for m in metas if m.get("task")))
    return {
        "title": "irnbench report" + (f" — {', '.join(tasks)}" if tasks else ""),
        "generated": generated
        or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "runs": _header(runs),
        "environment": _environment(runs),
        "legend": LEGEND,
        "bootstrap": BOOTSTRAP,
        "baseline_given": False,
        "leaderboards": [t for t in tables if t["section"] == "measured"],
        "pivots": measured_pivots(summary, _normalise(paper)) if len(summary) else [],
        "published": published_pivots(_normalise(paper), _measured_keys(summary)),
        "published_title": PUBLISHED_TITLE,
        "quality_tables": quality_tables,
        "per_image": per_image_tables(measured),
        "visuals": visuals,
        "notes": notes,
        "modcrops": _modcrop_summary(measured),
        "methods": _methods_info(runs),
        "n_measured_rows": int(len(measured)),
    }
