"""Is a lead more than noise? Paired bootstrap differences between methods on one image set.

Kept for callers of ``irnbench.compare``: :func:`compare`, :func:`lead_metric` and
``TABLE_KEYS`` live in :mod:`irnbench.leaderboard`, which ranks every table by its task's
``rank_metric`` and takes the Δ reference from that ranking.
"""

from __future__ import annotations

from irnbench.leaderboard import TABLE_KEYS, compare, lead_metric

__all__ = ["TABLE_KEYS", "lead_metric", "compare"]
