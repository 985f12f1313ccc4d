"""Rate–distortion summaries: the Bjøntegaard delta rate (BD-rate), as a pure function.

Method (G. Bjøntegaard, "Calculation of average PSNR differences between RD-curves", VCEG-M33,
2001): for each curve, log10(rate) is fitted as a cubic polynomial of PSNR by least squares; both
fits are integrated over the PSNR interval the two curves share; the mean log-rate difference
``d`` (test − anchor) over that interval gives the BD-rate ``(10**d − 1) · 100`` percent — the
average bit-rate change of the test method at equal quality (negative: it saves bits).

Choices stated here because implementations differ:

* each curve is fitted on its points inside the common PSNR interval plus the nearest point
  outside it on each side (so the fit spans the interval but a long anchor sweep does not bend
  it); when that leaves fewer than ``BD_MIN_POINTS`` points, all the curve's points are used;
* points with the same PSNR are averaged first; a curve needs ``BD_MIN_POINTS`` (4) distinct
  points, as a cubic does;
* the interval is ``[max(min PSNR), min(max PSNR)]``; when it is empty the BD-rate is undefined
  and :class:`BDRateUndefined` says why (the report prints "n/a" with that reason).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from irnbench.protocol import BD_MIN_POINTS

__all__ = ["BDRateUndefined", "bd_rate", "common_range"]


class BDRateUndefined(ValueError):
    """The BD-rate cannot be computed (too few points, non-positive rates, no PSNR overlap)."""


def _curve(rate: Sequence[float], psnr: Sequence[float], what: str
           ) -> tuple[np.ndarray, np.ndarray]:
    """Finite (PSNR, log10 rate) points sorted by PSNR, equal PSNRs averaged."""
    r = np.asarray(rate, dtype=np.float64)
    p = np.asarray(psnr, dtype=np.float64)
    if r.shape != p.shape or r.ndim != 1:
        raise BDRateUndefined(f"{what}: rate and PSNR must be 1-D and of the same length")
    keep = np.isfinite(r) & np.isfinite(p)
    r, p = r[keep], p[keep]
    if np.any(r <= 0):
        raise BDRateUndefined(f"{what}: rates must be positive")
    uniq, inv = np.unique(p, return_inverse=True)
    logr = np.bincount(inv, weights=np.log10(r)) / np.bincount(inv)
    if len(uniq) < BD_MIN_POINTS:
        raise BDRateUndefined(
            f"{what} has {len(uniq)} distinct RD point(s); a cubic fit needs {BD_MIN_POINTS}"
        )
    return uniq, logr


def common_range(psnr_a: Sequence[float], psnr_b: Sequence[float]) -> tuple[float, float]:
    """The PSNR interval two curves share, ``(lo, hi)``; ``lo >= hi`` means no overlap."""
    a = np.asarray(psnr_a, dtype=np.float64)
    b = np.asarray(psnr_b, dtype=np.float64)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    return float(max(a.min(), b.min())), float(min(a.max(), b.max()))


def _fit_points(p: np.ndarray, logr: np.ndarray, lo: float, hi: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """The points inside ``[lo, hi]`` plus the nearest one outside on each side."""
    inside = np.flatnonzero((p >= lo) & (p <= hi))
    if not len(inside):
        return p, logr
    first, last = max(int(inside[0]) - 1, 0), min(int(inside[-1]) + 1, len(p) - 1)
    if last - first + 1 < BD_MIN_POINTS:
        return p, logr
    return p[first : last + 1], logr[first : last + 1]


def _mean_over(p: np.ndarray, logr: np.ndarray, lo: float, hi: float) -> float:
    """Mean of the least-squares cubic through (p, logr) over [lo, hi]."""
    # Centre and scale PSNR so the fit is well conditioned whatever the dB range.
    mid, half = (lo + hi) / 2.0, (hi - lo) / 2.0
    coef = np.polyfit((p - mid) / half, logr, 3)
    integral = np.polyint(coef)
    return float((np.polyval(integral, 1.0) - np.polyval(integral, -1.0)) / 2.0)


def bd_rate(
    rate_anchor: Sequence[float],
    psnr_anchor: Sequence[float],
    rate_test: Sequence[float],
    psnr_test: Sequence[float],
) -> float:
    """BD-rate of the test curve against the anchor, in percent (see the module docstring).

    Rates in any positive unit (bpp here), PSNR in dB, one point per entry (e.g. one per JPEG
    quality). Raises :class:`BDRateUndefined` when it is not defined.
    """
    pa, la = _curve(rate_anchor, psnr_anchor, "anchor curve")
    pt, lt = _curve(rate_test, psnr_test, "test curve")
    lo, hi = common_range(pa, pt)
    if not lo < hi:
        raise BDRateUndefined(
            f"the curves do not overlap in PSNR (anchor {pa.min():.2f}–{pa.max():.2f} dB, "
            f"test {pt.min():.2f}–{pt.max():.2f} dB)"
        )
    da = _mean_over(*_fit_points(pa, la, lo, hi), lo, hi)
    dt = _mean_over(*_fit_points(pt, lt, lo, hi), lo, hi)
    return float((10.0 ** (dt - da) - 1.0) * 100.0)
