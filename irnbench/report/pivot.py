"""Methods × datasets pivots: measured beside paper-reported on the same dataset, and a compact
matrix of the published numbers on datasets a run did not measure.

A measured row is paired with the paper-reported rows of its own method class (``method`` of a
paper row is the class name, e.g. ``irn``; a measured ``irn.official`` row belongs to it). A
not-finite set mean (``irnbench.leaderboard.not_finite``) is "n/a", with a note under the pivot.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from irnbench.leaderboard import as_codec, codec_label, not_finite
from irnbench.report.formatting import NA_NOTE, NA_TEXT
from irnbench.weights import parse_spec

__all__ = ["measured_pivots", "published_pivots"]

#: The metrics pivoted, per task: one pivot each (when the run has values for it).
PIVOT_METRICS = {"rescale": ("psnr_y", "ssim_y"), "compress": ("psnr_y", "bpp"),
                 "decolorize": ("psnr_rgb", "ssim_rgb")}
_DIGITS = {"ssim_y": 4, "ssim_rgb": 4, "bpp": 3}


def _fmt(v: Any, metric: str, signed: bool = False) -> str:
    x = pd.to_numeric(pd.Series([v]), errors="coerce").iloc[0]
    if pd.isna(x):
        return "—"
    if math.isinf(x):
        return "∞" if x > 0 and not signed else NA_TEXT
    return f"{x:+.{_DIGITS.get(metric, 2)}f}" if signed else f"{x:.{_DIGITS.get(metric, 2)}f}"


def _channel(df: pd.DataFrame) -> pd.Series:
    """Each row's channel as one hashable value: (codec, quality), ``("", None)`` when plain."""
    codecs = df["codec"] if "codec" in df.columns else [None] * len(df)
    return pd.Series([(as_codec(c, q), None if pd.isna(q) else int(q))
                      for c, q in zip(codecs, df["quality"], strict=True)],
                     index=df.index, dtype=object)


def _setting_keys(df: pd.DataFrame) -> list[tuple[str, str, tuple[str, int | None]]]:
    """(task, setting, channel) in first-seen order."""
    keys = zip(df["task"], df["setting"], _channel(df), strict=True)
    return list(dict.fromkeys(keys))


def _title(task: str, setting: str, channel: tuple[str, int | None]) -> str:
    codec, quality = channel
    return f"{task} {setting}" + ("" if quality is None
                                  else f" · {codec_label(codec)} q{quality}")


def measured_pivots(summary: pd.DataFrame, papers: pd.DataFrame) -> list[dict[str, Any]]:
    """Per setting and pivot metric: rows = measured methods (NAME.TAG), columns = measured
    datasets, each with the paper-reported value of the method's own paper and the
    difference measured − paper where the paper reports that dataset."""
    ok = summary[summary["status"].fillna("ok") == "ok"] if len(summary) else summary
    out = []
    for task, setting, channel in _setting_keys(ok) if len(ok) else []:
        rows = ok[(ok["task"] == task) & (ok["setting"] == setting)
                  & _channel(ok).map(lambda c, cc=channel: c == cc)]
        datasets = list(dict.fromkeys(rows["dataset"].astype(str)))
        for metric in PIVOT_METRICS.get(task, ()):
            if metric not in rows.columns or not rows[metric].notna().any():
                continue
            out.append(_measured_pivot(task, setting, channel, metric, rows, datasets, papers))
    return out


def _paper_value(papers: pd.DataFrame, method: str, task: str, setting: str,
                 channel: tuple[str, int | None], dataset: str, metric: str) -> tuple[Any, str]:
    if not len(papers) or metric not in papers.columns:
        return None, ""
    base = parse_spec(method)[0]
    hit = papers[(papers["method"] == base) & (papers["task"] == task)
                 & (papers["setting"] == setting)
                 & _channel(papers).map(lambda c: c == channel)
                 & (papers["dataset"].astype(str).str.lower() == dataset.lower())
                 & papers[metric].notna()]
    if not len(hit):
        return None, ""
    return hit[metric].iloc[0], str(hit["reference"].iloc[0])


def _measured_pivot(task, setting, channel, metric, rows, datasets, papers) -> dict[str, Any]:
    body, sources, na = [], [], False
    for label, g in rows.groupby("label", sort=False):
        method = str(g["method"].iloc[0])
        cells: list[dict[str, Any]] = [{"text": str(label), "cls": "name"}]
        for ds in datasets:
            mine = g[g["dataset"].astype(str) == ds]
            value = mine[metric].iloc[0] if len(mine) else None
            paper, src = _paper_value(papers, method, task, setting, channel, ds, metric)
            if src and src not in sources:
                sources.append(src)
            bad = bool(len(mine)) and not_finite(mine.iloc[0].to_dict(), metric)
            na = na or bad
            diff = None if paper is None or value is None or bad else float(value) - float(paper)
            cells += [{"text": NA_TEXT if bad else _fmt(value, metric), "cls": "num"},
                      {"text": _fmt(paper, metric), "cls": "num paper"},
                      {"text": _fmt(diff, metric, signed=True), "cls": "num diff"}]
        body.append(cells)
    return {"title": f"{_title(task, setting, channel)} · {metric}", "task": task,
            "setting": setting, "metric": metric, "datasets": datasets,
            "sub": ["measured", "paper", "Δ"], "rows": body, "sources": sources,
            "na_note": NA_NOTE if na else ""}


def published_pivots(papers: pd.DataFrame, measured: set[tuple[str, str, str]]
                     ) -> list[dict[str, Any]]:
    """Per setting: rows = paper-reported methods, columns = datasets this run did not
    measure (``measured`` holds (task, setting, dataset) keys, dataset lower-case), cells
    "PSNR / SSIM" as the sources print them."""
    if not len(papers):
        return []
    left = papers[[(str(t), str(s), str(d).lower()) not in measured
                   for t, s, d in zip(papers["task"], papers["setting"], papers["dataset"],
                                      strict=True)]]
    out = []
    for task, setting, channel in _setting_keys(left):
        rows = left[(left["task"] == task) & (left["setting"] == setting)
                    & _channel(left).map(lambda c, cc=channel: c == cc)]
        metrics = [m for m in PIVOT_METRICS.get(task, ("psnr", "ssim"))
                   if m in rows.columns and rows[m].notna().any()] or \
            [m for m in ("psnr", "ssim") if m in rows.columns and rows[m].notna().any()]
        if not metrics:
            continue
        datasets = list(dict.fromkeys(rows["dataset"].astype(str)))
        body = []
        for (label, ref), g in rows.groupby(["label", "reference"], sort=False):
            cells: list[dict[str, Any]] = [{"text": str(label), "cls": "name",
                                            "ref": str(ref)}]
            for ds in datasets:
                hit = g[g["dataset"].astype(str) == ds]
                cells.append({"text": " / ".join(_fmt(hit[m].iloc[0], m) for m in metrics)
                              if len(hit) else "—", "cls": "num"})
            body.append({"kind": "paper", "cells": cells, "method": str(g["method"].iloc[0]),
                         "values": {m: g[m].iloc[0] for m in metrics},
                         "notes": str(g["notes"].iloc[0] or "")})
        out.append({"title": _title(task, setting, channel), "task": task, "setting": setting,
                    "codec": channel[0], "quality": channel[1],
                    "metrics": metrics, "datasets": datasets, "rows": body})
    return out
