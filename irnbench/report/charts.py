"""Inline report charts (matplotlib, Agg, PNG data URIs): quality against cost, and each
method's per-image difference from the reference method."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from irnbench.stats import align

__all__ = ["png_data_uri", "cost_figure", "difference_figure"]


def png_data_uri(fig: Any) -> str:
    """A matplotlib figure as a PNG data URI (no timestamp metadata, so reports diff well)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", metadata={"Software": None})
    finally:
        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _finite(v: Any) -> float | None:
    x = pd.to_numeric(pd.Series([v]), errors="coerce").iloc[0]
    return float(x) if pd.notna(x) and math.isfinite(float(x)) else None


def cost_figure(rows: Sequence[dict[str, Any]], metric: str, metric_label: str,
                title: str) -> str | None:
    """Set-mean quality against trainable parameters (left) and seconds per image (right).

    Methods without parameters (bicubic) sit at the left edge of the parameter axis, marked 0.
    """
    pts = [(str(r.get("label") or r.get("method")), _finite(r.get(metric)),
            _finite(r.get("params")), _finite(r.get("seconds"))) for r in rows]
    pts = [p for p in pts if p[1] is not None]
    if len(pts) < 2:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=100)
    positive = [p[2] for p in pts if p[2]] or [1.0]
    floor = min(positive) / 10
    for i, (name, q, params, secs) in enumerate(pts):
        colour = f"C{i % 10}"
        axes[0].scatter([params or floor], [q], color=colour, label=name, zorder=3)
        if secs:
            axes[1].scatter([secs], [q], color=colour, zorder=3)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("trainable parameters (log; 0 at the left edge)")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("seconds per image (log; degrade + channel + restore)")
    for ax in axes:
        ax.set_ylabel(metric_label)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return png_data_uri(fig)


def difference_figure(per_image: pd.DataFrame, metric: str, metric_label: str,
                      reference: str, title: str) -> str | None:
    """Per image: each method's value minus the reference method's (bars, one group per image;
    a stochastic method's draws averaged first)."""
    from irnbench.results import per_image as per_image_values

    names = list(dict.fromkeys(per_image["label"].astype(str)))
    if reference not in names or len(names) < 2:
        return None
    ref = per_image_values(per_image[per_image["label"].astype(str) == reference], metric)
    others = [n for n in names if n != reference]
    plt = _pyplot()
    images = ref[0]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(images) * len(others) + 2), 3.2),
                           dpi=100)
    width = 0.8 / len(others)
    x = np.arange(len(images))
    for j, name in enumerate(others):
        mine = per_image_values(per_image[per_image["label"].astype(str) == name], metric)
        a, b = align(*mine, *ref)
        shared = [img for img in mine[0] if img in set(images)]
        diff = dict(zip(shared, (a - b).tolist(), strict=True))
        ax.bar(x + (j - (len(others) - 1) / 2) * width,
               [diff.get(img, np.nan) for img in images], width, label=name,
               color=f"C{(j + 1) % 10}")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x, images, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel(f"{metric_label} − {reference}")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return png_data_uri(fig)
