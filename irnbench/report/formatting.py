"""How report cells write numbers: means, parameter counts, seconds, sort keys, best marks.

Not-finite metrics (``irnbench.leaderboard.not_finite``: NaN, −inf, or missing on some images)
are written :data:`NA_TEXT` with the footnote :data:`NA_NOTE` in every format (HTML, Markdown,
LaTeX; the CSV writes "n/a" in the cell and lists the metric in its ``not_finite`` column).
``+inf`` is a real value (the PSNR of an exact copy) and is written "∞" (CSV: "inf").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from irnbench.leaderboard import as_float, codec_label
from irnbench.results import MetricSpec

__all__ = [
    "NA_NOTE",
    "NA_TEXT",
    "best_flags",
    "format_number",
    "format_params",
    "format_seconds",
    "int_text",
    "metric_title",
    "quality_label",
    "rankable",
    "sort_key",
]

#: How a not-finite metric is written, in every format.
NA_TEXT = "n/a"
#: Its footnote (HTML, Markdown and LaTeX tables).
NA_NOTE = ("n/a: not a finite number (NaN or −∞ on some image, or missing on some of the set's "
           "images), so there is no mean, interval, rank, best mark or Δ; ranked last.")
#: Above this magnitude a number is written in scientific notation (never 300 digits).
_HUGE = 1e12


def format_number(v: Any, digits: int) -> str:
    """``33.6612`` → ``"33.66"``; ``inf`` → ``"∞"``; missing → ``""``; a huge finite value
    (a broken metric) in scientific notation, e.g. ``"1.00e+308"``."""
    f = as_float(v)
    if f is None:
        return ""
    if math.isinf(f):
        return "∞" if f > 0 else "−∞"
    return f"{f:.{digits}e}" if abs(f) >= _HUGE else f"{f:.{digits}f}"


def format_params(v: Any) -> str:
    """Parameter count, compact: ``1_670_000`` → ``"1.67M"``, ``12_345`` → ``"12.3K"``."""
    f = as_float(v)
    if f is None or math.isinf(f):
        return ""
    n = int(round(f))
    if abs(n) >= 1_000_000_000:
        return f"{n / 1e9:.3g}G"
    if abs(n) >= 1_000_000:
        return f"{n / 1e6:.3g}M"
    if abs(n) >= 1_000:
        return f"{n / 1e3:.3g}K"
    return str(n)


def format_seconds(v: Any) -> str:
    """Seconds per image: three decimals under 1 s, two under 100 s, none above."""
    f = as_float(v)
    if f is None or math.isinf(f):
        return ""
    if f < 1:
        return f"{f:.3f}"
    return f"{f:.2f}" if f < 100 else f"{f:.0f}"


def int_text(v: Any) -> str:
    """A count as text (``""`` when missing)."""
    f = as_float(v)
    return "" if f is None or math.isinf(f) else str(int(round(f)))


def sort_key(v: Any) -> str:
    """The ``data-sort`` value of a numeric cell (JS ``Number()`` parses it)."""
    f = as_float(v)
    if f is None:
        return ""
    if math.isinf(f):
        return "Infinity" if f > 0 else "-Infinity"
    return repr(f)


def quality_label(q: int | None, codec: str = "jpeg") -> str:
    """``30`` → ``"JPEG q30"``, ``(75, "webp")`` → ``"WebP q75"``; no quality → ``""``."""
    return "" if q is None else f"{codec_label(codec or 'jpeg')} q{q}"


def metric_title(m: MetricSpec, codec: str) -> str:
    """A metric's column title; bpp names the table's codec's file (``METRICS`` says JPEG)."""
    if m.key == "bpp" and codec and codec not in ("jpeg", "mixed"):
        return m.title.replace("JPEG", codec_label(codec))
    return m.title


def rankable(v: Any, better: str | None) -> float | None:
    """``v`` as a value that may be marked best: finite, or ``+inf`` where higher is better (an
    exact copy's PSNR); ``None`` for missing, NaN, −inf, and ``+inf`` of a lower-is-better
    metric (no real LPIPS is infinite)."""
    f = as_float(v)
    if f is None or (math.isinf(f) and not (f > 0 and better == "higher")):
        return None
    return f


def best_flags(values: Sequence[Any], better: str | None = "higher") -> list[bool]:
    """Which of ``values`` is best (``higher`` → max, ``lower`` → min); ties all win.

    Missing and not-finite values never win (:func:`rankable`); with fewer than two such
    values nothing is marked (a lone row is not "best" of anything); ``better=None`` marks
    nothing.
    """
    nums = [rankable(v, better) for v in values]
    present = [v for v in nums if v is not None]
    if better is None or len(present) < 2:
        return [False] * len(nums)
    target = max(present) if better == "higher" else min(present)
    return [v is not None and v == target for v in nums]
