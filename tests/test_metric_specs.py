"""Metric columns have one definition (``irnbench.results.METRICS``) that every table reads."""

from __future__ import annotations

from irnbench import leaderboard, results
from irnbench.report import per_image, quality, tables


def test_metric_columns_and_directions_come_from_one_list():
    assert tables.METRICS is per_image.METRICS is leaderboard.METRICS is results.METRICS
    assert results.METRIC_COLUMNS == [m.key for m in results.METRICS]
    assert results.METRIC_BETTER == {m.key: m.better for m in results.METRICS}
    assert quality._DIGITS == {m.key: m.digits for m in results.METRICS}
    assert len(set(results.METRIC_COLUMNS)) == len(results.METRIC_COLUMNS)
