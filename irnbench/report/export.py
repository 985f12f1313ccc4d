"""Leaderboards as Markdown, LaTeX or CSV, for papers, READMEs and spreadsheets.

``export_report(run_dirs, fmt)`` merges run folders exactly as the HTML report does
(:func:`~irnbench.report.context.load_runs` + :func:`~irnbench.report.context.merge_runs`) and
writes one table per task × setting × JPEG quality × dataset: measured rows ranked by the lead
metric, each metric as ``mean ± half-width`` of its 95 % percentile bootstrap interval over
images, the paired-bootstrap difference from a reference method (``Δ``, ``*`` when the interval
excludes 0), then the paper-reported rows of the same dataset. Above each table stands the
protocol the runs recorded for its setting (BasicSR style). CSV is the flat set-level table.

The tables are built once (:func:`export_tables`, pure data) and rendered per format
(:func:`markdown_table`, :func:`latex_table`), so that they can be tested on hand-made frames.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from irnbench import __version__
from irnbench.compare import TABLE_KEYS, compare, lead_metric
from irnbench.errors import UnknownNameError
from irnbench.report.context import (
    METRICS,
    MetricSpec,
    _normalise,
    _num,
    _order,
    _protocols_for,
    _quality,
    _text,
    format_number,
    format_params,
    format_seconds,
    load_runs,
    merge_runs,
    quality_label,
)
from irnbench.results import BOOTSTRAP, METRIC_COLUMNS, summarize

__all__ = [
    "FORMATS",
    "ExportRow",
    "ExportTable",
    "export_report",
    "export_tables",
    "latex_escape",
    "latex_table",
    "markdown_table",
    "set_level_frame",
    "to_latex",
    "to_markdown",
]

#: The text formats ``export_report`` writes (HTML stays :func:`render_report`).
FORMATS = ("md", "latex", "csv")
#: Weights labels longer than this go into a numbered note under the table.
MAX_WEIGHTS_CHARS = 40
_CSV_IDS = ["source", "method", "label", "weights", "tag", "task", "setting", "quality",
            "dataset", "reference", "notes"]
_CSV_DIFFS = ["diff_reference", "diff_metric", "diff", "diff_lo", "diff_hi", "distinguishable"]
_CSV_TAIL = ["params", "seconds", "images", "draws", "status", "error"]


# --------------------------------------------------------------------------------------------
# the tables, as data
# --------------------------------------------------------------------------------------------
@dataclass
class ExportRow:
    """One table row: a measured method, a failed one, or a paper-reported number."""

    kind: str  #: "measured", "failed" or "paper"
    name: str
    weights: str
    means: dict[str, float | None] = field(default_factory=dict)
    halves: dict[str, float | None] = field(default_factory=dict)  #: (hi − lo) / 2
    diff: tuple[float, float, float] | None = None  #: (mean, lo, hi) vs the reference
    distinguishable: bool = False
    params: float | None = None
    seconds: float | None = None
    note: str = ""  #: a paper row's protocol caveat, or a failed row's error


@dataclass
class ExportTable:
    """One leaderboard: its keys, the protocol stated above it and its rows (best first)."""

    task: str
    setting: str
    quality: int | None
    dataset: str
    protocol: list[str]
    metrics: list[MetricSpec]  #: shown metric columns, in ``METRICS`` order
    lead: MetricSpec | None
    reference: str | None
    rows: list[ExportRow]

    @property
    def title(self) -> str:
        """``rescale x2 · mini``, ``rescale x2 · JPEG q30 · div2k-val``."""
        head = " ".join(p for p in (self.task, self.setting) if p)
        return " · ".join(p for p in (head, quality_label(self.quality), self.dataset) if p)


def _key(rec: dict[str, Any]) -> tuple[str, str, int | None, str]:
    return (_text(rec.get("task")), _text(rec.get("setting")), _quality(rec.get("quality")),
            _text(rec.get("dataset")))


def _lower(key: tuple[str, str, int | None, str]) -> tuple[str, str, int | None, str]:
    """Paper rows meet measured ones whatever the dataset's case (``Set5`` vs ``set5``)."""
    return key[0], key[1], key[2], key[3].lower()


def _name(rec: dict[str, Any]) -> str:
    """A method as tables name it: the ``NAME.TAG`` label, else the method."""
    return _text(rec.get("label")) or _text(rec.get("method"))


def _half(rec: dict[str, Any], metric: str) -> float | None:
    lo, hi = _num(rec.get(f"{metric}_lo")), _num(rec.get(f"{metric}_hi"))
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    return (hi - lo) / 2


def _measured_row(rec: dict[str, Any], diff: dict[str, Any] | None) -> ExportRow:
    row = ExportRow("measured", _name(rec), _text(rec.get("weights")),
                    means={m.key: _num(rec.get(m.key)) for m in METRICS},
                    halves={m.key: _half(rec, m.key) for m in METRICS},
                    params=_num(rec.get("params")), seconds=_num(rec.get("seconds")))
    if diff is not None:
        row.diff = (float(diff["diff"]), float(diff["diff_lo"]), float(diff["diff_hi"]))
        row.distinguishable = bool(diff["distinguishable"])
    return row


def _paper_row(rec: dict[str, Any]) -> ExportRow:
    return ExportRow("paper", f"{_name(rec)} (paper)", _text(rec.get("reference")),
                     means={m.key: _num(rec.get(m.key)) for m in METRICS},
                     note=_text(rec.get("notes")))


def _failed_row(rec: dict[str, Any]) -> ExportRow:
    error = _text(rec.get("error")) or "no error text recorded"
    return ExportRow("failed", _name(rec), _text(rec.get("weights")), note=f"failed: {error}")


def _ranked(ok: list[dict[str, Any]], lead: MetricSpec | None) -> list[dict[str, Any]]:
    """Measured rows best first by the lead metric (missing values last)."""
    if lead is None or lead.better is None:
        return ok
    sign = -1.0 if lead.better == "higher" else 1.0

    def key(rec: dict[str, Any]) -> tuple[bool, float]:
        v = _num(rec.get(lead.key))
        return v is None, sign * (v if v is not None else 0.0)

    return sorted(ok, key=key)


def _build(key: tuple, recs: list[dict[str, Any]], diffs: dict[tuple, dict[str, Any]],
           papers: list[dict[str, Any]], protocol: list[str]) -> ExportTable:
    """One leaderboard from its set-level rows, its ``compare`` rows and its paper rows."""
    ok = [r for r in recs if _text(r.get("status")) in ("", "ok")]
    failed = [r for r in recs if _text(r.get("status")) == "failed"]
    lead_key = lead_metric(pd.DataFrame(ok)) if ok else None
    lead = next((m for m in METRICS if m.key == lead_key), None)
    ok = _ranked(ok, lead)
    rows = [_measured_row(r, diffs.get((key, _name(r)))) for r in ok]
    rows += [_failed_row(r) for r in failed] + [_paper_row(r) for r in papers]
    shown = [m for m in METRICS if any(r.means.get(m.key) is not None for r in rows)]
    refs = [d["reference"] for (k, _), d in diffs.items() if k == key]
    return ExportTable(*key, protocol=protocol, metrics=shown, lead=lead,
                       reference=str(refs[0]) if refs else None, rows=rows)


def _first_seen(df: pd.DataFrame, col: str, lower: bool = False) -> list[str]:
    """Distinct values of a column in order of appearance (the tables' order)."""
    values = (_text(v).lower() if lower else _text(v) for v in df.get(col, []))
    return list(dict.fromkeys(values))


def _summary_and_diffs(measured: pd.DataFrame, baseline: str | None
                       ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Set-level rows (with bootstrap intervals) and the ``compare`` rows of the measured data."""
    if not len(measured):
        return pd.DataFrame(), pd.DataFrame()
    with np.errstate(invalid="ignore"):  # std of [inf, inf] (a lossless LR) is NaN: fine
        summary = summarize(measured)
    return summary, compare(measured, baseline=baseline)


def export_tables(measured: pd.DataFrame, papers: pd.DataFrame | None = None,
                  metas: Sequence[dict[str, Any]] = (), baseline: str | None = None
                  ) -> list[ExportTable]:
    """The leaderboards of per-image ``measured`` rows (a ``run`` column indexes ``metas``),
    with the ``papers`` rows of the same task, setting, quality and dataset below them."""
    measured = _normalise(measured)
    papers = _normalise(papers) if papers is not None else pd.DataFrame(columns=TABLE_KEYS)
    summary, cmp = _summary_and_diffs(measured, baseline)
    recs: dict[tuple, list[dict[str, Any]]] = {}
    for r in summary.to_dict(orient="records"):
        recs.setdefault(_key(r), []).append(r)
    diffs = {(_key(d), _text(d["label"])): d for d in cmp.to_dict(orient="records")}
    beside: dict[tuple, list[dict[str, Any]]] = {}
    for r in papers.to_dict(orient="records"):
        beside.setdefault(_lower(_key(r)), []).append(r)
    runs_of: dict[tuple, set[int]] = {}
    for r in measured.to_dict(orient="records"):
        run = _num(r.get("run"))
        runs_of.setdefault(_key(r), set()).update([] if run is None else [int(run)])
    order = _order(recs, _first_seen(measured, "task"),
                   _first_seen(measured, "dataset", lower=True))
    tables = []
    for key in order:
        protocol = _protocols_for(metas, runs_of.get(key) or None, key[0], key[1]) if metas \
            else []
        tables.append(_build(key, recs[key], diffs, beside.get(_lower(key), []), protocol))
    return tables


# --------------------------------------------------------------------------------------------
# cells, shared by Markdown and LaTeX
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Style:
    """How one format writes text, numbers and ±."""

    esc: Callable[[str], str]
    num: Callable[[str], str]
    pm: str


def _plain(s: str) -> str:
    return s.replace("−∞", "-∞")


def _math(s: str) -> str:
    """A number in LaTeX: signs and ∞ in math mode, plain digits as they are."""
    if not s:
        return s
    s = s.replace("−", "-").replace("∞", r"\infty")
    return f"${s}$" if s[0] in "+-\\" else s


def _fixed(v: float, digits: int, sign: bool = False) -> str:
    """``v`` with ``digits`` decimals, never ``-0.00``; ``sign`` writes ``+`` on positives."""
    if not math.isfinite(v):
        return format_number(v, digits)
    text = f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"
    if float(text) == 0:
        text = ("+" if sign else "") + f"{0:.{digits}f}"
    return text


def _metric_cell(row: ExportRow, m: MetricSpec, style: _Style) -> str:
    mean = row.means.get(m.key)
    if mean is None:
        return ""
    text = style.num(format_number(mean, m.digits))
    half = row.halves.get(m.key)
    if half is not None:
        text += style.pm + style.num(_fixed(half, m.digits))
    return text


def _diff_cell(row: ExportRow, digits: int, style: _Style) -> str:
    if row.diff is None or not all(math.isfinite(v) for v in row.diff):
        return ""
    d, lo, hi = row.diff
    text = (f"{style.num(_fixed(d, digits, sign=True))} "
            f"[{style.num(_fixed(lo, digits))}, {style.num(_fixed(hi, digits))}]")
    return text + ("*" if row.distinguishable else "")


def _header(table: ExportTable, style: _Style) -> list[str]:
    cols = ["Method", "Weights"] + [m.label for m in table.metrics]
    if table.reference is not None and table.lead is not None:
        cols.append(f"Δ {table.lead.label} vs {table.reference}")
    return [style.esc(c) for c in cols + ["Params", "s/img"]]


def _note(notes: list[str], text: str) -> str:
    """The ``[n]`` mark of a note under the table (one number per distinct text)."""
    if text not in notes:
        notes.append(text)
    return f"[{notes.index(text) + 1}]"


def _row_cells(table: ExportTable, row: ExportRow, style: _Style, notes: list[str]
               ) -> list[str]:
    name = style.esc(row.name)
    if row.kind == "paper" and row.note:
        name += " " + _note(notes, row.note)
    weights = row.weights or ("as published" if row.kind == "paper" else "—")
    weights = _note(notes, weights) if len(weights) > MAX_WEIGHTS_CHARS else style.esc(weights)
    cells = [name, weights] + [_metric_cell(row, m, style) for m in table.metrics]
    if table.reference is not None and table.lead is not None:
        cells.append(_diff_cell(row, table.lead.digits, style))
    cells += [style.esc(format_params(row.params)), style.num(format_seconds(row.seconds))]
    if row.kind == "failed":
        cells[2] = "failed " + _note(notes, f"{row.name} {row.note}")
    return cells


def _legend(table: ExportTable, latex: bool = False) -> list[str]:
    """What the marks and ± mean (stated next to every table, so that it can be quoted alone)."""
    conf = f"{BOOTSTRAP['confidence'] * 100:g} %"
    boot = f"{BOOTSTRAP['resamples']:,} resamples, seed {BOOTSTRAP['seed']}"
    out = []
    if table.reference is not None and table.lead is not None:
        out.append(f"* : the {conf} paired bootstrap interval of the difference from "
                   f"{table.reference} excludes 0 (distinguishable); Δ {table.lead.label} is the "
                   f"mean per-image difference from {table.reference} [its {conf} paired "
                   "bootstrap interval over images].")
    out.append(f"± : half the width of the {conf} percentile bootstrap interval of the set "
               f"mean over images ({boot}).")
    if latex:
        out.append("bold: best, underlined: second (measured rows).")
    if any(r.kind == "paper" for r in table.rows):
        out.append("(paper): quoted from the source in the Weights column, not re-measured "
                   "(no interval).")
    return out


def _protocol(table: ExportTable) -> list[str]:
    head = f"Protocol ({table.task} {table.setting}"
    head += f", JPEG quality {table.quality})" if table.quality is not None else ")"
    return [f"{head}: {p}" for p in table.protocol] or [f"{head}: not recorded in the run "
                                                        "metadata."]


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------
def _md_escape(text: str) -> str:
    """A GitHub table cell: ``|`` escaped, line breaks flattened."""
    return re.sub(r"\s*\n\s*", " ", str(text)).replace("|", r"\|")


_MD = _Style(esc=_md_escape, num=_plain, pm=" ± ")


def markdown_table(table: ExportTable) -> str:
    """One leaderboard: ``###`` heading, protocol, legend, GitHub table, notes."""
    notes: list[str] = []
    header = _header(table, _MD)
    rows = [_row_cells(table, r, _MD, notes) for r in table.rows]
    align = "|" + "|".join(["---", "---"] + ["---:"] * (len(header) - 2)) + "|"
    lines = [f"### {_md_escape(table.title)}", ""]
    lines += [line for p in _protocol(table) for line in (p, "")]
    lines += [" ".join(_legend(table)).replace("* :", r"\* :", 1), ""]
    lines += ["| " + " | ".join(header) + " |", align]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    if notes:
        lines += [""] + [f"- [{i}] {_md_escape(n)}" for i, n in enumerate(notes, 1)]
    return "\n".join(lines) + "\n"


def to_markdown(tables: Sequence[ExportTable], runs: int, notes: Sequence[str] = ()) -> str:
    """A Markdown document of all leaderboards."""
    head = [f"<!-- generated by irnbench {__version__} from {runs} run(s) -->", ""]
    head += [f"> {_md_escape(n)}" for n in notes] + ([""] if notes else [])
    body = "\n".join(markdown_table(t) for t in tables)
    return "\n".join(head) + "\n" + body


# --------------------------------------------------------------------------------------------
# LaTeX
# --------------------------------------------------------------------------------------------
_LATEX = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"\textless{}", ">": r"\textgreater{}",
    "±": r"$\pm$", "×": r"$\times$", "·": r"$\cdot$", "Δ": r"$\Delta$", "∞": r"$\infty$",
    "−": r"$-$", "≤": r"$\leq$", "≥": r"$\geq$", "≈": r"$\approx$", "≡": r"$\equiv$",
    "→": r"$\rightarrow$", "↔": r"$\leftrightarrow$", "√": r"$\surd$", "α": r"$\alpha$",
    "π": r"$\pi$", "σ": r"$\sigma$", "′": r"$'$", "²": r"\textsuperscript{2}", "†": r"\dag{}",
    "§": r"\S{}", "…": r"\dots{}", "–": "--", "—": "---", "ø": r"{\o}",
}


def latex_escape(text: Any) -> str:
    """Text safe in a LaTeX cell or caption: ``\\ & % $ # _ { } ~ ^`` (and a few non-ASCII
    symbols the reports use) are written as LaTeX commands."""
    return "".join(_LATEX.get(c, c) for c in str(text))


_TEX = _Style(esc=latex_escape, num=_math, pm=r" $\pm$ ")


def _places(values: list[float | None], better: str | None) -> list[int]:
    """1 for the best value(s), 2 for the second distinct value, 0 otherwise."""
    present = sorted({v for v in values if v is not None and not math.isnan(v)},
                     reverse=better == "higher")
    if better is None or len([v for v in values if v is not None]) < 2:
        return [0] * len(values)
    rank = {v: i + 1 for i, v in enumerate(present[:2])}
    return [rank.get(v, 0) if v is not None else 0 for v in values]


def _latex_marks(table: ExportTable, body: list[list[str]]) -> None:
    """Bold the best and underline the second value of each ranked metric (measured rows)."""
    measured = [i for i, r in enumerate(table.rows) if r.kind == "measured"]
    for j, m in enumerate(table.metrics, start=2):
        places = _places([table.rows[i].means.get(m.key) for i in measured], m.better)
        for i, place in zip(measured, places, strict=True):
            if place:
                body[i][j] = (r"\textbf{%s}" if place == 1 else r"\underline{%s}") % body[i][j]


def _latex_rows(table: ExportTable, notes: list[str]) -> list[str]:
    body = [_row_cells(table, r, _TEX, notes) for r in table.rows]
    _latex_marks(table, body)
    lines: list[str] = []
    previous = None
    for row, cells in zip(table.rows, body, strict=True):
        if row.kind == "paper" and previous not in (None, "paper"):
            lines.append(r"\midrule")  # measured above, quoted below
        previous = row.kind
        first = "{}" + cells[0] if cells[0].startswith("[") else cells[0]  # not \\[len]
        lines.append(" & ".join([first, *cells[1:]]) + r" \\")
    return lines


def _label(table: ExportTable) -> str:
    return "tab:irnbench-" + re.sub(r"[^a-z0-9]+", "-", table.title.lower()).strip("-")


def latex_table(table: ExportTable) -> str:
    """One ``table`` environment: caption (heading, protocol, legend), booktabs ``tabular``."""
    notes: list[str] = []
    header = _header(table, _TEX)
    body = _latex_rows(table, notes)
    title = latex_escape(table.title)
    caption = " ".join([title + "."] + [latex_escape(p) for p in _protocol(table)]
                       + [latex_escape(t) for t in _legend(table, latex=True)])
    lines = [r"\begin{table}[htbp]", r"\centering", rf"\caption[{{{title}}}]{{{caption}}}",
             rf"\label{{{_label(table)}}}",
             r"\begin{tabular}{ll" + "r" * (len(header) - 2) + "}", r"\toprule",
             " & ".join(header) + r" \\", r"\midrule", *body, r"\bottomrule", r"\end{tabular}"]
    if notes:
        lines.append(r"\par\smallskip\footnotesize")
        lines += [f"[{i}]~{latex_escape(n)}\\par" for i, n in enumerate(notes, 1)]
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def to_latex(tables: Sequence[ExportTable], runs: int, notes: Sequence[str] = ()) -> str:
    """A LaTeX fragment of all leaderboards (``\\input`` it; needs booktabs)."""
    head = [f"% generated by irnbench {__version__} from {runs} run(s)",
            r"% requires \usepackage{booktabs}"]
    head += [f"% note: {' '.join(str(n).split())}" for n in notes]
    return "\n".join(head) + "\n\n" + "\n".join(latex_table(t) for t in tables)


# --------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------
def set_level_frame(measured: pd.DataFrame, papers: pd.DataFrame | None = None,
                    baseline: str | None = None) -> pd.DataFrame:
    """The flat set-level table: one row per measured method and table (with its intervals and
    its ``compare`` difference from the reference) and one per paper-reported number."""
    measured = _normalise(measured)
    summary, cmp = _summary_and_diffs(measured, baseline)
    if len(summary) and len(cmp):
        cmp = cmp.rename(columns={"reference": "diff_reference", "metric": "diff_metric"})
        cmp["quality"] = [_quality(q) for q in cmp["quality"]]
        cmp = cmp.rename(columns={"label": "_name"})
        summary["_name"] = [_name(r) for r in summary.to_dict(orient="records")]
        summary["quality"] = [_quality(q) for q in summary["quality"]]
        summary = summary.merge(cmp[TABLE_KEYS + ["_name"] + _CSV_DIFFS],
                                on=TABLE_KEYS + ["_name"], how="left")
    parts = [summary] + ([_normalise(papers)] if papers is not None and len(papers) else [])
    out = pd.concat(parts, ignore_index=True) if any(len(p) for p in parts) else pd.DataFrame()
    metric_cols = [f"{m}{s}" for m in METRIC_COLUMNS for s in ("", "_lo", "_hi", "_std")]
    out = out.reindex(columns=_CSV_IDS + metric_cols + _CSV_DIFFS + _CSV_TAIL)
    for col in ("images", "draws"):  # counts, not floats, beside the paper rows' blanks
        out[col] = pd.to_numeric(out[col], errors="coerce").round().astype("Int64")
    return out


# --------------------------------------------------------------------------------------------
# the whole export
# --------------------------------------------------------------------------------------------
def _check_baseline(baseline: str | None, measured: pd.DataFrame) -> None:
    """A ``--baseline`` that names no measured method is a user error (``compare`` would
    silently fall back to the best method)."""
    if baseline is None:
        return
    recs = measured.to_dict(orient="records")
    if any(baseline in (_name(r), _text(r.get("method"))) for r in recs):
        return
    raise UnknownNameError("baseline method", baseline, sorted({_name(r) for r in recs}),
                           hint="name a measured method, as the tables do")


def export_report(run_dirs: Iterable[str | Path] | str | Path, fmt: str,
                  out: str | Path | None = None, baseline: str | None = None) -> str:
    """Merge run folders and return their leaderboards as ``fmt`` ("md", "latex" or "csv"),
    also written to ``out`` when given; ``baseline`` names the reference of the Δ column
    (default: the best method of each table)."""
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
