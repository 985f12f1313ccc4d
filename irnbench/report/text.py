"""Leaderboards as Markdown or LaTeX, for READMEs and papers.

Each :class:`~irnbench.leaderboard.Leaderboard` becomes one table: the protocol the runs recorded
for its setting above it (BasicSR style), measured rows ranked by the task's metric, each metric
as ``mean ± half-width`` of its 95 % percentile bootstrap interval over images, the
paired-bootstrap difference from the reference (``Δ``, ``*`` when the interval excludes 0),
then the paper-reported rows of the same dataset. A not-finite mean is "n/a" with a numbered
note under the table (never bold, no Δ); ``+inf`` is written ∞.

Every text that comes from the inputs (labels, weights, datasets, protocol texts, notes) is
escaped: in Markdown ``<`` and ``>`` become entities and backslash, backtick, ``* _ [ ] ~ |``
are backslash-escaped, so that a label can neither inject HTML nor turn into code, a link or
emphasis; in LaTeX the special characters become commands.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from irnbench import __version__
from irnbench.leaderboard import Leaderboard, Row, as_float, as_text, codec_label
from irnbench.report.formatting import (
    NA_NOTE,
    NA_TEXT,
    format_number,
    format_params,
    format_seconds,
    quality_label,
    rankable,
)
from irnbench.results import BOOTSTRAP, MetricSpec

__all__ = [
    "MAX_WEIGHTS_CHARS",
    "latex_escape",
    "latex_table",
    "markdown_table",
    "table_title",
    "to_latex",
    "to_markdown",
]

#: Weights labels longer than this go into a numbered note under the table.
MAX_WEIGHTS_CHARS = 40


def table_title(table: Leaderboard) -> str:
    """``rescale x2 · mini``, ``rescale x2 · JPEG q30 · div2k-val``, ``… · WebP q75 · …``."""
    head = " ".join(p for p in (table.task, table.setting) if p)
    return " · ".join(p for p in (head, quality_label(table.quality, table.codec),
                                  table.dataset) if p)


# --------------------------------------------------------------------------------------------
# what a row shows
# --------------------------------------------------------------------------------------------
def _row_name(row: Row) -> str:
    return f"{row.name} (paper)" if row.kind == "paper" else row.name


def _row_weights(row: Row) -> str:
    """Measured: the weights label; paper: the source it is quoted from."""
    if row.kind == "paper":
        return as_text(row.record.get("reference")) or "as published"
    return as_text(row.record.get("weights")) or "—"


def _row_note(row: Row) -> str:
    """A paper row's protocol caveat, or a failed row's error."""
    if row.kind == "failed":
        return "failed: " + (as_text(row.record.get("error")) or "no error text recorded")
    return as_text(row.record.get("notes")) if row.kind == "paper" else ""


def _half(row: Row, metric: str) -> float | None:
    """Half the width of a measured mean's bootstrap interval (``None`` for paper rows)."""
    if row.kind != "measured":
        return None
    lo, hi = as_float(row.record.get(f"{metric}_lo")), as_float(row.record.get(f"{metric}_hi"))
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    return (hi - lo) / 2


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


def _metric_cell(row: Row, m: MetricSpec, style: _Style, notes: list[str]) -> str:
    if row.kind != "failed" and row.na(m.key):
        return f"{NA_TEXT} {_note(notes, NA_NOTE)}"
    mean = row.value(m.key) if row.kind != "failed" else None
    if mean is None:
        return ""
    text = style.num(format_number(mean, m.digits))
    half = _half(row, m.key)
    if half is not None:
        text += style.pm + style.num(_fixed(half, m.digits))
    return text


def _diff_cell(row: Row, digits: int, style: _Style) -> str:
    d = row.delta
    if d is None or not all(math.isfinite(v) for v in (d.diff, d.lo, d.hi)):
        return ""
    text = (f"{style.num(_fixed(d.diff, digits, sign=True))} "
            f"[{style.num(_fixed(d.lo, digits))}, {style.num(_fixed(d.hi, digits))}]")
    return text + ("*" if d.distinguishable else "")


def _header(table: Leaderboard, style: _Style) -> list[str]:
    cols = ["Method", "Weights"] + [m.label for m in table.metrics()]
    if table.reference is not None and table.lead is not None:
        cols.append(f"Δ {table.lead.label} vs {table.reference}")
    return [style.esc(c) for c in cols + ["Params", "s/img"]]


def _note(notes: list[str], text: str) -> str:
    """The ``[n]`` mark of a note under the table (one number per distinct text)."""
    if text not in notes:
        notes.append(text)
    return f"[{notes.index(text) + 1}]"


def _row_cells(table: Leaderboard, row: Row, style: _Style, notes: list[str]
               ) -> list[str]:
    name = style.esc(_row_name(row))
    note = _row_note(row)
    if row.kind == "paper" and note:
        name += " " + _note(notes, note)
    weights = _row_weights(row)
    weights = _note(notes, weights) if len(weights) > MAX_WEIGHTS_CHARS else style.esc(weights)
    cells = [name, weights] + [_metric_cell(row, m, style, notes) for m in table.metrics()]
    if table.reference is not None and table.lead is not None:
        cells.append(_diff_cell(row, table.lead.digits, style))
    measured = row.kind == "measured"
    cells += [style.esc(format_params(row.record.get("params") if measured else None)),
              style.num(format_seconds(row.record.get("seconds") if measured else None))]
    if row.kind == "failed":
        cells[2] = "failed " + _note(notes, f"{row.name} {note}")
    return cells


def _legend(table: Leaderboard, latex: bool = False) -> list[str]:
    """What the marks and ± mean (stated next to every table, so that it can be quoted alone)."""
    conf = f"{BOOTSTRAP['confidence'] * 100:g} %"
    boot = f"{BOOTSTRAP['resamples']:,} resamples, seed {BOOTSTRAP['seed']}"
    out = []
    if table.lead is not None:
        out.append(f"Rows ranked by {table.lead.label}, the metric of the {table.task} task.")
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


def _protocol(table: Leaderboard) -> list[str]:
    head = f"Protocol ({table.task} {table.setting}"
    label = codec_label(table.codec or "jpeg")
    head += f", {label} quality {table.quality})" if table.quality is not None else ")"
    return [f"{head}: {p}" for p in table.protocol] or [f"{head}: not recorded in the run "
                                                        "metadata."]


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------
_MD_SPECIAL = re.compile(r"([\\`*_\[\]~|])")


def _md_escape(text: str) -> str:
    """User text in Markdown: line breaks flattened, ``< >`` as entities (no raw HTML), and
    ``\\ ` * _ [ ] ~ |`` backslash-escaped (no code, emphasis, link or extra cell)."""
    flat = re.sub(r"\s*\n\s*", " ", str(text))
    return _MD_SPECIAL.sub(r"\\\1", flat).replace("<", "&lt;").replace(">", "&gt;")


_MD = _Style(esc=_md_escape, num=_plain, pm=" ± ")


def markdown_table(table: Leaderboard) -> str:
    """One leaderboard: ``###`` heading, protocol, legend, GitHub table, notes."""
    notes: list[str] = []
    header = _header(table, _MD)
    rows = [_row_cells(table, r, _MD, notes) for r in table.rows]
    align = "|" + "|".join(["---", "---"] + ["---:"] * (len(header) - 2)) + "|"
    lines = [f"### {_md_escape(table_title(table))}", ""]
    lines += [line for p in _protocol(table) for line in (_md_escape(p), "")]
    lines += [_md_escape(" ".join(_legend(table))), ""]
    lines += ["| " + " | ".join(header) + " |", align]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    if notes:
        lines += [""] + [f"- [{i}] {_md_escape(n)}" for i, n in enumerate(notes, 1)]
    return "\n".join(lines) + "\n"


def to_markdown(tables: Sequence[Leaderboard], runs: int, notes: Sequence[str] = ()) -> str:
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
    """Text safe in a LaTeX cell or caption: ``\\ & % $ # _ { } ~ ^ < >`` (and a few non-ASCII
    symbols the reports use) are written as LaTeX commands; line breaks are flattened (a blank
    line would end the paragraph inside a tabular)."""
    return "".join(_LATEX.get(c, c) for c in re.sub(r"\s*\n\s*", " ", str(text)))


_TEX = _Style(esc=latex_escape, num=_math, pm=r" $\pm$ ")


def _places(values: list[float | None], better: str | None) -> list[int]:
    """1 for the best value(s), 2 for the second distinct value, 0 otherwise (missing and
    not-finite values never place: ``formatting.rankable``)."""
    values = [rankable(v, better) for v in values]
    present = sorted({v for v in values if v is not None}, reverse=better == "higher")
    if better is None or len([v for v in values if v is not None]) < 2:
        return [0] * len(values)
    rank = {v: i + 1 for i, v in enumerate(present[:2])}
    return [rank.get(v, 0) if v is not None else 0 for v in values]


def _latex_marks(table: Leaderboard, body: list[list[str]]) -> None:
    """Bold the best and underline the second value of each ranked metric (measured rows)."""
    measured = [i for i, r in enumerate(table.rows) if r.kind == "measured"]
    for j, m in enumerate(table.metrics(), start=2):
        places = _places([table.rows[i].value(m.key) for i in measured], m.better)
        for i, place in zip(measured, places, strict=True):
            if place:
                body[i][j] = (r"\textbf{%s}" if place == 1 else r"\underline{%s}") % body[i][j]


def _latex_rows(table: Leaderboard, notes: list[str]) -> list[str]:
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


def _label(table: Leaderboard) -> str:
    return "tab:irnbench-" + re.sub(r"[^a-z0-9]+", "-", table_title(table).lower()).strip("-")


def latex_table(table: Leaderboard) -> str:
    """One ``table`` environment: caption (heading, protocol, legend), booktabs ``tabular``."""
    notes: list[str] = []
    header = _header(table, _TEX)
    body = _latex_rows(table, notes)
    title = latex_escape(table_title(table))
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


def to_latex(tables: Sequence[Leaderboard], runs: int, notes: Sequence[str] = ()) -> str:
    """A LaTeX fragment of all leaderboards (``\\input`` it; needs booktabs)."""
    head = [f"% generated by irnbench {__version__} from {runs} run(s)",
            r"% requires \usepackage{booktabs}"]
    head += [f"% note: {' '.join(str(n).split())}" for n in notes]
    return "\n".join(head) + "\n\n" + "\n".join(latex_table(t) for t in tables)


