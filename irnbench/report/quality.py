"""Results over JPEG qualities: method × quality matrices, RD curves (matplotlib) and BD-rates.

For every task × setting × dataset measured at two or more JPEG qualities (the ``compress`` task,
or ``rescale --jpeg …``, SAIN's robustness protocol) the report shows one matrix — a row per
method, a column per quality — with the paper-reported rows of the same dataset under their own
protocol note. When the rows carry bpp, the block also has the RD curves (bpp vs Y-PSNR and vs
RGB-PSNR, one line per method, codec lines dashed) as an inline PNG, and when a codec's own curve
(plain JPEG) was measured, each method's BD-rate against it (``irnbench.rd.bd_rate``), or "n/a"
with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from irnbench.rd import BDRateUndefined, bd_rate
from irnbench.report.charts import png_data_uri
from irnbench.results import METRICS

__all__ = ["codec_methods", "rd_curves", "rd_figure", "quality_matrix_tables"]

#: The metric pair each matrix cell shows: (main, secondary) per kind of table.
_CELL = {"rd": ("psnr_y", "bpp"), "plain": ("psnr_y", "ssim_y")}
_DIGITS = {m.key: m.digits for m in METRICS}
#: Paper rows whose channel is unconfirmed carry ``psnr``/``ssim`` instead of the Y columns.
_FALLBACK = {"psnr_y": "psnr", "ssim_y": "ssim"}


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _q(v: Any) -> int | None:
    f = _num(v)
    return None if f is None or math.isinf(f) else int(round(f))


def _fmt(v: float | None, key: str) -> str:
    if v is None:
        return ""
    if math.isinf(v):
        return "∞"
    return f"{v:.{_DIGITS.get(key, 2)}f}"


def codec_methods(metas: Sequence[dict[str, Any]]) -> set[str]:
    """Methods the runs mark as a codec's own curve (``codec`` in ``methods_info``)."""
    out = set()
    for meta in metas:
        for name, info in (meta.get("methods_info") or {}).items():
            if isinstance(info, dict) and info.get("codec"):
                out.add(str(name))
    return out


def rd_curves(summary: pd.DataFrame) -> dict[tuple, dict[str, list[dict[str, float]]]]:
    """(task, setting, dataset) → method → points sorted by quality, from a set-level summary
    (``results.summarize``): each point has quality, bpp, psnr_y, psnr_rgb, ssim_y, ssim_rgb."""
    out: dict[tuple, dict[str, list[dict[str, float]]]] = {}
    if not len(summary):
        return out
    ok = summary[summary["status"].fillna("ok") == "ok"]
    for rec in ok.to_dict(orient="records"):
        q = _q(rec.get("quality"))
        if q is None:
            continue
        key = (str(rec["task"]), str(rec["setting"]), str(rec["dataset"]))
        point = {"quality": q, **{k: _num(rec.get(k)) for k in
                                  ("bpp", "psnr_y", "psnr_rgb", "ssim_y", "ssim_rgb")}}
        out.setdefault(key, {}).setdefault(str(rec["method"]), []).append(point)
    for methods in out.values():
        for pts in methods.values():
            pts.sort(key=lambda p: p["quality"])
    return out


def rd_figure(curves: dict[str, list[dict[str, float]]], codecs: set[str], title: str) -> str:
    """The RD plot (bpp vs Y-PSNR and vs RGB-PSNR) as a PNG data URI (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    try:
        for ax, key, label in ((axes[0], "psnr_y", "PSNR-Y (dB)"),
                               (axes[1], "psnr_rgb", "PSNR-RGB (dB)")):
            for i, (name, pts) in enumerate(curves.items()):
                xy = [(p["bpp"], p[key]) for p in pts
                      if p["bpp"] is not None and p[key] is not None and math.isfinite(p[key])]
                if not xy:
                    continue
                x, y = zip(*xy, strict=True)
                ax.plot(x, y, linestyle="--" if name in codecs else "-", marker="o",
                        markersize=3.5, linewidth=1.4, color=f"C{i % 10}", label=name)
            ax.set_xlabel("bits per HR pixel (JPEG file, headers included)")
            ax.set_ylabel(label)
            ax.grid(True, alpha=0.3)
        axes[0].legend(fontsize=8, loc="lower right")
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
    except Exception:
        plt.close(fig)
        raise
    return png_data_uri(fig)


def _bd_cell(anchor: list[dict], test: list[dict], key: str) -> dict[str, Any]:
    """BD-rate cell of one method on one metric: value text, or "n/a" with the reason."""
    def pts(curve):
        return ([p["bpp"] for p in curve if p["bpp"] is not None and p[key] is not None],
                [p[key] for p in curve if p["bpp"] is not None and p[key] is not None])

    try:
        v = bd_rate(*pts(anchor), *pts(test))
    except BDRateUndefined as exc:
        return {"text": "n/a", "sort": "", "cls": "num na", "reason": str(exc), "value": None}
    return {"text": f"{v:+.1f} %".replace("-", "−"), "sort": repr(v), "cls": "num",
            "reason": "", "value": v}


def quality_matrix_tables(
    df: pd.DataFrame,
    summary: pd.DataFrame,
    metas: Sequence[dict[str, Any]] = (),
    plots: bool = True,
) -> list[dict[str, Any]]:
    """Method × quality matrices (with RD plot and BD-rates where they apply), see module doc.

    ``df`` is the merged frame (paper-reported rows are read from it), ``summary`` the set-level
    table of its measured rows.
    """
    curves = rd_curves(summary)
    codecs = codec_methods(metas) or {"jpeg"}
    paper = df[df["source"] != "measured"] if len(df) else df
    labels: dict[str, str] = {}
    weights: dict[str, str] = {}
    if len(summary):
        for rec in summary.to_dict(orient="records"):
            labels.setdefault(str(rec["method"]), str(rec.get("label") or rec["method"]))
            w = rec.get("weights")
            weights.setdefault(str(rec["method"]), w if isinstance(w, str) else "")
    tables = []
    for (task, setting, ds), methods in curves.items():
        qualities = sorted({p["quality"] for pts in methods.values() for p in pts})
        if len(qualities) < 2:
            continue
        has_bpp = any(p["bpp"] is not None for pts in methods.values() for p in pts)
        anchor = next((m for m in methods if m in codecs), None)
        kind = "rd" if anchor is not None else "plain"
        main, second = _CELL[kind]
        # Columns: the qualities the non-codec methods share with others (a codec's extra sweep
        # points are in the plot); all of them when only codecs were measured.
        others = [m for m in methods if m not in codecs]
        cols = sorted({p["quality"] for m in others for p in methods[m]}) if others else qualities
        # best per column among measured rows
        best = {}
        for q in cols:
            vals = [p[main] for pts in methods.values() for p in pts
                    if p["quality"] == q and p[main] is not None]
            best[q] = max(vals) if len(vals) > 1 else None
        footnotes: list[str] = []
        rows = []
        for m, pts in methods.items():
            by_q = {p["quality"]: p for p in pts}
            cells = []
            for q in cols:
                p = by_q.get(q)
                v = None if p is None else p[main]
                cells.append({"text": _fmt(v, main),
                              "sub": "" if p is None else _fmt(p[second], second),
                              "bold": v is not None and best[q] is not None and v == best[q],
                              "cls": "num"})
            row = {"kind": "measured", "method": m, "label": labels.get(m, m),
                   "weights": weights.get(m, ""), "codec": m in codecs, "cells": cells,
                   "bd": []}
            if kind == "rd":
                if m == anchor:
                    row["bd"] = [{"text": "anchor", "cls": "num", "reason": ""}] * 2
                else:
                    row["bd"] = [_bd_cell(methods[anchor], pts, k)
                                 for k in ("psnr_y", "psnr_rgb")]
                    for c in row["bd"]:
                        if c["reason"]:
                            note = f"{labels.get(m, m)}: BD-rate n/a — {c['reason']}"
                            if note not in footnotes:
                                footnotes.append(note)
                            c["fn"] = footnotes.index(note) + 1
            rows.append(row)
        # strongest first: BD-rate (lower better) where defined, else mean of the main metric
        def strength(r, _cols=cols):
            bd = r["bd"][0].get("value") if r["bd"] else None
            vals = [_num(c["text"]) for c in r["cells"] if c["text"]]
            mean = sum(vals) / len(vals) if vals else -math.inf
            return (r["codec"], bd is None, bd if bd is not None else -mean)

        rows.sort(key=strength)
        # paper-reported rows of the same task, setting and dataset
        if len(paper):
            sel = paper[(paper["task"].astype(str) == task)
                        & (paper["setting"].astype(str) == setting)
                        & (paper["dataset"].astype(str).str.lower() == ds.lower())]
            groups: dict[tuple, dict[int, dict]] = {}
            for rec in sel.to_dict(orient="records"):
                q = _q(rec.get("quality"))
                if q is None:
                    continue
                groups.setdefault((str(rec.get("method")), str(rec.get("label")),
                                   str(rec.get("reference") or ""), str(rec.get("notes") or "")),
                                  {})[q] = rec
            for (m, label, ref, note), by_q in groups.items():
                fn = None
                if note:
                    if note not in footnotes:
                        footnotes.append(note)
                    fn = footnotes.index(note) + 1
                cells, dagger = [], False
                for q in cols:
                    rec = by_q.get(q, {})
                    v, k = _num(rec.get(main)), main
                    if v is None and main in _FALLBACK:
                        k = _FALLBACK[main]
                        v = _num(rec.get(k))
                        dagger = dagger or v is not None
                    s_key = second if _num(rec.get(second)) is not None else _FALLBACK.get(second,
                                                                                          second)
                    cells.append({"text": _fmt(v, k) + ("†" if v is not None and k != main
                                                        else ""),
                                  "sub": _fmt(_num(rec.get(s_key)), s_key), "cls": "num",
                                  "bold": False})
                rows.append({"kind": "paper", "method": m, "label": label, "weights":
                             "as published", "ref": ref, "fn": fn, "codec": False,
                             "cells": cells, "dagger": dagger,
                             "bd": [{"text": "", "cls": "num", "reason": ""}] * 2
                             if kind == "rd" else []})
        figure = None
        if plots and has_bpp:
            figure = rd_figure(methods, codecs, f"{task} {setting} · {ds}")
        main_label = {"psnr_y": "PSNR-Y"}[main]
        second_label = {"bpp": "bpp", "ssim_y": "SSIM-Y"}[second]
        tables.append({
            "task": task, "setting": setting, "dataset": ds,
            "title": f"{task} · {setting} · {ds}: method × JPEG quality",
            "kind": kind,
            "qualities": cols,
            "cell_label": f"{main_label} (dB), {second_label} below",
            "anchor": labels.get(anchor, anchor) if anchor else None,
            "rows": rows,
            "footnotes": footnotes,
            "dagger": any(r.get("dagger") for r in rows),
            "figure": figure,
            "extra_points": sorted(set(qualities) - set(cols)),
            "id": f"q-{len(tables)}",
        })
    return tables
