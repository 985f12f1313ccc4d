"""Leaderboards as Markdown, LaTeX or CSV, for papers, READMEs and spreadsheets.

``export_report(run_dirs, fmt)`` merges run folders exactly as the HTML report does
(:func:`~irnbench.report.runs.load_runs` + :func:`~irnbench.report.runs.merge_runs`) and writes
the leaderboards of :mod:`irnbench.leaderboard` — one per task × setting × codec × quality ×
dataset, ranked by the task's metric, with the Δ of that metric from a reference — as Markdown
or LaTeX (:mod:`irnbench.report.text`), or as the flat set-level table (CSV, in the same order,
with each measured row's ``rank``). In the CSV a not-finite mean is written "n/a" (pandas reads
it back as NaN) with empty interval and spread, its metric keys are listed in the
``not_finite`` column, and the row has no rank; ``+inf`` is written "inf".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from irnbench.errors import UnknownNameError
from irnbench.leaderboard import (
    NOT_FINITE,
    Leaderboard,
    as_float,
    as_text,
    leaderboards,
    method_name,
    normalise,
)
from irnbench.report.formatting import NA_TEXT
from irnbench.report.runs import load_runs, merge_runs, protocols_for
from irnbench.report.text import to_latex, to_markdown
from irnbench.results import METRIC_COLUMNS

__all__ = ["FORMATS", "export_report", "export_tables", "set_level_frame"]

#: The text formats ``export_report`` writes (HTML stays :func:`render_report`).
FORMATS = ("md", "latex", "csv")
_CSV_IDS = ["source", "method", "label", "weights", "tag", "task", "setting", "codec",
            "quality", "dataset", "reference", "notes", "rank"]
_CSV_DIFFS = ["diff_reference", "diff_metric", "diff", "diff_lo", "diff_hi", "distinguishable"]
_CSV_TAIL = ["params", "seconds", "images", "draws", "status", "error", NOT_FINITE]


def _frame(measured: pd.DataFrame, papers: pd.DataFrame | None) -> pd.DataFrame:
    """Measured and paper rows in one frame, as :func:`~irnbench.leaderboard.leaderboards`
    takes them."""
    parts = [normalise(measured)]
    if papers is not None and len(papers):
        parts.append(normalise(papers))
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def export_tables(measured: pd.DataFrame, papers: pd.DataFrame | None = None,
                  metas: Sequence[dict[str, Any]] = (), baseline: str | None = None
                  ) -> list[Leaderboard]:
    """The leaderboards of per-image ``measured`` rows (a ``run`` column indexes ``metas``),
    with the ``papers`` rows of the same task, setting, codec, quality and dataset below them
    and the protocol the runs recorded for each setting."""
    boards = leaderboards(_frame(measured, papers), baseline)
    for b in boards:
        b.protocol = protocols_for(metas, b.runs or None, b.task, b.setting) if metas else []
    return boards


def _csv_records(boards: Sequence[Leaderboard]) -> list[dict[str, Any]]:
    """Measured rows in leaderboard order (``rank`` 1 is the best; a row without a finite
    value of the rank metric has none), then failed rows."""
    out = []
    for b in boards:
        rank = 0
        for row in b.rows:
            if row.kind == "paper":
                continue
            rec = dict(row.record)
            if row.kind == "measured" and b.lead is not None \
                    and row.value(b.lead.key) is not None:
                rank += 1
                rec["rank"] = rank
            d = row.delta
            if d is not None:
                rec.update(diff_reference=d.reference, diff_metric=d.metric, diff=d.diff,
                           diff_lo=d.lo, diff_hi=d.hi, distinguishable=d.distinguishable)
            out.append(rec)
    return out


def set_level_frame(measured: pd.DataFrame, papers: pd.DataFrame | None = None,
                    baseline: str | None = None) -> pd.DataFrame:
    """The flat set-level table: one row per measured method and table, in leaderboard order
    (with its intervals, its ``rank`` and its Δ from the reference), then one row per
    paper-reported number."""
    recs = _csv_records(leaderboards(_frame(measured, papers), baseline))
    if papers is not None and len(papers):
        recs += normalise(papers).to_dict(orient="records")
    out = pd.DataFrame(recs)
    metric_cols = [f"{m}{s}" for m in METRIC_COLUMNS for s in ("", "_lo", "_hi", "_std")]
    out = out.reindex(columns=_CSV_IDS + metric_cols + _CSV_DIFFS + _CSV_TAIL)
    for col in ("images", "draws", "rank"):  # counts, not floats, beside the blanks
        out[col] = pd.to_numeric(out[col], errors="coerce").round().astype("Int64")
    for m in METRIC_COLUMNS:  # a not-finite mean is "n/a", not an empty (unmeasured) cell
        na = [m in as_text(v).split(",") or as_float(x) == -math.inf
              for v, x in zip(out[NOT_FINITE], out[m], strict=True)]
        if any(na):
            out[m] = out[m].astype(object).where(~pd.Series(na, index=out.index), NA_TEXT)
    return out


def _check_baseline(baseline: str | None, measured: pd.DataFrame) -> None:
    """A ``--baseline`` that names no measured method is a user error (the tables would
    silently fall back to the best method)."""
    if baseline is None:
        return
    recs = measured.to_dict(orient="records")
    if any(baseline in (method_name(r), as_text(r.get("method"))) for r in recs):
        return
    raise UnknownNameError("baseline method", baseline, sorted({method_name(r) for r in recs}),
                           hint="name a measured method, as the tables do")


def export_report(run_dirs: Iterable[str | Path] | str | Path, fmt: str,
                  out: str | Path | None = None, baseline: str | None = None) -> str:
    """Merge run folders and return their leaderboards as ``fmt`` ("md", "latex" or "csv"),
    also written to ``out`` when given; ``baseline`` names the reference of the Δ column
    (default: the best method of each table by its task's metric)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if isinstance(run_dirs, (str, Path)):
        run_dirs = [run_dirs]
    runs = load_runs(run_dirs)
    measured, papers, notes = merge_runs(runs)
    _check_baseline(baseline, measured)
    if fmt == "csv":
        text = set_level_frame(measured, papers, baseline).to_csv(index=False)
    else:
        tables = export_tables(measured, papers, [r.meta for r in runs], baseline)
        render = to_markdown if fmt == "md" else to_latex
        text = render(tables, len(runs), notes)
    if out is not None:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return text
