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

import importlib
from typing import Any

__all__ = ["RunRefused", "add_runs", "build_site", "read_site", "verify_run"]

#: Imported on first use, so that ``irnbench --help`` does not load pandas, pyarrow or jinja2
#: for the ``leaderboard`` commands.
_WHERE = {"add_runs": "build", "build_site": "build", "read_site": "build",
          "RunRefused": "runs", "verify_run": "runs"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"irnbench.site.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'irnbench.site' has no attribute {name!r}")
