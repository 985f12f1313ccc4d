"""How report cells write numbers: means, parameter counts, seconds, sort keys, best marks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from irnbench.leaderboard import as_float, codec_label
from irnbench.results import MetricSpec

__all__ = [
    "best_flags",
    "format_number",
    "format_params",
    "format_seconds",
    "int_text",
    "metric_title",
    "quality_label",
    "sort_key",
]


def format_number(v: Any, digits: int) -> str:
    """``33.6612`` → ``"33.66"``; ``inf`` → ``"∞"``; missing → ``""``."""
    f = as_float(v)
    if f is None:
        return ""
    if math.isinf(f):
        return "∞" if f > 0 else "−∞"
    return f"{f:.{digits}f}"


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


def best_flags(values: Sequence[Any], better: str | None = "higher") -> list[bool]:
    """Which of ``values`` is best (``higher`` → max, ``lower`` → min); ties all win.

    Missing values never win; with fewer than two present values nothing is marked (a lone row
    is not "best" of anything); ``better=None`` marks nothing.
    """
    nums = [as_float(v) for v in values]
    present = [v for v in nums if v is not None]
    if better is None or len(present) < 2:
        return [False] * len(nums)
    target = max(present) if better == "higher" else min(present)
    return [v is not None and v == target for v in nums]
