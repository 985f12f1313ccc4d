"""HTML reports: one self-contained page per run (or per merge of several runs).

``render_report(run_dirs, out_path)`` reads each run folder (``results.json`` + ``meta.json`` +
``visuals/``), merges them and writes one HTML file with inline CSS, JS and images (base64 data
URIs) and no external URL, so that it can be mailed, archived or opened offline.

The page is built in two steps, so that the numbers can be tested without HTML:

* :func:`build_context` (pure: data frames and metadata in, plain dicts out) gathers the header,
  environment, leaderboards (:func:`leaderboard_tables`), per-image tables, visual comparisons and
  data notes;
* :func:`render_context` renders that context with the jinja2 templates in ``templates/``
  (autoescaped: every text that comes from the inputs — file names, method names, errors,
  notes, commands — is escaped).

``export_report(run_dirs, fmt)`` writes the same leaderboards as Markdown, LaTeX or CSV
(``irnbench.report.export``), with bootstrap intervals and paired differences.

Imports run one way: ``report`` reads ``results`` and nothing above it.
"""

from __future__ import annotations

from irnbench.report.context import (
    RunData,
    best_flags,
    build_context,
    format_params,
    leaderboard_tables,
    load_runs,
    merge_runs,
    per_image_tables,
)
from irnbench.report.export import export_report, latex_escape
from irnbench.report.render import render_context, render_report

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
