"""The report's per-image tables: each measured method on each image (draws averaged).

An image's metric is "n/a" (one note under the table) where a draw of it is NaN or −inf, or
where it is missing while the method has it on other images (``results.json`` writes NaN as
``null``).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from irnbench.leaderboard import (
    NOT_FINITE,
    as_codec,
    as_float,
    as_quality,
    as_text,
    natural_key,
    normalise,
    table_key,
    table_order,
)
from irnbench.report.formatting import (
    NA_TEXT,
    format_number,
    format_seconds,
    metric_title,
    quality_label,
    sort_key,
)
from irnbench.results import METRICS

__all__ = ["per_image_tables"]

#: The note under a per-image table with an n/a cell.
NA_NOTE = ("n/a: not a finite number (NaN or −∞ in a draw, or missing where the method has the "
           "metric on other images).")

_KEYS = ["task", "setting", "codec", "quality", "dataset", "image", "method", "label",
         "weights"]


def _mean(values: Any) -> float | None:
    vals = [v for v in (as_float(x) for x in values) if v is not None]
    return sum(vals) / len(vals) if vals else None


def _na(g: pd.DataFrame, metric: str) -> bool:
    """Whether one image's draws of ``metric`` hold a NaN token, −inf, or a gap beside values."""
    vals = [as_float(x) for x in g[metric]]
    flagged = ",".join(as_text(x) for x in g.get(NOT_FINITE, [])).split(",")
    return metric in flagged or -math.inf in vals or (
        any(v is not None for v in vals) and any(v is None for v in vals))


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """One record per (table, image, method): metrics and seconds averaged over draws."""
    recs = []
    for key, g in df.groupby(_KEYS, dropna=False, sort=False):
        rec = dict(zip(_KEYS, key, strict=True))
        rec["quality"] = as_quality(rec["quality"])
        rec["codec"] = as_codec(rec["codec"], rec["quality"])
        rec["na"] = {m.key for m in METRICS if _na(g, m.key)}
        for m in METRICS:
            rec[m.key] = None if m.key in rec["na"] else _mean(g[m.key])
        rec["seconds"] = _mean(g["seconds"])
        rec["draws"] = int(g["draw"].nunique(dropna=False))
        h, w = as_float(g["height"].iloc[0]), as_float(g["width"].iloc[0])
        rec["size"] = f"{int(w)}×{int(h)}" if h is not None and w is not None else ""
        notes = [n for n in (as_text(x) for x in g["notes"]) if n]
        rec["notes"] = notes[0] if notes else ""
        recs.append(rec)
    return recs


def _table(key: tuple, rows: list[dict[str, Any]]) -> dict[str, Any]:
    rows.sort(key=lambda r: (natural_key(r["image"]), as_text(r["label"])))
    shown = [m for m in METRICS if any(r[m.key] is not None or m.key in r["na"] for r in rows)]
    has = {m.key: {as_text(r["label"]) for r in rows if r[m.key] is not None} for m in shown}
    for r in rows:  # a gap where the method has the metric on other images is n/a too
        r["na"] |= {k for k, who in has.items() if r[k] is None and as_text(r["label"]) in who}
    columns = [{"label": "Image", "type": "text"}, {"label": "Method", "type": "text"},
               {"label": "Size (W×H)", "type": "text"}]
    columns += [{"label": m.label, "type": "num", "title": metric_title(m, key[2])}
                for m in shown]
    columns += [{"label": "Draws", "type": "num"}, {"label": "s/image", "type": "num"},
                {"label": "Note", "type": "text"}]
    out_rows = []
    for r in rows:
        cells = [{"text": as_text(r["image"])}, {"text": as_text(r["label"])},
                 {"text": r["size"]}]
        cells += [{"text": NA_TEXT, "sort": "", "cls": "num na"} if m.key in r["na"] else
                  {"text": format_number(r[m.key], m.digits), "sort": sort_key(r[m.key]),
                   "cls": "num"} for m in shown]
        cells += [{"text": str(r["draws"]), "sort": str(r["draws"]), "cls": "num"},
                  {"text": format_seconds(r["seconds"]), "sort": sort_key(r["seconds"]),
                   "cls": "num"},
                  {"text": r["notes"], "cls": "note"}]
        out_rows.append({"cells": cells, "image": as_text(r["image"]),
                         "method": as_text(r["method"])})
    task, setting, codec, q, ds = key
    na = any(m.key in r["na"] for r in rows for m in shown)
    return {"title": " · ".join(p for p in (task, setting, quality_label(q, codec), ds) if p),
            "columns": columns, "rows": out_rows, "na_note": NA_NOTE if na else ""}


def per_image_tables(measured: pd.DataFrame) -> list[dict[str, Any]]:
    """Measured rows per method and image (metrics averaged over draws), one table per
    task × setting × codec × quality × dataset."""
    df = normalise(measured)
    df = df[(df["source"] == "measured") & (df["status"].fillna("ok") == "ok")]
    if not len(df):
        return []
    recs = _records(df)
    task_order = list(dict.fromkeys(as_text(r["task"]) for r in recs))
    ds_order = list(dict.fromkeys(as_text(r["dataset"]).lower() for r in recs))
    return [_table(key, [r for r in recs if table_key(r) == key])
            for key in table_order([table_key(r) for r in recs], task_order, ds_order)]
