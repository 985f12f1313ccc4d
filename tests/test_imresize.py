"""``irnbench.ops.imresize`` against MATLAB's bicubic ``imresize`` algorithm.

The reference below is written from MATLAB's documented ``imresize`` formulas (MATLAB
``imresize(..., 'bicubic')``, antialiasing on) in float64 NumPy with explicit loops over the
output index of each dimension. It shares no code with ``irnbench`` on purpose: the project
builds (out × in) weight matrices in torch, the reference walks the taps of every output line.
The second, third-party reference is the ``resize_right`` package (symmetric padding), which
equals MATLAB's mapping when ``in_size * scale`` is an integer.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from irnbench.ops import imresize, resize_matrix

TOL = 1e-4


# --------------------------------------------------------------------------------------------
# Independent reference: MATLAB imresize bicubic, float64, per output index
# --------------------------------------------------------------------------------------------
def _keys_cubic(t: float) -> float:
    """Keys cubic convolution kernel, a = -0.5."""
    a = abs(t)
    if a <= 1.0:
        return 1.5 * a**3 - 2.5 * a**2 + 1.0
    if a <= 2.0:
        return -0.5 * a**3 + 2.5 * a**2 - 4.0 * a + 2.0
    return 0.0


def _mirror(i: int, n: int) -> int:
    """1-based index → 0-based index with symmetric padding (..., 2, 1, 1, 2, ..., n, n, ...)."""
    while i < 1 or i > n:
        i = 1 - i if i < 1 else 2 * n + 1 - i
    return i - 1


def _out_len(in_len: int, scale: float) -> int:
    # ceil(in * scale); the rounding guards 1/3-style scales whose product is integral.
    return math.ceil(round(in_len * scale, 9))


def _contributions(in_len: int, scale: float) -> list[tuple[list[int], list[float]]]:
    """For every output index: the (0-based, mirrored) input indices and normalised weights."""
    if scale < 1:  # antialias: stretch the kernel by 1/scale
        width = 4.0 / scale

        def kernel(d: float) -> float:
            return scale * _keys_cubic(scale * d)
    else:
        width = 4.0
        kernel = _keys_cubic
    taps = math.ceil(width) + 2
    result = []
    for x in range(1, _out_len(in_len, scale) + 1):  # MATLAB's 1-based output index
        u = x / scale + 0.5 * (1.0 - 1.0 / scale)
        left = math.floor(u - width / 2.0)
        idx = [left + p for p in range(taps)]
        w = [kernel(u - j) for j in idx]
        total = sum(w)
        result.append(([_mirror(j, in_len) for j in idx], [wj / total for wj in w]))
    return result


def _resize_dim(a: np.ndarray, axis: int, scale: float) -> np.ndarray:
    a = np.moveaxis(a, axis, 0)
    contrib = _contributions(a.shape[0], scale)
    out = np.zeros((len(contrib),) + a.shape[1:], dtype=np.float64)
    for x, (idx, w) in enumerate(contrib):  # one output line at a time
        acc = np.zeros(a.shape[1:], dtype=np.float64)
        for j, wj in zip(idx, w, strict=True):
            acc += wj * a[j]
        out[x] = acc
    return np.moveaxis(out, 0, axis)


def matlab_imresize_ref(img_hwc: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB ``imresize(img, scale, 'bicubic')`` of an H×W×C image, float64, H first then W."""
    a = np.asarray(img_hwc, dtype=np.float64)
    return _resize_dim(_resize_dim(a, 0, scale), 1, scale)


def _ref_batch(x: torch.Tensor, scale: float) -> np.ndarray:
    """Reference applied to every image of a B×C×H×W tensor → B×C×h×w float64."""
    out = [matlab_imresize_ref(img.permute(1, 2, 0).double().numpy(), scale) for img in x]
    return np.stack(out).transpose(0, 3, 1, 2)


def _rand(shape, seed: int, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=torch.float64).to(dtype)


# --------------------------------------------------------------------------------------------
# Sanity of the reference itself (so that a bug in it cannot hide one in the project)
# --------------------------------------------------------------------------------------------
def test_reference_kernel_and_mirror():
    assert _keys_cubic(0.0) == 1.0
    assert _keys_cubic(1.0) == 0.0 and _keys_cubic(2.0) == 0.0 and _keys_cubic(2.5) == 0.0
    assert _keys_cubic(0.5) == pytest.approx(0.5625)
    assert _keys_cubic(-1.5) == pytest.approx(-0.0625)
    assert [_mirror(i, 4) for i in range(-2, 8)] == [2, 1, 0, 0, 1, 2, 3, 3, 2, 1]
    # P = ceil(width) + 2 taps, of which x1/2 has 8 and x1/4 16 non-zero (MATLAB's width rule).
    assert len(_contributions(16, 0.5)[0][0]) == 10
    assert sum(w != 0 for w in _contributions(16, 0.5)[3][1]) == 8
    assert len(_contributions(16, 0.25)[0][0]) == 18
    assert sum(w != 0 for w in _contributions(16, 0.25)[3][1]) == 16
    assert len(_contributions(8, 2.0)[0][0]) == 6


# --------------------------------------------------------------------------------------------
# Project vs reference
# --------------------------------------------------------------------------------------------
DOWN_CASES = [
    # (scale, B, C, H, W)
    (0.5, 2, 3, 32, 48),
    (0.5, 1, 1, 20, 20),
    (0.5, 1, 3, 12, 36),
    (0.25, 2, 3, 32, 40),
    (0.25, 1, 1, 24, 16),
    (0.25, 1, 3, 8, 8),  # image barely larger than the kernel: deep mirroring
]
UP_CASES = [
    (2.0, 2, 3, 37, 53),
    (2.0, 1, 1, 16, 11),
    (4.0, 1, 3, 37, 53),
    (4.0, 2, 1, 9, 14),
    (4.0, 1, 3, 3, 5),  # tiny input
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("scale,b,c,h,w", DOWN_CASES + UP_CASES)
def test_imresize_matches_matlab_reference(scale, b, c, h, w, dtype):
    x = _rand((b, c, h, w), seed=h * 1000 + w + c, dtype=dtype)
    out = imresize(x, scale)
    assert out.dtype == dtype
    assert out.shape == (b, c, math.ceil(h * scale), math.ceil(w * scale))
    ref = _ref_batch(x, scale)
    err = np.abs(out.double().numpy() - ref).max()
    assert err < TOL
    if dtype == torch.float64:  # float64 should agree to rounding error
        assert err < 1e-10


@pytest.mark.parametrize(
    "scale,shape",
    [
        (0.5, (1, 3, 37, 53)),  # odd sizes: ceil(18.5) = 19, ceil(26.5) = 27
        (0.25, (1, 1, 30, 21)),
        (1 / 3, (1, 3, 36, 27)),
        (3.0, (1, 3, 13, 10)),
    ],
)
def test_imresize_other_sizes_and_scales(scale, shape):
    """Output size ceil(in * scale) and the MATLAB mapping also hold off the x2/x4 grid."""
    x = _rand(shape, seed=7, dtype=torch.float64)
    out = imresize(x, scale)
    ref = _ref_batch(x, scale)
    assert out.shape[-2:] == ref.shape[-2:]
    assert np.abs(out.numpy() - ref).max() < 1e-10


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(
    "scale,c,h,w",
    [
        (0.5, 3, 32, 48),
        (0.5, 1, 20, 28),
        (0.25, 3, 32, 40),
        (2.0, 3, 37, 53),
        (4.0, 1, 37, 53),
        (1 / 3, 3, 36, 27),
    ],
)
def test_imresize_matches_resize_right(scale, c, h, w, dtype):
    from resize_right import interp_methods, resize

    x = _rand((1, c, h, w), seed=h + w + c, dtype=dtype)
    hwc = x[0].permute(1, 2, 0).double().numpy()
    rr = resize(
        hwc,
        scale_factors=[scale, scale, 1],
        interp_method=interp_methods.cubic,
        antialiasing=True,
        pad_mode="symmetric",
    )
    out = imresize(x, scale)[0].permute(1, 2, 0).double().numpy()
    assert out.shape == rr.shape
    assert np.abs(out - rr).max() < TOL


def test_resize_matrix_rows_sum_to_one_and_match_reference():
    for in_len, scale in [(16, 0.5), (16, 0.25), (11, 2.0), (7, 4.0)]:
        out_len = math.ceil(in_len * scale)
        m = resize_matrix(in_len, out_len, scale).numpy()
        assert m.shape == (out_len, in_len)
        np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-12)
        ref = np.zeros_like(m)
        for x, (idx, w) in enumerate(_contributions(in_len, scale)):
            for j, wj in zip(idx, w, strict=True):
                ref[x, j] += wj
        np.testing.assert_allclose(m, ref, atol=1e-12)


def test_resize_matrix_result_can_be_modified_safely():
    """The matrices are cached; a caller editing the returned tensor must not poison the cache."""
    x = _rand((1, 1, 16, 16), seed=3, dtype=torch.float64)
    before = imresize(x, 0.5)
    m = resize_matrix(16, 8, 0.5)
    m.mul_(0.0)
    torch.testing.assert_close(imresize(x, 0.5), before, rtol=0, atol=0)


# --------------------------------------------------------------------------------------------
# Behaviour
# --------------------------------------------------------------------------------------------
def test_imresize_is_differentiable():
    x = _rand((1, 2, 6, 7), seed=11, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: imresize(t, 0.5), (x,))
    y = _rand((1, 1, 3, 4), seed=12, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: imresize(t, 2.0), (y,))


def test_imresize_gradient_flows_in_float32():
    x = _rand((2, 3, 8, 8), seed=5).requires_grad_(True)
    imresize(x, 0.25).sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape
    # Each output pixel's weights sum to 1, so the total gradient is the number of outputs.
    assert float(x.grad.sum()) == pytest.approx(2 * 3 * 2 * 2, rel=1e-5)


def test_imresize_output_is_not_rounded_or_clamped():
    x = torch.round(_rand((1, 3, 16, 16), seed=9) * 255) / 255  # uint8-valued input
    out = imresize(x, 0.5)
    k = out * 255
    assert (k - k.round()).abs().max() > 1e-3  # not snapped back to k/255
    # A hard edge overshoots under the cubic kernel: values outside [0, 1] survive.
    step = torch.zeros(1, 1, 8, 8)
    step[..., 4:] = 1.0
    up = imresize(step, 2.0)
    assert up.max() > 1.0 and up.min() < 0.0


@pytest.mark.parametrize("scale", [0.5, 0.25, 2.0, 4.0])
def test_constant_image_stays_constant(scale):
    x = torch.full((2, 3, 16, 12), 0.37, dtype=torch.float64)
    out = imresize(x, scale)
    torch.testing.assert_close(out, torch.full_like(out, 0.37), rtol=0, atol=1e-12)


def test_chw_input_returns_chw():
    x = _rand((3, 16, 20), seed=21)
    out = imresize(x, 0.5)
    assert out.shape == (3, 8, 10)
    torch.testing.assert_close(out, imresize(x.unsqueeze(0), 0.5)[0])


def test_batch_images_are_independent():
    x = _rand((3, 3, 16, 16), seed=22)
    out = imresize(x, 0.25)
    for i in range(3):
        torch.testing.assert_close(out[i], imresize(x[i], 0.25))


def test_integer_scale_argument():
    x = _rand((1, 3, 5, 6), seed=23)
    torch.testing.assert_close(imresize(x, 2), imresize(x, 2.0))


@pytest.mark.parametrize("scale", [0, 0.0, -0.5, -2, float("nan"), float("inf")])
def test_bad_scale_raises(scale):
    with pytest.raises(ValueError):
        imresize(torch.rand(1, 3, 8, 8), scale)


def test_bad_input_raises():
    with pytest.raises(ValueError):
        imresize(torch.rand(8, 8), 0.5)  # no channel dimension
    with pytest.raises(ValueError):
        imresize(torch.rand(1, 1, 3, 8, 8), 0.5)
    with pytest.raises(TypeError):
        imresize(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), 0.5)
