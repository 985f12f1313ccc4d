"""Results over codec qualities: method × quality matrices, RD curves (matplotlib) and BD-rates.

For every task × setting × codec × dataset measured at one or more qualities (the ``compress``
task, or ``rescale --jpeg …`` / ``--webp …``, SAIN's robustness protocols) the report shows one
matrix — a row per method, a column per quality of that codec — with the paper-reported rows of
the same codec and dataset under their own protocol note. When the rows carry bpp, the block
also has the RD curves (bpp vs Y-PSNR and vs RGB-PSNR, one line per method, codec lines dashed)
as an inline PNG, and when a codec's own curve (plain JPEG) was measured, each method's BD-rate
against it (``irnbench.rd.bd_rate``), or "n/a" with the reason. Cells show the task's rank
metric; rows are ranked as the task says (``irnbench.leaderboard.summary_order``: compression
by BD-rate against plain JPEG). A not-finite set mean (``irnbench.leaderboard.not_finite``) is
"n/a" with a footnote; its method has no BD-rate on that metric and ranks below the others.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from irnbench.leaderboard import (
    BDRate,
    as_codec,
    as_float,
    as_quality,
    bd_rates,
    codec_label,
    not_finite,
    rank_metric,
    summary_order,
    summary_rank,
)
from irnbench.report.charts import png_data_uri
from irnbench.report.formatting import NA_NOTE, NA_TEXT
from irnbench.results import METRICS

__all__ = ["codec_methods", "rd_curves", "rd_figure", "quality_matrix_tables"]

#: The secondary number under each cell's rank metric, per kind of table.
_SECOND = {"rd": "bpp", "plain": "ssim_y"}
_DIGITS = {m.key: m.digits for m in METRICS}
_LABELS = {m.key: m.label for m in METRICS}
#: Paper rows whose channel is unconfirmed carry ``psnr``/``ssim`` instead of the Y columns.
_FALLBACK = {"psnr_y": "psnr", "ssim_y": "ssim"}


def _fmt(v: float | None, key: str) -> str:
    if v is None:
        return ""
    if math.isinf(v):
        return "∞" if v > 0 else NA_TEXT
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
    """(task, setting, codec, dataset) → method → points sorted by quality, from a set-level
    summary (``results.summarize``): each point has the quality, every metric of ``METRICS``
    (``None`` when missing or not finite) and ``na``, the set of its not-finite metrics."""
    out: dict[tuple, dict[str, list[dict[str, float]]]] = {}
    if not len(summary):
        return out
    ok = summary[summary["status"].fillna("ok") == "ok"]
    for rec in ok.to_dict(orient="records"):
        q = as_quality(rec.get("quality"))
        if q is None:
            continue
        key = (str(rec["task"]), str(rec["setting"]), as_codec(rec.get("codec"), q),
               str(rec["dataset"]))
        na = {k for k in _DIGITS if not_finite(rec, k)}
        point = {"quality": q, "na": na,
                 **{k: None if k in na else as_float(rec.get(k)) for k in _DIGITS}}
        out.setdefault(key, {}).setdefault(str(rec["method"]), []).append(point)
    for methods in out.values():
        for pts in methods.values():
            pts.sort(key=lambda p: p["quality"])
    return out


def rd_figure(curves: dict[str, list[dict[str, float]]], codecs: set[str], title: str,
              codec: str = "jpeg") -> str:
    """The RD plot (bpp vs Y-PSNR and vs RGB-PSNR) as a PNG data URI (matplotlib, Agg);
    ``codec`` names the coded file on the x axis."""
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
            ax.set_xlabel(f"bits per HR pixel ({codec_label(codec)} file, headers included)")
            ax.set_ylabel(label)
            ax.grid(True, alpha=0.3)
        axes[0].legend(fontsize=8, loc="lower right")
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
    except Exception:
        plt.close(fig)
        raise
    return png_data_uri(fig)


def _bd_cell(v: float | None, reason: str) -> dict[str, Any]:
    """BD-rate cell of one method on one metric: value text, or "n/a" with the reason."""
    if v is None:
        return {"text": "n/a", "sort": "", "cls": "num na", "reason": reason, "value": None}
    return {"text": f"{v:+.1f} %".replace("-", "−"), "sort": repr(v), "cls": "num",
            "reason": "", "value": v}


def _footnote(footnotes: list[str], note: str) -> int:
    """The 1-based number of ``note`` among the table's footnotes (appended when new)."""
    if note not in footnotes:
        footnotes.append(note)
    return footnotes.index(note) + 1


def _method_names(summary: pd.DataFrame) -> tuple[dict[str, str], dict[str, str]]:
    """Each measured method's display label and weights (first row of the method wins)."""
    labels: dict[str, str] = {}
    weights: dict[str, str] = {}
    if len(summary):
        for rec in summary.to_dict(orient="records"):
            labels.setdefault(str(rec["method"]), str(rec.get("label") or rec["method"]))
            w = rec.get("weights")
            weights.setdefault(str(rec["method"]), w if isinstance(w, str) else "")
    return labels, weights


@dataclass
class _Matrix:
    """One method × quality matrix being built: its key, curves and column layout."""

    task: str
    setting: str
    codec: str  #: the channel's codec ("jpeg", "webp")
    dataset: str
    methods: dict[str, list[dict[str, Any]]]  #: method → points sorted by quality
    codecs: set[str]
    labels: dict[str, str]
    weights: dict[str, str]
    qualities: list[int]  #: every quality measured
    cols: list[int] = field(default_factory=list)  #: the qualities shown as columns
    anchor: str | None = None  #: the codec curve BD-rates are measured against
    footnotes: list[str] = field(default_factory=list)
    bd: dict[str, dict[str, Any]] = field(default_factory=dict)  #: metric → method → BDRate

    @property
    def kind(self) -> str:
        return "rd" if self.anchor is not None else "plain"

    @property
    def main(self) -> str:
        """The number each cell shows: the task's rank metric."""
        return rank_metric(self.task)

    @property
    def second(self) -> str:
        return _SECOND[self.kind]


def _matrix(key: tuple, methods: dict[str, list[dict[str, Any]]], codecs: set[str],
            labels: dict[str, str], weights: dict[str, str]) -> _Matrix | None:
    """The matrix of one (task, setting, codec, dataset); ``None`` without a quality."""
    qualities = sorted({p["quality"] for pts in methods.values() for p in pts})
    if not qualities:
        return None
    mx = _Matrix(*key, methods, codecs, labels, weights, qualities)
    mx.anchor = next((m for m in methods if m in codecs), None)
    # Columns: the qualities the non-codec methods share with others (a codec's extra sweep
    # points are in the plot); all of them when only codecs were measured.
    others = [m for m in methods if m not in codecs]
    mx.cols = sorted({p["quality"] for m in others for p in methods[m]}) if others else qualities
    if mx.anchor is not None:
        mx.bd = {k: _na_bd(methods, mx.anchor, k, bd_rates(methods, mx.anchor, k))
                 for k in ("psnr_y", "psnr_rgb")}
    return mx


def _na_bd(methods: dict[str, list[dict[str, Any]]], anchor: str, key: str,
           bd: dict[str, BDRate]) -> dict[str, BDRate]:
    """``bd`` with "n/a" for a curve (or every curve, for the anchor's) that has a not-finite
    point on ``key``: a BD-rate over the remaining points would be over other qualities."""
    def gaps(name: str) -> list[int]:
        return [p["quality"] for p in methods[name] if key in p["na"]]

    out = dict(bd)
    for name in methods:
        if name == anchor:
            continue
        bad = gaps(anchor) or gaps(name)
        if bad:
            who = f"the anchor {anchor}" if gaps(anchor) else name
            out[name] = BDRate(None, f"{_LABELS[key]} of {who} is n/a at quality "
                                     f"{', '.join(map(str, bad))}")
    return out


def _best_per_column(mx: _Matrix) -> dict[int, float | None]:
    """The best main-metric value per column among measured rows (``None``: fewer than two)."""
    best = {}
    for q in mx.cols:
        vals = [p[mx.main] for pts in mx.methods.values() for p in pts
                if p["quality"] == q and p[mx.main] is not None]
        best[q] = max(vals) if len(vals) > 1 else None
    return best


def _bd_cells(mx: _Matrix, m: str) -> list[dict[str, Any]]:
    """A measured row's BD-rate cells (Y and RGB PSNR) against the anchor, reasons footnoted."""
    if m == mx.anchor:
        return [{"text": "anchor", "cls": "num", "reason": ""}] * 2
    cells = [_bd_cell(mx.bd[k][m].value, mx.bd[k][m].reason) for k in ("psnr_y", "psnr_rgb")]
    for c in cells:
        if c["reason"]:
            c["fn"] = _footnote(mx.footnotes,
                                f"{mx.labels.get(m, m)}: BD-rate n/a — {c['reason']}")
    return cells


def _measured_rows(mx: _Matrix) -> list[dict[str, Any]]:
    """One row per measured method, strongest first (``leaderboard.summary_order``)."""
    best = _best_per_column(mx)
    main, second = mx.main, mx.second
    rows = []
    order = summary_order(mx.task, mx.methods, mx.anchor, mx.cols)
    order.sort(key=lambda m: any(main in p["na"] for p in mx.methods[m]))  # n/a last
    for m in order:
        by_q = {p["quality"]: p for p in mx.methods[m]}
        cells = []
        for q in mx.cols:
            p = by_q.get(q)
            v = None if p is None else p[main]
            na = p is not None and main in p["na"]
            sub = "" if p is None else NA_TEXT if second in p["na"] else _fmt(p[second], second)
            cells.append({"text": NA_TEXT if na else _fmt(v, main), "sub": sub,
                          "bold": v is not None and best[q] is not None and v == best[q],
                          "cls": "num na" if na else "num",
                          "fn": _footnote(mx.footnotes, NA_NOTE)
                          if na or (p is not None and second in p["na"]) else None})
        rows.append({"kind": "measured", "method": m, "label": mx.labels.get(m, m),
                     "weights": mx.weights.get(m, ""), "codec": m in mx.codecs,
                     "cells": cells, "bd": _bd_cells(mx, m) if mx.kind == "rd" else []})
    return rows


def _paper_cells(mx: _Matrix, by_q: dict[int, dict]) -> tuple[list[dict[str, Any]], bool]:
    """A paper row's cells, and whether one fell back to an unconfirmed channel (†)."""
    main, second = mx.main, mx.second
    cells, dagger = [], False
    for q in mx.cols:
        rec = by_q.get(q, {})
        v, k = as_float(rec.get(main)), main
        if v is None and main in _FALLBACK:
            k = _FALLBACK[main]
            v = as_float(rec.get(k))
            dagger = dagger or v is not None
        s_key = second if as_float(rec.get(second)) is not None else _FALLBACK.get(second, second)
        cells.append({"text": _fmt(v, k) + ("†" if v is not None and k != main else ""),
                      "sub": _fmt(as_float(rec.get(s_key)), s_key), "cls": "num", "bold": False})
    return cells, dagger


def _paper_rows(mx: _Matrix, paper: pd.DataFrame) -> list[dict[str, Any]]:
    """The paper-reported rows of the matrix's task, setting, codec and dataset
    (case-insensitive)."""
    if not len(paper):
        return []
    sel = paper[(paper["task"].astype(str) == mx.task)
                & (paper["setting"].astype(str) == mx.setting)
                & (paper["dataset"].astype(str).str.lower() == mx.dataset.lower())]
    groups: dict[tuple, dict[int, dict]] = {}
    for rec in sel.to_dict(orient="records"):
        q = as_quality(rec.get("quality"))
        if q is None or as_codec(rec.get("codec"), q) != mx.codec:
            continue
        groups.setdefault((str(rec.get("method")), str(rec.get("label")),
                           str(rec.get("reference") or ""), str(rec.get("notes") or "")),
                          {})[q] = rec
    rows = []
    for (m, label, ref, note), by_q in groups.items():
        fn = _footnote(mx.footnotes, note) if note else None
        cells, dagger = _paper_cells(mx, by_q)
        rows.append({"kind": "paper", "method": m, "label": label, "weights": "as published",
                     "ref": ref, "fn": fn, "codec": False, "cells": cells, "dagger": dagger,
                     "bd": [{"text": "", "cls": "num", "reason": ""}] * 2
                     if mx.kind == "rd" else []})
    return rows


def _table(mx: _Matrix, rows: list[dict[str, Any]], plots: bool, index: int) -> dict[str, Any]:
    """The template's dict of one matrix (with its RD figure when asked for and bpp exists)."""
    has_bpp = any(p["bpp"] is not None for pts in mx.methods.values() for p in pts)
    figure = None
    if plots and has_bpp:
        title = f"{mx.task} {mx.setting} · {mx.dataset}"
        if mx.codec != "jpeg":
            title = f"{mx.task} {mx.setting} · {codec_label(mx.codec)} · {mx.dataset}"
        figure = rd_figure(mx.methods, mx.codecs, title, mx.codec)
    main_label, second_label = _LABELS[mx.main], _LABELS[mx.second]
    anchor = mx.labels.get(mx.anchor, mx.anchor) if mx.anchor else None
    ranked_by = (f"BD-rate on {main_label} against {anchor}"
                 if anchor and summary_rank(mx.task) == "bd_rate"
                 else f"the mean {main_label} over the qualities")
    return {
        "task": mx.task, "setting": mx.setting, "codec": mx.codec,
        "codec_label": codec_label(mx.codec), "dataset": mx.dataset,
        "title": f"{mx.task} · {mx.setting} · {mx.dataset}: method × "
                 f"{codec_label(mx.codec)} quality",
        "kind": mx.kind,
        "qualities": mx.cols,
        "cell_label": f"{main_label} (dB), {second_label} below",
        "anchor": anchor,
        "ranked_by": ranked_by,
        "rows": rows,
        "footnotes": mx.footnotes,
        "dagger": any(r.get("dagger") for r in rows),
        "figure": figure,
        "extra_points": sorted(set(mx.qualities) - set(mx.cols)),
        "id": f"q-{index}",
    }


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
    codecs = codec_methods(metas) or {"jpeg"}
    paper = df[df["source"] != "measured"] if len(df) else df
    labels, weights = _method_names(summary)
    tables = []
    for key, methods in rd_curves(summary).items():
        mx = _matrix(key, methods, codecs, labels, weights)
        if mx is None:
            continue
        rows = _measured_rows(mx) + _paper_rows(mx, paper)
        tables.append(_table(mx, rows, plots, len(tables)))
    return tables
