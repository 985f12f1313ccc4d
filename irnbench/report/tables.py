"""The HTML report's leaderboards, as plain dicts for the templates, built on
:mod:`irnbench.leaderboard` (which decides the tables, their ranking and their Δ).

Paper-reported rows sit below the measured rows of the same task, setting, codec, quality and
dataset; every other paper row goes to a compact "Published results (not measured in this run)"
table per task × setting.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from irnbench.leaderboard import (
    Delta,
    Leaderboard,
    Row,
    as_codec,
    as_float,
    as_quality,
    as_text,
    codec_label,
    codec_rank,
    leaderboards,
    not_finite,
    table_key,
    table_order,
    unmatched_papers,
)
from irnbench.report.charts import cost_figure, difference_figure
from irnbench.report.formatting import (
    NA_NOTE,
    NA_TEXT,
    best_flags,
    format_number,
    format_params,
    format_seconds,
    int_text,
    metric_title,
    quality_label,
    sort_key,
)
from irnbench.report.runs import protocols_for, training_budgets
from irnbench.results import METRICS, MetricSpec

__all__ = ["leaderboard_tables"]

#: Columns of a measured row after the metrics.
_MEASURED_EXTRA = ("delta", "budget", "images", "draws", "params", "seconds")


def _title(task: str, setting: str, codec: str, q: int | None, ds: str) -> str:
    return " · ".join(p for p in (task, setting, quality_label(q, codec), ds) if p)


# --------------------------------------------------------------------------------------------
# cells
# --------------------------------------------------------------------------------------------
def _ci_text(rec: dict[str, Any], m: MetricSpec) -> str | None:
    """The 95 % bootstrap interval of a set mean as "[lo, hi]" (None when not computed or
    zero-width, e.g. one image)."""
    lo, hi = as_float(rec.get(f"{m.key}_lo")), as_float(rec.get(f"{m.key}_hi"))
    if lo is None or hi is None or lo == hi:
        return None
    return f"[{format_number(lo, m.digits)}, {format_number(hi, m.digits)}]"


def _footnote(footnotes: list[str], note: str) -> int:
    """The 1-based number of ``note`` among the table's footnotes (appended when new)."""
    if note not in footnotes:
        footnotes.append(note)
    return footnotes.index(note) + 1


def _metric_cells(rec: dict[str, Any], shown: list[MetricSpec], best: dict[str, list[bool]],
                  i: int | None, footnotes: list[str]) -> list[dict[str, Any]]:
    """A row's metric cells: mean, spread and interval, or "n/a" with its footnote."""
    cells: list[dict[str, Any]] = []
    for m in shown:
        if not_finite(rec, m.key):
            cells.append({"text": NA_TEXT, "sort": "", "bold": False, "cls": "num na",
                          "fn": _footnote(footnotes, NA_NOTE)})
            continue
        v = rec.get(m.key)
        std = as_float(rec.get(f"{m.key}_std"))
        cells.append({
            "text": format_number(v, m.digits),
            "sort": sort_key(v),
            "bold": bool(i is not None and best[m.key][i]),
            # a zero spread (e.g. bpp or LR fidelity of a deterministic encoder) is not shown
            "std": None if not std else "± " + format_number(std, m.std_digits),
            "ci": _ci_text(rec, m),
            "cls": "num",
        })
    return cells


def _delta_cell(name: str, d: Delta | None) -> dict[str, Any]:
    """Δ of the rank metric from the reference method, its paired interval and the mark."""
    if d is None or not all(math.isfinite(v) for v in (d.diff, d.lo, d.hi)):
        return {"text": "—", "sort": "", "cls": "num"}
    if name == d.reference:
        return {"text": "reference", "sort": sort_key(0.0), "cls": "num"}
    digits = next((m.digits for m in METRICS if m.key == d.metric), 2)
    mark = "*" if d.distinguishable else ""
    return {"text": f"{d.diff:+.{digits}f}{mark}", "sort": sort_key(d.diff),
            "ci": f"[{d.lo:+.{digits}f}, {d.hi:+.{digits}f}]", "cls": "num"}


def _name_cell(r: dict[str, Any]) -> dict[str, Any]:
    label, method = as_text(r.get("label")), as_text(r.get("method"))
    return {"text": label or method, "sub": "" if label in ("", method) else method}


# --------------------------------------------------------------------------------------------
# rows
# --------------------------------------------------------------------------------------------
def _measured_row(row: Row, i: int, shown: list[MetricSpec], best: dict[str, list[bool]],
                  budgets: dict[tuple[str, str], str], footnotes: list[str]) -> dict[str, Any]:
    r = row.record
    cells = [
        _name_cell(r),
        {"text": as_text(r.get("weights")) or "—"},
        {"badge": "measured", "text": "measured"},
        *_metric_cells(r, shown, best, i, footnotes),
        _delta_cell(row.name, row.delta),
        {"text": budgets.get((row.method, as_text(r.get("setting")))) or "—",
         "cls": "budget"},
        {"text": int_text(r.get("images")), "sort": sort_key(r.get("images")), "cls": "num"},
        {"text": int_text(r.get("draws")), "sort": sort_key(r.get("draws")), "cls": "num"},
        {"text": format_params(r.get("params")), "sort": sort_key(r.get("params")),
         "cls": "num"},
        {"text": format_seconds(r.get("seconds")), "sort": sort_key(r.get("seconds")),
         "cls": "num"},
    ]
    return {"kind": "measured", "cells": cells, "method": row.method,
            "values": {m.key: row.value(m.key) for m in shown}}


def _failed_row(row: Row, n_columns: int) -> dict[str, Any]:
    cells = [
        {"text": row.name},
        {"text": as_text(row.record.get("weights")) or "—"},
        {"badge": "measured", "text": "measured", "failed": True},
    ]
    return {"kind": "failed", "cells": cells, "method": row.method,
            "error": as_text(row.record.get("error")) or "failed (no error text recorded)",
            "colspan": n_columns - 3, "values": {}}


def _paper_row(r: dict[str, Any], shown: list[MetricSpec], where: bool, with_quality: bool,
               with_extra: bool, footnotes: list[str], codec_cells: bool = False
               ) -> dict[str, Any]:
    note = as_text(r.get("notes"))
    fn = _footnote(footnotes, note) if note else None
    q_r = as_quality(r.get("quality"))
    q_text = "" if q_r is None else str(q_r)
    if codec_cells:  # several codecs in one column: "WebP q75"
        q_text = quality_label(q_r, as_codec(r.get("codec"), q_r))
    cells = [
        _name_cell(r),
        *([{"text": as_text(r.get("dataset"))}] if where else []),
        *([{"text": q_text, "sort": sort_key(q_r), "cls": "num"}] if with_quality else []),
        {"text": as_text(r.get("weights")) or "as published"},
        {"badge": "paper-reported", "text": "paper-reported",
         "ref": as_text(r.get("reference")), "fn": fn},
        *_metric_cells(r, shown, {}, None, footnotes),
    ]
    if with_extra:
        cells += [{"text": "", "sort": "", "cls": "num"} for _ in _MEASURED_EXTRA]
    return {"kind": "paper", "cells": cells, "method": as_text(r.get("method")),
            "values": {m.key: as_float(r.get(m.key)) for m in shown}}


# --------------------------------------------------------------------------------------------
# columns and tables
# --------------------------------------------------------------------------------------------
def _columns(shown: list[MetricSpec], where: bool, with_quality: bool, codec: str = "jpeg"
             ) -> list[dict[str, Any]]:
    """The columns up to the metrics: method, (dataset, JPEG,) weights, source, metrics;
    ``codec`` names the coded file in the bpp title (``"mixed"``: the quality column is
    "Channel", its cells "WebP q75")."""
    columns: list[dict[str, Any]] = [
        {"key": "method", "label": "Method", "type": "text", "title": "method (paper label)"},
    ]
    if where:
        columns.append({"key": "dataset", "label": "Dataset", "type": "text",
                        "title": "dataset the number was reported on"})
    if with_quality and codec == "mixed":
        columns.append({"key": "quality", "label": "Channel", "type": "num",
                        "title": "codec and quality of the LR image"})
    elif with_quality:
        columns.append({"key": "quality", "label": codec_label(codec), "type": "num",
                        "title": f"{codec_label(codec)} quality of the LR image"})
    columns += [
        {"key": "weights", "label": "Weights", "type": "text", "title": "weights in use"},
        {"key": "source", "label": "Source", "type": "text", "title": "measured or quoted"},
    ]
    return columns + [{"key": m.key, "label": m.label, "type": "num",
                       "title": metric_title(m, codec)} for m in shown]


def _extra_columns(board: Leaderboard) -> list[dict[str, Any]]:
    """The columns after the metrics of a measured table: Δ, training, counts, cost."""
    delta = f"Δ {board.lead.label} vs {board.reference}" if board.lead and board.reference \
        else "Δ"
    return [
        {"key": "delta", "label": delta, "type": "num",
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


def _flags(rows: list[dict[str, Any]], records: list[dict[str, Any]],
           shown: list[MetricSpec]) -> dict[str, bool]:
    return {
        "stochastic": any(as_float(r.get(f"{m.key}_std")) is not None
                          for r in records for m in shown),
        "unconfirmed": any(m.key in ("psnr", "ssim") for m in shown),
        "intervals": any(c.get("ci") for r in rows for c in r["cells"]),
    }


def _measured_table(board: Leaderboard, protocol: list[str],
                    budgets: dict[tuple[str, str], str]) -> dict[str, Any]:
    """One measured leaderboard: ranked measured rows, failed rows, then paper rows."""
    ok = board.measured
    shown = board.metrics()
    best = {m.key: best_flags([r.value(m.key) for r in ok], m.better) for m in shown}
    columns = _columns(shown, False, False, board.codec) + _extra_columns(board)
    footnotes: list[str] = []
    rows = [_measured_row(r, i, shown, best, budgets, footnotes) for i, r in enumerate(ok)]
    rows += [_failed_row(r, len(columns)) for r in board.rows if r.kind == "failed"]
    rows += [_paper_row(r.record, shown, False, False, True, footnotes)
             for r in board.rows if r.kind == "paper"]
    return {
        "section": "measured", "task": board.task, "setting": board.setting,
        "codec": board.codec, "codec_label": codec_label(board.codec) if board.codec else "",
        "quality": board.quality, "dataset": board.dataset,
        "title": _title(*board.key), "protocol": protocol, "columns": columns, "rows": rows,
        "footnotes": footnotes, **_flags(rows, [r.record for r in ok], shown),
        "reference": board.reference, "lead": board.lead.label if board.lead else None,
    }


def _published_table(key: tuple, recs: list[dict[str, Any]],
                     protocol: list[str]) -> dict[str, Any]:
    """Paper rows of one task × setting that no measured table holds (dataset, JPEG columns)."""
    task, setting, _, _, _ = key
    shown = [m for m in METRICS if any(as_float(r.get(m.key)) is not None for r in recs)]
    with_quality = any(as_quality(r.get("quality")) is not None for r in recs)
    codecs = {as_codec(r.get("codec"), r.get("quality")) for r in recs} - {""}
    codec = codecs.pop() if len(codecs) == 1 else ("mixed" if codecs else "jpeg")
    footnotes: list[str] = []
    rows = [_paper_row(r, shown, True, with_quality, False, footnotes, codec == "mixed")
            for r in recs]
    return {
        "section": "published", "task": task, "setting": setting, "codec": "",
        "codec_label": "", "quality": None,
        "dataset": "", "title": _title(task, setting, "", None, ""), "protocol": protocol,
        "columns": _columns(shown, True, with_quality, codec), "rows": rows,
        "footnotes": footnotes,
        **_flags(rows, [], shown), "reference": None, "lead": None,
    }


def _figures(table: dict[str, Any], board: Leaderboard) -> list[dict[str, str]]:
    """The table's charts, both of the rank metric: quality against cost, and the per-image
    difference from the reference method (none for a single method)."""
    lead = board.lead
    ok = [r.record for r in board.measured if lead is not None and not r.na(lead.key)]
    if lead is None or len(ok) < 2:
        return []
    out = []
    cost = cost_figure(ok, lead.key, lead.label, f"{table['title']}: {lead.label} against cost")
    if cost:
        out.append({"src": cost, "alt": f"{lead.label} against parameters and seconds",
                    "caption": f"Set-mean {lead.label} against trainable parameters (left) and "
                               "seconds per image (right)."})
    ref = board.reference
    if ref and len(board.per_image):  # methods without a finite mean are left out, as from Δ
        shown = {r.name for r in board.measured if r.delta is not None}
        rows = board.per_image[board.per_image["name"].isin(shown)]
        rows = rows.assign(label=rows["name"])
        diff = difference_figure(rows, lead.key, lead.label, ref,
                                 f"{table['title']}: per-image {lead.label} − {ref}")
        if diff:
            out.append({"src": diff, "alt": f"per-image {lead.label} difference from {ref}",
                        "caption": f"Per image: each method's {lead.label} minus {ref}'s "
                                   "(a stochastic method's draws averaged)."})
    return out


def _orders(df: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Tasks and datasets (lower-case) in first-seen order, measured rows before paper rows."""
    tasks: list[str] = []
    datasets: list[str] = []
    for part in (df[df["source"] == "measured"], df[df["source"] != "measured"]):
        tasks += [t for t in (as_text(v) for v in part["task"]) if t not in tasks]
        datasets += [d for d in (as_text(v).lower() for v in part["dataset"])
                     if d not in datasets]
    return list(dict.fromkeys(tasks)), list(dict.fromkeys(datasets))


def leaderboard_tables(
    df: pd.DataFrame,
    metas: Sequence[dict[str, Any]] | None = None,
    summary: pd.DataFrame | None = None,
) -> list[dict[str, Any]]:
    """Leaderboards per task × setting × codec × quality × dataset, from a flat results frame.

    ``df`` holds measured rows (per image; a ``run`` column indexes ``metas`` when several runs
    were merged) and paper-reported rows; ``summary`` is its precomputed
    ``leaderboard.summarize_measured``. Each table is a dict with ``section`` ("measured" or
    "published"), its keys, ``protocol`` (texts stated above it), ``lead`` (the label of the
    metric it is ranked by), ``columns`` and ``rows``; each row has ``kind`` ("measured",
    "failed" or "paper"), ``cells`` and the raw ``values``. Only metric columns with a value in
    the table are shown; the best measured value of each ranked metric is bold.
    """
    metas = list(metas or [])
    boards = leaderboards(df, summary=summary)
    budgets = training_budgets(metas)
    tables = []
    for b in boards:
        protocol = protocols_for(metas, b.runs or None, b.task, b.setting) if metas else []
        table = _measured_table(b, protocol, budgets)
        table["figures"] = _figures(table, b)
        tables.append(table)
    task_order, dataset_order = _orders(df) if len(df) else ([], [])
    published: dict[tuple, list[dict[str, Any]]] = {}
    for rec in unmatched_papers(df, boards):
        t, s, _, _, _ = table_key(rec)
        published.setdefault((t, s, "", None, ""), []).append(rec)
    for key in table_order(published, task_order, dataset_order):
        recs = sorted(published[key], key=lambda r: (
            dataset_order.index(as_text(r["dataset"]).lower()),
            codec_rank(as_codec(r.get("codec"), r["quality"])), as_quality(r["quality"]) or -1))
        protocol = protocols_for(metas, None, key[0], key[1]) if metas else []
        tables.append(_published_table(key, recs, protocol))
    for i, t in enumerate(tables):
        t["id"] = f"{'lb' if t['section'] == 'measured' else 'pub'}-{i}"
    return tables
