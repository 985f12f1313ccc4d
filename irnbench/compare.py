"""Is a lead more than noise? Paired bootstrap differences between methods on one image set.

For every leaderboard (task, setting, JPEG quality, dataset) each method is compared with a
reference — ``baseline`` when given, else the best method by the lead metric — by the 95 %
paired bootstrap interval of the mean per-image difference (``irnbench.stats``); it is
*distinguishable* when that interval excludes 0. Images of a stochastic method are averaged
over their z draws first, so images are resampled, not draws.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from irnbench.results import BOOTSTRAP, METRIC_BETTER, per_image
from irnbench.stats import align, paired_difference

__all__ = ["TABLE_KEYS", "lead_metric", "compare"]

#: What makes one leaderboard.
TABLE_KEYS = ["task", "setting", "quality", "dataset"]
#: The metric that ranks a table: the first of these with values.
LEAD_ORDER = ("psnr_y", "psnr_rgb", "grey_psnr", "lpips", "dists", "ssim_y", "ssim_rgb")


def lead_metric(rows: pd.DataFrame) -> str | None:
    """The metric a table is ranked by: the first of ``LEAD_ORDER`` with a value."""
    for m in LEAD_ORDER:
        if m in rows.columns and pd.to_numeric(rows[m], errors="coerce").notna().any():
            return m
    return None


def _name(rows: pd.DataFrame) -> pd.Series:
    """A row's method as tables name it: the resolved ``NAME.TAG`` label, else the method."""
    label = rows["label"].where(rows["label"].notna() & (rows["label"] != ""), rows["method"])
    return label.astype(str)


def _reference(per_method: dict[str, tuple[list[str], np.ndarray]], metric: str,
               baseline: str | None) -> str | None:
    if baseline is not None:
        return baseline if baseline in per_method else None
    sign = -1.0 if METRIC_BETTER.get(metric) == "lower" else 1.0
    means = {n: float(np.nanmean(v)) for n, (_, v) in per_method.items()
             if np.isfinite(np.nanmean(v))}
    return max(means, key=lambda n: sign * means[n]) if means else None


def compare(df: pd.DataFrame, baseline: str | None = None,
            metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per (table, method, metric): ``reference``, ``diff`` (method − reference),
    ``diff_lo`` / ``diff_hi`` and ``distinguishable``; ``baseline`` names a method as tables
    do (``irn.cpu``, ``bicubic``) or as the run named it (``irn``)."""
    ok = df[(df["source"] == "measured") & (df["status"].fillna("ok") == "ok")].copy()
    if not len(ok):
        return pd.DataFrame()
    ok["_name"] = _name(ok)
    out = []
    for key, g in ok.groupby(TABLE_KEYS, dropna=False, sort=False):
        base = _resolve(baseline, g)
        for metric in metrics or ([lead_metric(g)] if lead_metric(g) else []):
            per_method = {n: per_image(rows, metric) for n, rows in g.groupby("_name", sort=False)}
            ref = _reference(per_method, metric, base)
            if ref is None:
                continue
            for name, (images, values) in per_method.items():
                a, b = align(images, values, *per_method[ref])
                ci = paired_difference(a, b, **BOOTSTRAP)
                out.append({**dict(zip(TABLE_KEYS, key, strict=True)), "label": name,
                            "reference": ref, "metric": metric, "diff": ci.mean,
                            "diff_lo": ci.lo, "diff_hi": ci.hi, "images": ci.n,
                            "distinguishable": bool(name != ref and ci.excludes_zero)})
    return pd.DataFrame(out)


def _resolve(baseline: str | None, rows: pd.DataFrame) -> str | None:
    """``baseline`` as a table names it (a run's ``irn`` is the table's ``irn.cpu``)."""
    if baseline is None:
        return None
    names = rows[["method", "_name"]].drop_duplicates()
    for col in ("_name", "method"):
        hit = names[names[col] == baseline]
        if len(hit):
            return str(hit["_name"].iloc[0])
    return None
