"""Bootstrap intervals of leaderboard means and of paired / unpaired differences."""

from __future__ import annotations

import inspect
import math
import warnings

import numpy as np
import pytest

from irnbench import stats
from irnbench.stats import (
    CONFIDENCE,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    Interval,
    align,
    bootstrap_mean,
    distinguishable,
    paired_difference,
    per_image_means,
    unpaired_difference,
)


def _normal(n: int, seed: int = 1, loc: float = 30.0, scale: float = 2.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(loc, scale, n)


def _se(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1) / math.sqrt(x.size))


def test_defaults():
    assert (DEFAULT_RESAMPLES, DEFAULT_SEED, CONFIDENCE) == (10_000, 0, 0.95)
    iv = bootstrap_mean(_normal(20))
    assert (iv.n, iv.resamples, iv.seed) == (20, DEFAULT_RESAMPLES, DEFAULT_SEED)


def test_interval_formatting_and_properties():
    iv = Interval(mean=31.42, lo=31.07, hi=31.77, n=100, resamples=10_000, seed=0)
    assert iv.half_width == pytest.approx(0.35)
    assert iv.format() == "31.42 ± 0.35"
    assert iv.format(3) == "31.420 ± 0.350"
    assert iv.bracket() == "[31.07, 31.77]"
    assert iv.excludes_zero and distinguishable(iv)
    assert Interval(-1.0, -2.0, -0.5, 3, 10, 0).excludes_zero
    assert not Interval(0.1, -0.2, 0.4, 3, 10, 0).excludes_zero
    assert not Interval(0.0, 0.0, 0.0, 3, 10, 0).excludes_zero
    nan = Interval(math.nan, math.nan, math.nan, 0, 10, 0)
    assert not nan.excludes_zero and not distinguishable(nan)
    assert math.isnan(nan.half_width)
    assert Interval(math.inf, math.inf, math.inf, 2, 10, 0).half_width == 0.0
    assert Interval(math.inf, 5.0, math.inf, 2, 10, 0).half_width == math.inf


def test_constant_difference_is_zero_width_at_the_constant():
    a = np.random.default_rng(3).uniform(20, 40, 50)
    iv = paired_difference(a, a - 0.3)
    assert iv.lo == pytest.approx(0.3, abs=1e-12)
    assert iv.hi == pytest.approx(0.3, abs=1e-12)
    assert iv.mean == pytest.approx(0.3, abs=1e-12)
    assert iv.n == 50
    assert iv.excludes_zero and distinguishable(iv)


def test_identical_methods_are_not_distinguishable():
    a = _normal(40)
    iv = paired_difference(a, a.copy())
    assert (iv.mean, iv.lo, iv.hi) == (0.0, 0.0, 0.0)
    assert not iv.excludes_zero and not distinguishable(iv)


def test_constant_values_give_zero_width_interval():
    # np.full(7, 31.7).mean() is 31.7 + 1 ulp: the interval must sit exactly at the value.
    iv = bootstrap_mean(np.full(7, 31.7))
    assert (iv.mean, iv.lo, iv.hi, iv.n) == (31.7, 31.7, 31.7, 7)
    assert iv.half_width == 0.0
    iv = unpaired_difference(np.full(7, 31.7), np.full(3, 0.1))
    assert (iv.mean, iv.lo, iv.hi) == (31.7 - 0.1,) * 3


def test_single_value():
    iv = bootstrap_mean([28.5])
    assert (iv.mean, iv.lo, iv.hi, iv.n) == (28.5, 28.5, 28.5, 1)
    iv = paired_difference([28.5, np.nan], [28.0, 1.0])
    assert (iv.mean, iv.lo, iv.hi, iv.n) == (0.5, 0.5, 0.5, 1)


@pytest.mark.parametrize("values", [[], [np.nan], [np.nan, np.nan, np.nan]])
def test_no_values_give_nan_interval(values):
    iv = bootstrap_mean(values)
    assert iv.n == 0
    assert math.isnan(iv.mean) and math.isnan(iv.lo) and math.isnan(iv.hi)
    assert not iv.excludes_zero
    iv = paired_difference(values, values)
    assert iv.n == 0 and math.isnan(iv.lo)
    iv = unpaired_difference(values, [1.0, 2.0])
    assert iv.n == 0 and math.isnan(iv.hi)


def test_nans_are_dropped():
    x = _normal(30)
    with_nan = np.insert(x, [0, 7, 30], np.nan)
    assert bootstrap_mean(with_nan, seed=5) == bootstrap_mean(x, seed=5)
    b = x - 0.2 + _normal(30, seed=2, loc=0.0, scale=0.1)
    a_nan, b_nan = x.copy(), b.copy()
    a_nan[3], b_nan[11] = np.nan, np.nan
    keep = np.ones(30, dtype=bool)
    keep[[3, 11]] = False
    assert paired_difference(a_nan, b_nan) == paired_difference(x[keep], b[keep])
    assert paired_difference(a_nan, b_nan).n == 28


def test_interval_contains_mean_and_is_reproducible():
    x = np.random.default_rng(7).exponential(2.0, 60)
    iv = bootstrap_mean(x, seed=11)
    assert iv.mean == pytest.approx(float(np.mean(x)), abs=1e-12)
    assert iv.lo < iv.mean < iv.hi
    assert bootstrap_mean(x, seed=11) == iv
    other = bootstrap_mean(x, seed=12)
    assert (other.lo, other.hi) != (iv.lo, iv.hi)
    assert other.seed == 12
    d = paired_difference(x, x[::-1], seed=11)
    assert d.lo <= d.mean <= d.hi
    assert paired_difference(x, x[::-1], seed=11) == d


def test_paired_is_bootstrap_of_differences():
    a, b = _normal(45, seed=4), _normal(45, seed=5)
    assert paired_difference(a, b, seed=3) == bootstrap_mean(a - b, seed=3)


def test_half_width_matches_t_interval_for_normal_data():
    x = _normal(200, seed=21)
    iv = bootstrap_mean(x)
    t_half = 1.972 * np.std(x, ddof=1) / math.sqrt(x.size)  # t_{0.975, 199} ≈ 1.972
    assert iv.half_width == pytest.approx(t_half, rel=0.10)
    assert iv.lo < np.mean(x) - 0.8 * t_half and iv.hi > np.mean(x) + 0.8 * t_half


def test_confidence_level_widens_interval():
    x = _normal(100)
    narrow = bootstrap_mean(x, confidence=0.5)
    wide = bootstrap_mean(x, confidence=0.99)
    assert wide.lo < narrow.lo < narrow.hi < wide.hi
    # 50 % vs 99 % normal quantiles: 0.674 vs 2.576.
    assert narrow.half_width / wide.half_width == pytest.approx(0.674 / 2.576, rel=0.1)


def test_pairing_narrows_the_interval():
    rng = np.random.default_rng(8)
    a = rng.uniform(22.0, 36.0, 30)  # image difficulty dominates the spread
    b = a + 0.1 + rng.normal(0.0, 0.05, 30)
    paired = paired_difference(a, b)
    unpaired = unpaired_difference(a, b)
    assert paired.mean == pytest.approx(unpaired.mean, abs=1e-9)
    assert paired.mean == pytest.approx(-0.1, abs=0.05)
    assert paired.half_width * 5 < unpaired.half_width
    assert paired.excludes_zero and paired.hi < 0
    assert not unpaired.excludes_zero


def test_unpaired_details():
    a, b = _normal(30, seed=1), _normal(20, seed=2, loc=25.0)
    iv = unpaired_difference(a, b)
    assert iv.n == 20
    assert iv.mean == pytest.approx(np.mean(a) - np.mean(b))
    assert iv.lo < iv.mean < iv.hi and iv.excludes_zero
    assert unpaired_difference(a, b) == iv
    const = unpaired_difference(np.full(5, 3.0), np.full(8, 1.0))
    assert (const.lo, const.hi, const.mean) == (2.0, 2.0, 2.0)


def test_chunked_draws_agree(monkeypatch):
    x = _normal(200, seed=9)
    whole = bootstrap_mean(x)
    monkeypatch.setattr(stats, "_CHUNK_ELEMENTS", 999)  # 4 resamples per chunk, 2500 chunks
    chunked = bootstrap_mean(x)
    assert np.isfinite([chunked.lo, chunked.hi]).all()
    assert bootstrap_mean(x) == chunked
    # Different streams: the endpoints agree to Monte-Carlo error (σ ≈ 0.04 SE), not exactly.
    assert chunked.lo == pytest.approx(whole.lo, abs=0.15 * _se(x))
    assert chunked.hi == pytest.approx(whole.hi, abs=0.15 * _se(x))
    monkeypatch.setattr(stats, "_CHUNK_ELEMENTS", 1)  # n > chunk: one resample per chunk
    one = bootstrap_mean(x[:50], resamples=500)
    assert one.lo < one.mean < one.hi


def test_scipy_percentile_bootstrap_agrees():
    from scipy import stats as scipy_stats  # the test extra's dependency: fail, never skip

    x = np.random.default_rng(13).gamma(4.0, 2.0, 150)
    ours = bootstrap_mean(x, resamples=10_000, seed=0)
    theirs = scipy_stats.bootstrap(
        (x,),
        np.mean,
        method="percentile",
        n_resamples=10_000,
        confidence_level=0.95,
        random_state=np.random.RandomState(0),
    ).confidence_interval
    # Different random streams: the endpoints' Monte-Carlo difference has σ ≈ 0.04 SE, so the
    # tolerance is 0.15 SE (≈ 4σ); a wrong quantile or level would miss it by far.
    tol = 0.15 * _se(x)
    assert ours.lo == pytest.approx(theirs.low, abs=tol)
    assert ours.hi == pytest.approx(theirs.high, abs=tol)
    if "rng" in inspect.signature(scipy_stats.bootstrap).parameters:
        # scipy ≥ 1.15 draws the same (resamples × n) index matrix from a Generator.
        same = scipy_stats.bootstrap(
            (x,),
            np.mean,
            method="percentile",
            n_resamples=10_000,
            confidence_level=0.95,
            rng=np.random.default_rng(0),
        ).confidence_interval
        assert ours.lo == pytest.approx(same.low, rel=1e-12)
        assert ours.hi == pytest.approx(same.high, rel=1e-12)


def test_inf_values_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        iv = bootstrap_mean([np.inf, np.inf, np.inf])
        assert (iv.mean, iv.lo, iv.hi, iv.n) == (math.inf, math.inf, math.inf, 3)
        assert iv.format() == "inf ± 0.00"
        some = bootstrap_mean(np.r_[np.arange(50.0), np.inf])
        assert some.mean == math.inf and some.hi == math.inf
        assert 0 < some.lo < 50  # a third of the resamples miss the inf image
        mostly = bootstrap_mean(np.r_[np.full(20, np.inf), 1.0])
        assert (mostly.lo, mostly.hi) == (math.inf, math.inf)
        mixed = bootstrap_mean([1.0, np.inf, -np.inf])
        assert math.isnan(mixed.mean) and math.isnan(mixed.lo) and math.isnan(mixed.hi)
        # inf − inf (both methods exact on an image) is undefined: that pair is dropped.
        d = paired_difference([np.inf, 31.0, 32.0, 30.0], [np.inf, 30.0, 31.0, 29.0])
        assert (d.lo, d.hi, d.n) == (1.0, 1.0, 3)
        d = paired_difference([np.inf, 31.0, 32.0], [30.0, 30.0, 31.0])
        assert d.mean == math.inf and d.hi == math.inf
        u = unpaired_difference([np.inf, 1.0, 2.0], [np.inf, 0.0, 3.0])
        assert math.isnan(u.mean) and math.isnan(u.lo)
        ids, means = per_image_means([np.inf, np.inf, 1.0, np.inf], ["a", "a", "b", "b"])
        assert ids == ["a", "b"] and means.tolist() == [math.inf, math.inf]


def test_per_image_means_averages_draws_in_first_seen_order():
    ids, means = per_image_means(
        [1.0, 10.0, 3.0, 20.0, np.nan, 6.0, np.nan],
        ["img2", "img1", "img2", "img1", "img3", "img1", "img4"],
    )
    assert ids == ["img2", "img1", "img3", "img4"]
    assert means[:2].tolist() == [2.0, 12.0]
    assert math.isnan(means[2]) and math.isnan(means[3])
    ids, means = per_image_means(np.array([1.0, 2.0]), np.array([7, 5]))
    assert ids == ["7", "5"] and means.tolist() == [1.0, 2.0]
    with pytest.raises(ValueError):
        per_image_means([1.0, 2.0], ["a"])


def test_align_keeps_shared_images_in_common_order():
    a, b = align(["a", "b", "c", "d"], [1.0, 2.0, 3.0, 4.0], ["d", "x", "b"], [40.0, 0.0, 20.0])
    assert a.tolist() == [2.0, 4.0] and b.tolist() == [20.0, 40.0]
    # Draws of a stochastic method are averaged first; ids compare as strings.
    a, b = align([1, 2, 3], [10.0, 20.0, 30.0], ["3", "1", "3", "1"], [1.0, 2.0, 3.0, 4.0])
    assert a.tolist() == [10.0, 30.0] and b.tolist() == [3.0, 2.0]
    a, b = align(["a"], [1.0], ["b"], [2.0])
    assert a.size == 0 and b.size == 0
    assert paired_difference(a, b).n == 0


def test_invalid_arguments():
    with pytest.raises(ValueError, match="same length"):
        paired_difference([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="one-dimensional"):
        bootstrap_mean([[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_mean([1.0, 2.0], confidence=1.5)
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_mean([1.0, 2.0], resamples=0)
