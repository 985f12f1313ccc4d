"""HTML reports: one self-contained page per run (or per merge of several runs), and the same
leaderboards as Markdown, LaTeX or CSV.

``render_report(run_dirs, out_path)`` reads each run folder (``results.json`` + ``meta.json`` +
``visuals/``), merges them and writes one HTML file with inline CSS, JS and images (base64 data
URIs) and no external URL, so that it can be mailed, archived or opened offline.
``export_report(run_dirs, fmt)`` writes the leaderboards as Markdown, LaTeX or CSV.

Which tables exist, the metric each is ranked by (its task's ``rank_metric``), the ranking and
the paired Δ come from :mod:`irnbench.leaderboard`, so the page and the exports agree. Modules:

* ``runs`` — load and merge run folders;
* ``tables`` — the page's leaderboards as plain dicts; ``per_image``, ``quality`` (codec-quality
  matrices, RD curves, BD-rates), ``pivot``, ``visuals``, ``charts`` — the other sections;
* ``context`` — :func:`build_context` (pure: data frames and metadata in, plain dicts out);
* ``render`` — :func:`render_context` with the jinja2 templates in ``templates/``
  (autoescaped: every text that comes from the inputs is escaped);
* ``text`` — Markdown and LaTeX; ``export`` — :func:`export_report` and the CSV;
* ``formatting`` — how cells write numbers.
"""

from __future__ import annotations

from irnbench.report.context import build_context
from irnbench.report.export import export_report
from irnbench.report.formatting import best_flags, format_params
from irnbench.report.per_image import per_image_tables
from irnbench.report.render import render_context, render_report
from irnbench.report.runs import RunData, load_runs, merge_runs
from irnbench.report.tables import leaderboard_tables
from irnbench.report.text import latex_escape

__all__ = [
    "RunData",
    "best_flags",
    "build_context",
    "export_report",
    "format_params",
    "latex_escape",
    "leaderboard_tables",
    "load_runs",
    "merge_runs",
    "per_image_tables",
    "render_context",
    "render_report",
]
