"""One flat results schema for every method, measured or paper-reported (CompressAI-style).

Per-image rows (``source="measured"``) are the primary record; set-level tables are derived
from them. Paper-reported numbers use the same columns with ``source="paper-reported"`` and
never enter the measured table. A row's channel is its ``codec`` (``jpeg``, ``webp``; empty for
the plain uint8 channel) and ``quality``; rows written before the ``codec`` column existed, or
without one, read as JPEG where they have a quality (:func:`fill_codec`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from irnbench.stats import (
    CONFIDENCE,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    bootstrap_mean,
    per_image_means,
)

__all__ = [
    "ID_COLUMNS",
    "METRICS",
    "METRIC_COLUMNS",
    "MetricSpec",
    "fill_codec",
    "summarize",
    "paper_frame",
    "save_run",
    "set_means",
    "load_run",
]

#: Columns that identify a row.
ID_COLUMNS = [
    "source", "method", "label", "weights", "tag", "task", "setting", "codec", "quality",
    "dataset", "image", "draw",
]


@dataclass(frozen=True)
class MetricSpec:
    """One metric column: key, table label, decimals (mean, std), which way is better, title."""

    key: str
    label: str
    digits: int
    std_digits: int
    better: str | None  #: "higher", "lower" or None (not ranked, e.g. bpp)
    title: str


#: Every metric column a task may fill (others stay empty), in table order: the one list
#: that the schema, the rankings and the report read.
METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("psnr_y", "PSNR-Y", 2, 3, "higher", "PSNR (dB) on Y of BT.601, mean over images"),
    MetricSpec("ssim_y", "SSIM-Y", 4, 4, "higher", "SSIM on Y of BT.601, mean over images"),
    MetricSpec("psnr_rgb", "PSNR-RGB", 2, 3, "higher", "PSNR (dB) on RGB, mean over images"),
    MetricSpec("ssim_rgb", "SSIM-RGB", 4, 4, "higher", "SSIM on RGB, mean over images"),
    MetricSpec("lr_psnr_y", "LR PSNR-Y", 2, 3, "higher",
               "LR fidelity: Y-PSNR of the method's uint8 LR vs the uint8 bicubic LR, no crop"),
    MetricSpec("lr_psnr_rgb", "LR PSNR-RGB", 2, 3, "higher",
               "LR fidelity on RGB (sees colour shifts that Y hides): PSNR of the method's "
               "uint8 LR vs the uint8 bicubic LR, no crop"),
    MetricSpec("grey_psnr", "Grey PSNR", 2, 3, "higher",
               "grey fidelity: PSNR of the method's grey image vs the luma guide"),
    MetricSpec("bpp", "bpp", 3, 4, None, "bits per HR pixel of the JPEG file, headers included"),
    MetricSpec("psnr", "PSNR†", 2, 3, "higher",
               "PSNR on a channel the source does not confirm (see the row's protocol note)"),
    MetricSpec("ssim", "SSIM†", 4, 5, "higher",
               "SSIM on a channel the source does not confirm (see the row's protocol note)"),
    MetricSpec("lpips", "LPIPS", 4, 4, "lower", "LPIPS (pyiqa), RGB, uint8-rounded, no crop"),
    MetricSpec("dists", "DISTS", 4, 4, "lower", "DISTS (pyiqa), RGB, uint8-rounded, no crop"),
)
#: The metric columns' keys, in ``METRICS`` order.
METRIC_COLUMNS = [m.key for m in METRICS]
#: Which way each metric is better ("higher", "lower"; None: not ranked, e.g. bpp).
METRIC_BETTER: dict[str, str | None] = {m.key: m.better for m in METRICS}
#: Optional perceptual metrics computed through pyiqa (``--iqa``); lower is better for both.
IQA_METRICS = ("lpips", "dists")
OTHER_COLUMNS = ["seconds", "params", "height", "width", "status", "error", "notes", "reference"]
COLUMNS = ID_COLUMNS + METRIC_COLUMNS + OTHER_COLUMNS
#: The bootstrap every set-level interval uses (stated in every report and export).
BOOTSTRAP = {"resamples": DEFAULT_RESAMPLES, "seed": DEFAULT_SEED, "confidence": CONFIDENCE}
#: The keys of one leaderboard row.
GROUP_KEYS = ["source", "method", "label", "weights", "tag", "task", "setting", "codec",
              "quality", "dataset"]
#: What a row with a quality but no codec was coded with (every such row predates WebP).
LEGACY_CODEC = "jpeg"


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA or v == ""


def fill_codec(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with its ``codec`` column completed in place: lower-case text where the row has a
    quality (``LEGACY_CODEC`` when none was recorded), ``None`` where it has none."""
    codecs = df["codec"] if "codec" in df.columns else [None] * len(df)
    qualities = df["quality"] if "quality" in df.columns else [None] * len(df)
    df["codec"] = pd.Series(
        [None if _missing(q) else (LEGACY_CODEC if _missing(c) else str(c).lower())
         for c, q in zip(codecs, qualities, strict=True)],
        index=df.index, dtype=object)
    return df


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows → DataFrame with every schema column, in schema order (``codec`` completed)."""
    df = pd.DataFrame(rows)
    for c in COLUMNS:
        if c not in df.columns:
            df[c] = None
    return fill_codec(df[COLUMNS + [c for c in df.columns if c not in COLUMNS]].copy())


def _mean(s: pd.Series) -> float:
    v = pd.to_numeric(s, errors="coerce").dropna()
    return float(v.mean()) if len(v) else math.nan


def summarize(df: pd.DataFrame, intervals: bool = True) -> pd.DataFrame:
    """Set-level table: mean over images; stochastic methods: mean over draws of the set mean,
    with ``<metric>_std`` the standard deviation of the set mean over draws (ddof 1).

    With ``intervals``, ``<metric>_lo`` / ``<metric>_hi`` bound the 95 % percentile bootstrap
    interval of the set mean over images (``BOOTSTRAP``: 10,000 resamples, seed 0); a
    stochastic method's images are averaged over their draws first, so images are resampled,
    not draws (the spread over draws stays in ``_std``).
    """
    if "codec" not in df.columns:  # a frame built without ``frame``
        df = fill_codec(df.copy())
    ok = df[(df["source"] == "measured") & (df["status"].fillna("ok") == "ok")]
    out = []
    keys = GROUP_KEYS
    for key, g in ok.groupby(keys, dropna=False, sort=False):
        row = dict(zip(keys, key, strict=True))
        draws = g.groupby("draw", dropna=False)
        row["images"] = int(g["image"].nunique())
        row["draws"] = int(draws.ngroups)
        for m in METRIC_COLUMNS:
            if g[m].isna().all():  # a metric the task does not fill: nothing to average
                continue
            per_draw = draws[m].apply(_mean)
            per_draw = per_draw.dropna()
            if not len(per_draw):
                continue
            row[m] = float(per_draw.mean())
            if len(per_draw) > 1:
                # Identical draws (e.g. a z-independent LR, whose fidelity may be inf) have no
                # spread; std() would give NaN (inf - inf) with a RuntimeWarning.
                same = per_draw.nunique() == 1
                row[f"{m}_std"] = 0.0 if same else float(per_draw.std(ddof=1))
            if intervals:
                ci = bootstrap_mean(per_image(g, m)[1], **BOOTSTRAP)
                row[f"{m}_lo"], row[f"{m}_hi"] = ci.lo, ci.hi
        row["seconds"] = _mean(g["seconds"])
        row["params"] = g["params"].iloc[0]
        out.append(row)
    failed = df[(df["source"] == "measured") & (df["status"] == "failed")]
    for key, g in failed.groupby(keys, dropna=False, sort=False):
        row = dict(zip(keys, key, strict=True))
        row["status"] = "failed"
        row["error"] = str(g["error"].iloc[0])
        out.append(row)
    res = pd.DataFrame(out)
    if "status" not in res.columns:
        res["status"] = None
    res["status"] = res["status"].fillna("ok")
    return res


def per_image(rows: pd.DataFrame, metric: str) -> tuple[list[str], np.ndarray]:
    """One value per image: the mean of its draws (first-seen image order)."""
    values = pd.to_numeric(rows[metric], errors="coerce").to_numpy(dtype=float)
    return per_image_means(values, rows["image"].astype(str))


def paper_frame(methods: list[type], task: str | None = None) -> pd.DataFrame:
    """Paper-reported rows of the given method classes, in the flat schema."""
    rows = []
    for cls in methods:
        paper = getattr(cls, "paper", None)
        if paper is None:
            continue
        for r in paper.results:
            if task is not None and r.task != task:
                continue
            rows.append(
                {
                    "source": "paper-reported",
                    "method": cls.name,
                    "label": r.label,
                    "weights": "as published",
                    "task": r.task,
                    "setting": r.setting,
                    "codec": getattr(r, "codec", None),  # None with a quality: JPEG
                    "quality": r.quality,
                    "dataset": r.dataset,
                    "reference": r.source,
                    "notes": r.protocol,
                    **r.metrics,
                }
            )
    return frame(rows)


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


def set_means(df: pd.DataFrame) -> list[dict[str, Any]]:
    """The set means a run records beside its per-image rows (``summarize`` without
    intervals: keys, images, draws, metric means), so a reader can check they recompute."""
    if not len(df) or not (df["source"] == "measured").any():
        return []
    with np.errstate(invalid="ignore"):
        s = summarize(df, intervals=False)
    keep = [*GROUP_KEYS, "images", "draws", *METRIC_COLUMNS]
    s = s[s["status"] == "ok"]
    return [{k: _jsonable(v) for k, v in r.items() if k in keep and not pd.isna(v)}
            for r in s.to_dict(orient="records")]


def save_run(run_dir: str | Path, df: pd.DataFrame, meta: dict[str, Any]) -> None:
    """``results.csv`` (per image) + ``results.json`` (rows, their set means, run metadata
    with its ``protocol_version``) + ``meta.json``."""
    from irnbench.protocol import PROTOCOL_VERSION

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    meta = {**meta, "protocol_version": meta.get("protocol_version", PROTOCOL_VERSION)}
    df.to_csv(run_dir / "results.csv", index=False)
    records = [{k: _jsonable(v) for k, v in r.items()} for r in df.to_dict(orient="records")]
    payload = {"meta": meta, "rows": records, "means": set_means(df)}
    (run_dir / "results.json").write_text(json.dumps(payload, indent=1, default=str))
    (run_dir / "meta.json").write_text(json.dumps(meta, indent=1, default=str))


def load_run(run_dir: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read back what ``save_run`` wrote."""
    run_dir = Path(run_dir)
    path = run_dir / "results.json"
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} holds no results.json (not an irnbench run folder)")
    payload = json.loads(path.read_text())
    rows = payload["rows"]
    for r in rows:
        for k, v in r.items():
            if v in ("inf", "-inf"):
                r[k] = float(v)
    return frame(rows), payload.get("meta", {})
