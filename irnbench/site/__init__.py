"""A static, verifiable, self-hostable leaderboard site built from run folders
(``irnbench leaderboard build|add|verify``).

Papers with Code hosted this field's leaderboards until it shut down in July 2025; this package
lets a maintainer publish them again as plain files. Modules:

* ``runs`` — read and check a run folder (protocol version, set means), give each row its
  provenance (weights sha256, dataset fingerprint, protocol version, run id);
* ``merge`` — entries keyed by method, tag, weights sha256, dataset and fingerprint, setting,
  channel condition and protocol version; agreeing runs deduplicated, disagreeing ones shown as
  conflicts; each board ranked by :mod:`irnbench.leaderboard`;
* ``data`` — boards, methods and the index as JSON-ready dicts (``data/``); ``cards`` — what a
  method page says of a method and its weights;
* ``pages`` and ``render`` — the HTML pages (jinja2, autoescaped, inline assets, a CSP that
  forbids every request);
* ``build`` — :func:`build_site` and :func:`add_runs`; ``cli`` — the ``leaderboard`` commands.
"""

from __future__ import annotations

from irnbench.site.build import add_runs, build_site, read_site
from irnbench.site.runs import RunRefused, verify_run

__all__ = ["RunRefused", "add_runs", "build_site", "read_site", "verify_run"]
