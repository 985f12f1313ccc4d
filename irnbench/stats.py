"""Confidence intervals for leaderboards: percentile bootstrap over images (numpy only).

A leaderboard's set-level score is a mean over images, so its uncertainty comes from *which*
images the set happens to hold. The bootstrap resamples images with replacement and reads the
interval off the resampled means. Two methods measured on the same images should be compared
with :func:`paired_difference` (one image resample applied to both), which cancels the large
image-to-image spread that they share; :func:`unpaired_difference` exists to show why.

Conventions, shared by every function here:

* NaN values (failed or missing measurements) are dropped before anything else.
* ``n = 0`` gives an :class:`Interval` of NaNs; a single value, or values that are all equal,
  give a zero-width interval at that value (also when the value is ``inf``).
* ``inf`` follows numpy: a set that contains ``inf`` (e.g. the PSNR of an image reproduced
  exactly) has an infinite mean, and the end of the interval that the infinite resamples reach is
  infinite too; ``+inf`` together with ``-inf`` gives NaN. No RuntimeWarning escapes.
* Quantiles are numpy's default ``"linear"`` interpolation (Hyndman–Fan type 7); where the
  resampled means are not all finite, the same rule is applied with ``inf`` kept exact.
* Results are reproducible: the same values, ``resamples`` and ``seed`` give the same interval.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "DEFAULT_RESAMPLES",
    "DEFAULT_SEED",
    "CONFIDENCE",
    "Interval",
    "bootstrap_mean",
    "paired_difference",
    "unpaired_difference",
    "per_image_means",
    "align",
    "distinguishable",
]

#: Bootstrap resamples: the Monte-Carlo error of a 95 % endpoint is then well under 1 % of it.
DEFAULT_RESAMPLES = 10_000
#: Seed of ``numpy.random.default_rng``, so that a report is reproducible.
DEFAULT_SEED = 0
#: Two-sided confidence level of the intervals.
CONFIDENCE = 0.95

# Most elements of one (resamples × n) index matrix drawn at once (int64: 64 MiB), which bounds
# memory for large sets; below it the whole matrix is drawn in one call.
_CHUNK_ELEMENTS = 1 << 23


@dataclass(frozen=True)
class Interval:
    """A point estimate (the sample mean) with its percentile-bootstrap interval [lo, hi]."""

    mean: float
    lo: float
    hi: float
    n: int
    resamples: int
    seed: int

    @property
    def half_width(self) -> float:
        """(hi − lo) / 2; 0 for a zero-width interval, also one at ±inf."""
        if self.hi == self.lo:
            return 0.0
        return (self.hi - self.lo) / 2

    @property
    def excludes_zero(self) -> bool:
        """True when the whole interval lies on one side of 0 (False for NaN intervals)."""
        return self.lo > 0 or self.hi < 0

    def format(self, digits: int = 2) -> str:
        """``"31.42 ± 0.35"``: mean ± half-width (the interval need not be symmetric)."""
        return f"{self.mean:.{digits}f} ± {self.half_width:.{digits}f}"

    def bracket(self, digits: int = 2) -> str:
        """``"[31.07, 31.77]"``: the interval's actual endpoints."""
        return f"[{self.lo:.{digits}f}, {self.hi:.{digits}f}]"


def distinguishable(interval: Interval) -> bool:
    """Whether a difference interval excludes 0, i.e. the two methods are told apart."""
    return interval.excludes_zero


def _vector(values: ArrayLike, name: str = "values") -> np.ndarray:
    """Array-like → 1-D float64 array (NaNs kept)."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {x.shape}")
    return x


def _check(resamples: int, confidence: float) -> None:
    if int(resamples) != resamples or resamples < 1:
        raise ValueError(f"resamples must be a positive integer, got {resamples!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")


def _resampled_means(x: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """Means of ``resamples`` with-replacement resamples of ``x`` (chunked index matrices)."""
    n = x.size
    rows = max(1, _CHUNK_ELEMENTS // n)
    out = np.full(resamples, np.nan)  # a row left unfilled would show as NaN, not garbage
    for start in range(0, resamples, rows):
        stop = min(start + rows, resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = x[idx].mean(axis=1)
    return out


def _quantiles(stats: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """numpy's linear quantiles, with exact ±inf where the neighbouring order statistics are."""
    if np.isfinite(stats).all():
        return np.quantile(stats, probs)
    if np.isnan(stats).any():
        return np.full(probs.shape, np.nan)
    below = np.quantile(stats, probs, method="lower")
    above = np.quantile(stats, probs, method="higher")
    h = (stats.size - 1) * probs
    t = h - np.floor(h)
    # Between a finite value and inf the interpolant is the infinite one (t > 0 there);
    # between -inf and +inf it is undefined (NaN).
    lerp = below + (above - below) * t
    return np.select(
        [below == above, np.isinf(below) & np.isinf(above), np.isinf(above), np.isinf(below)],
        [below, np.nan, above, below],
        default=lerp,
    )


def _interval(x: np.ndarray, resamples: int, seed: int, confidence: float) -> Interval:
    """Bootstrap interval of the mean of ``x`` (NaNs already dropped)."""
    n = int(x.size)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, resamples, seed)
    if (x == x[0]).all():
        v = float(x[0])
        return Interval(v, v, v, n, resamples, seed)
    alpha = 1 - confidence
    rng = np.random.default_rng(seed)
    means = _resampled_means(x, rng, resamples)
    lo, hi = _quantiles(means, np.array([alpha / 2, 1 - alpha / 2]))
    return Interval(float(np.mean(x)), float(lo), float(hi), n, resamples, seed)


def bootstrap_mean(
    values: ArrayLike,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = CONFIDENCE,
) -> Interval:
    """Percentile-bootstrap interval of the mean of per-image values.

    Draws ``resamples`` index vectors of size n with replacement from
    ``numpy.random.default_rng(seed)``; the interval is the (α/2, 1 − α/2) quantiles of their
    means, α = 1 − ``confidence``. NaNs are dropped first (see the module notes for n ≤ 1 and inf).
    """
    _check(resamples, confidence)
    x = _vector(values)
    with np.errstate(invalid="ignore", over="ignore"):
        return _interval(x[~np.isnan(x)], int(resamples), seed, confidence)


def paired_difference(
    a: ArrayLike,
    b: ArrayLike,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = CONFIDENCE,
) -> Interval:
    """Interval of mean(a − b) for two methods' values on the same images, in the same order.

    One image resample is applied to both methods, i.e. the bootstrap of the per-image
    differences (identical to ``bootstrap_mean(a - b)``). Pairs with a NaN are dropped, and so
    are pairs whose difference is undefined (inf − inf: both values infinite on that image).
    """
    x, y = _vector(a, "a"), _vector(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b must have the same length, got {x.size} and {y.size}")
    with np.errstate(invalid="ignore", over="ignore"):
        return bootstrap_mean(x - y, resamples, seed, confidence)


def unpaired_difference(
    a: ArrayLike,
    b: ArrayLike,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = CONFIDENCE,
) -> Interval:
    """Interval of mean(a) − mean(b) resampling a and b independently (two-sample bootstrap).

    This ignores that both were measured on the same images, so it is far wider than
    :func:`paired_difference` when the images' difficulty dominates; it is kept to show that.
    NaNs are dropped from each side; the lengths may differ, and ``n`` is the smaller one.
    """
    _check(resamples, confidence)
    x, y = _vector(a, "a"), _vector(b, "b")
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    n = int(min(x.size, y.size))
    resamples = int(resamples)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, resamples, seed)
    with np.errstate(invalid="ignore", over="ignore"):
        if (x == x[0]).all() and (y == y[0]).all():
            d = float(x[0] - y[0])
            return Interval(d, d, d, n, resamples, seed)
        mean = float(np.mean(x) - np.mean(y))
        alpha = 1 - confidence
        rng = np.random.default_rng(seed)
        diffs = _resampled_means(x, rng, resamples) - _resampled_means(y, rng, resamples)
        lo, hi = _quantiles(diffs, np.array([alpha / 2, 1 - alpha / 2]))
    return Interval(mean, float(lo), float(hi), n, resamples, seed)


def per_image_means(values: ArrayLike, images: Iterable[Hashable]) -> tuple[list[str], np.ndarray]:
    """Average the z draws of each image, so that the bootstrap resamples images, not draws.

    Returns the image ids (as strings, in first-seen order) and their means; NaN draws are
    ignored, and an image whose draws are all NaN gets NaN.
    """
    v = _vector(values)
    ids = [str(i) for i in images]
    if len(ids) != v.size:
        raise ValueError(
            f"values and images must have the same length, got {v.size} and {len(ids)}"
        )
    order: dict[str, int] = {}
    codes = np.fromiter(
        (order.setdefault(i, len(order)) for i in ids), dtype=np.intp, count=len(ids)
    )
    ok = ~np.isnan(v)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        sums = np.bincount(codes[ok], weights=v[ok], minlength=len(order))
        counts = np.bincount(codes[ok], minlength=len(order))
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return list(order), means


def align(
    images_a: Iterable[Hashable],
    values_a: ArrayLike,
    images_b: Iterable[Hashable],
    values_b: ArrayLike,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-image values of two methods on the images they share, in a common order.

    Images are matched as strings; an image listed more than once (several draws) is averaged
    first (:func:`per_image_means`). The order is that of ``images_a``. Feed the result to
    :func:`paired_difference`.
    """
    ids_a, means_a = per_image_means(values_a, images_a)
    ids_b, means_b = per_image_means(values_b, images_b)
    where_b = {img: k for k, img in enumerate(ids_b)}
    shared = [(k, where_b[img]) for k, img in enumerate(ids_a) if img in where_b]
    ka = np.array([k for k, _ in shared], dtype=np.intp)
    kb = np.array([k for _, k in shared], dtype=np.intp)
    return means_a[ka], means_b[kb]
