"""Metrics, colour, quantisation and JPEG ops of the measurement protocol (docs/protocol.md).

``irnbench.metrics.psnr`` / ``ssim`` are compared with float64 NumPy re-implementations of BasicSR's
``calculate_psnr`` / ``calculate_ssim`` written here from the protocol (docs/protocol.md):
uint8 rounding, BT.601 Y = 16 + (65.481 R + 128.553 G + 24.966 B)/255 in float (not re-rounded),
border crop, PSNR = 10·log10(255²/MSE), SSIM with cv2.getGaussianKernel(11, 1.5)'s outer product,
'valid' filtering (explicit sliding windows), C1 = (0.01·255)², C2 = (0.03·255)², mean over
channels. (BasicSR builds Y in float32; the protocol and this reference use float64.)
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from irnbench.metrics import psnr, ssim
from irnbench.ops import (
    from_uint8,
    grey_to_rgb,
    jpeg_roundtrip,
    libjpeg_version,
    quantize,
    rgb_to_grey,
    rgb_to_y,
    soft_round_quantize,
    straight_through_quantize,
    to_uint8,
)
from irnbench.ops.jpeg import jpeg_decode, jpeg_encode

PSNR_TOL = 1e-4  # dB
SSIM_TOL = 1e-4


# --------------------------------------------------------------------------------------------
# Independent reference (BasicSR calculate_psnr / calculate_ssim, test_y_channel), float64 NumPy
# --------------------------------------------------------------------------------------------
def _to_uint8_values(img_chw: np.ndarray) -> np.ndarray:
    """C×H×W float in [0, 1] (or uint8) → H×W×C float64 holding the uint8 values 0..255."""
    a = np.asarray(img_chw)
    if a.dtype == np.uint8:
        v = a.astype(np.float64)
    else:
        # As IRN's tensor2img: clamp, ×255 and round in the image's own float dtype (float32 for
        # network outputs), then compute in float64.
        v = np.round(np.clip(a, 0.0, 1.0) * a.dtype.type(255.0)).astype(np.float64)
    return v.transpose(1, 2, 0)


def _ref_y(img_hwc: np.ndarray) -> np.ndarray:
    r, g, b = img_hwc[..., 0], img_hwc[..., 1], img_hwc[..., 2]
    return (16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0)[..., None]


def _ref_prepare(img_chw, crop_border: int, y_channel: bool) -> np.ndarray:
    v = _to_uint8_values(img_chw)
    if crop_border:
        v = v[crop_border:-crop_border, crop_border:-crop_border, :]
    if y_channel and v.shape[2] == 3:
        v = _ref_y(v)
    return v


def ref_psnr(img1, img2, crop_border: int, y_channel: bool) -> float:
    a = _ref_prepare(img1, crop_border, y_channel)
    b = _ref_prepare(img2, crop_border, y_channel)
    mse = np.mean((a - b) ** 2)
    if mse == 0:
        return float("inf")
    return 10.0 * np.log10(255.0 * 255.0 / mse)


def _cv2_gaussian_kernel(ksize: int, sigma: float) -> np.ndarray:
    """What cv2.getGaussianKernel(ksize, sigma) returns for sigma > 0 (a ksize×1 column)."""
    x = np.arange(ksize, dtype=np.float64) - (ksize - 1) * 0.5
    k = np.exp(-0.5 / (sigma * sigma) * x * x)
    return (k / k.sum())[:, None]


_K = _cv2_gaussian_kernel(11, 1.5)
_WINDOW = np.outer(_K, _K.transpose())


def _filter_valid(img: np.ndarray) -> np.ndarray:
    """Correlate an H×W image with the 11×11 window, keeping only fully-inside positions."""
    windows = sliding_window_view(img, _WINDOW.shape)  # (H-10)×(W-10)×11×11
    return np.einsum("ijkl,kl->ij", windows, _WINDOW)


def _ref_ssim_2d(img1: np.ndarray, img2: np.ndarray) -> float:
    c1 = (0.01 * 255) ** 2
    c2 = (0.03 * 255) ** 2
    mu1, mu2 = _filter_valid(img1), _filter_valid(img2)
    mu1_sq, mu2_sq, mu1_mu2 = mu1**2, mu2**2, mu1 * mu2
    sigma1_sq = _filter_valid(img1**2) - mu1_sq
    sigma2_sq = _filter_valid(img2**2) - mu2_sq
    sigma12 = _filter_valid(img1 * img2) - mu1_mu2
    ssim_map = ((2 * mu1_mu2 + c1) * (2 * sigma12 + c2)) / (
        (mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2)
    )
    return float(ssim_map.mean())


def ref_ssim(img1, img2, crop_border: int, y_channel: bool) -> float:
    a = _ref_prepare(img1, crop_border, y_channel)
    b = _ref_prepare(img2, crop_border, y_channel)
    return float(np.mean([_ref_ssim_2d(a[..., i], b[..., i]) for i in range(a.shape[2])]))


def test_reference_gaussian_window():
    assert _WINDOW.shape == (11, 11)
    assert _WINDOW.sum() == pytest.approx(1.0, abs=1e-15)
    assert _K[5, 0] == _K.max() and _K[0, 0] == pytest.approx(_K[10, 0])
    # A constant image filters to itself.
    np.testing.assert_allclose(_filter_valid(np.full((15, 13), 7.0)), 7.0, atol=1e-12)
    assert _filter_valid(np.zeros((15, 13))).shape == (5, 3)


# --------------------------------------------------------------------------------------------
# Test images
# --------------------------------------------------------------------------------------------
def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _random_pair(b, c, h, w, seed, noise=0.08):
    g = _gen(seed)
    x = torch.rand(b, c, h, w, generator=g, dtype=torch.float64)
    y = (x + noise * torch.randn(b, c, h, w, generator=g, dtype=torch.float64)).clamp(0, 1)
    return x.float(), y.float()


def _smooth(b, c, h, w, seed) -> torch.Tensor:
    g = _gen(seed)
    yy = torch.arange(h, dtype=torch.float64).view(h, 1)
    xx = torch.arange(w, dtype=torch.float64).view(1, w)
    out = torch.zeros(b, c, h, w, dtype=torch.float64)
    for i in range(b):
        for j in range(c):
            fx, fy, ph = torch.rand(3, generator=g, dtype=torch.float64)
            out[i, j] = 0.5 + 0.4 * torch.sin(0.3 * fx * xx + 0.2 * fy * yy + 6.28 * ph)
    return out


def _smooth_pair(b, c, h, w, seed):
    x = _smooth(b, c, h, w, seed)
    g = _gen(seed + 1)
    # A shifted, slightly noisy copy: a plausible restoration of x.
    y = 0.9 * x + 0.1 * torch.roll(x, shifts=1, dims=-1)
    y = (y + 0.01 * torch.randn(y.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    return x.float(), y.float()


def _check_against_reference(metric, ref, x, y, crop, y_channel, tol):
    got = metric(x, y, crop_border=crop, y_channel=y_channel)
    assert isinstance(got, torch.Tensor) and got.shape == (x.shape[0],)
    for i in range(x.shape[0]):
        expect = ref(x[i].numpy(), y[i].numpy(), crop, y_channel)
        assert abs(float(got[i]) - expect) < tol, (i, float(got[i]), expect)
    # The single-image form returns a plain float with the same value.
    single = metric(x[0], y[0], crop_border=crop, y_channel=y_channel)
    assert isinstance(single, float)
    assert single == pytest.approx(float(got[0]), abs=1e-12)


PAIRS = {
    "random": _random_pair,
    "smooth": _smooth_pair,
}


# --------------------------------------------------------------------------------------------
# PSNR / SSIM vs the reference
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(PAIRS))
@pytest.mark.parametrize("crop", [0, 2, 4])
@pytest.mark.parametrize("y_channel", [True, False], ids=["y", "rgb"])
@pytest.mark.parametrize("as_uint8", [False, True], ids=["float", "uint8"])
def test_psnr_ssim_match_basicsr_reference(kind, crop, y_channel, as_uint8):
    x, y = PAIRS[kind](2, 3, 32, 40, seed=100 + crop)
    if as_uint8:
        x, y = to_uint8(x), to_uint8(y)
    _check_against_reference(psnr, ref_psnr, x, y, crop, y_channel, PSNR_TOL)
    _check_against_reference(ssim, ref_ssim, x, y, crop, y_channel, SSIM_TOL)


@pytest.mark.parametrize("crop", [0, 4])
@pytest.mark.parametrize("y_channel", [True, False], ids=["y", "rgb"])
def test_psnr_ssim_grey_images(crop, y_channel):
    """One-channel images: y_channel has nothing to convert."""
    x, y = _smooth_pair(3, 1, 27, 33, seed=7)
    _check_against_reference(psnr, ref_psnr, x, y, crop, y_channel, PSNR_TOL)
    _check_against_reference(ssim, ref_ssim, x, y, crop, y_channel, SSIM_TOL)


def test_float_inputs_off_the_grid_are_rounded_like_uint8():
    """Floats that are not k/255 score exactly as their uint8 roundings do."""
    x, y = _random_pair(2, 3, 24, 24, seed=3)
    assert psnr(x, y).tolist() == psnr(to_uint8(x), to_uint8(y)).tolist()
    assert ssim(x, y).tolist() == ssim(to_uint8(x), to_uint8(y)).tolist()


def test_float32_rounding_ties_follow_float32_arithmetic():
    """float32 values nearest to (k + 0.5)/255: x·255 is an exact tie in float32 for about half
    of them, and IRN's tensor2img (float32 NumPy) and ``to_uint8`` round those half-to-even; a
    float64 product would round them up. The metric must round as the channel and IRN do."""
    k = torch.arange(255, dtype=torch.float64)
    ties = ((k + 0.5) / 255).float()
    x = torch.zeros(1, 1, 16, 16)
    x.view(-1)[:255] = ties
    ref = torch.zeros_like(x)
    expect = ref_psnr(x[0].numpy(), ref[0].numpy(), 0, False)
    assert float(psnr(x, ref)[0]) == pytest.approx(expect, abs=1e-9)
    assert float(psnr(x, ref)[0]) == float(psnr(to_uint8(x), to_uint8(ref))[0])
    x3 = torch.zeros(1, 3, 16, 16)
    x3.view(-1)[: 3 * 85] = ties
    r3 = torch.rand(1, 3, 16, 16, generator=_gen(9))
    assert float(ssim(x3, r3)[0]) == float(ssim(to_uint8(x3), to_uint8(r3))[0])
    assert float(psnr(x3, r3)[0]) == float(psnr(to_uint8(x3), to_uint8(r3))[0])


def test_uint8_rounding_is_applied():
    x, y = _random_pair(2, 3, 24, 24, seed=4)
    xq, yq = quantize(x), quantize(y)
    eps = 0.001 / 255
    for crop in (0, 2):
        for yc in (True, False):
            assert psnr(xq + eps, yq, crop, yc).tolist() == psnr(xq, yq, crop, yc).tolist()
            assert ssim(xq + eps, yq, crop, yc).tolist() == ssim(xq, yq, crop, yc).tolist()


def test_values_outside_unit_range_are_clamped():
    x, y = _random_pair(1, 3, 16, 16, seed=5)
    x_over = x.clone()
    x_over[..., :4, :] = x_over[..., :4, :] * 3 - 1  # some < 0, some > 1
    expect = ref_psnr(x_over[0].numpy(), y[0].numpy(), 0, True)
    assert float(psnr(x_over, y)[0]) == pytest.approx(expect, abs=PSNR_TOL)


def test_identical_images():
    x, _ = _random_pair(2, 3, 20, 20, seed=6)
    p = psnr(x, x.clone(), crop_border=2)
    assert torch.isinf(p).all() and (p > 0).all()
    assert math.isinf(psnr(x[0], x[0])) and psnr(x[0], x[0]) > 0
    s = ssim(x, x.clone(), crop_border=2)
    torch.testing.assert_close(s, torch.ones_like(s), rtol=0, atol=1e-12)
    assert ssim(x[0], x[0], y_channel=False) == pytest.approx(1.0, abs=1e-12)


def test_psnr_known_value():
    """A uniform error of one grey level: MSE = 1 → PSNR = 20·log10(255)."""
    x = torch.full((1, 1, 8, 8), 100 / 255)
    y = torch.full((1, 1, 8, 8), 101 / 255)
    assert float(psnr(x, y)[0]) == pytest.approx(20 * math.log10(255), abs=1e-9)
    # On Y, an error of one level in all of R, G, B moves Y by 219/255.
    x3, y3 = x.expand(1, 3, 8, 8), y.expand(1, 3, 8, 8)
    assert float(psnr(x3, y3)[0]) == pytest.approx(20 * math.log10(255 / (219 / 255)), abs=1e-9)


def test_crop_border_only_looks_inside():
    x, y = _random_pair(1, 3, 24, 24, seed=8)
    y_bad_border = y.clone()
    y_bad_border[..., :3, :] = 1 - y_bad_border[..., :3, :]
    y_bad_border[..., :, -3:] = 0
    assert float(psnr(x, y, crop_border=4)[0]) == float(psnr(x, y_bad_border, crop_border=4)[0])
    assert float(ssim(x, y, crop_border=4)[0]) == float(ssim(x, y_bad_border, crop_border=4)[0])
    assert float(psnr(x, y)[0]) != float(psnr(x, y_bad_border)[0])


def test_shape_mismatch_raises():
    a, b = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 17)
    with pytest.raises(ValueError):
        psnr(a, b)
    with pytest.raises(ValueError):
        ssim(a, b)
    with pytest.raises(ValueError):
        psnr(torch.rand(16, 16), torch.rand(16, 16))


def test_ssim_too_small_raises():
    a, b = torch.rand(1, 3, 10, 30), torch.rand(1, 3, 10, 30)
    with pytest.raises(ValueError):
        ssim(a, b)
    c, d = torch.rand(1, 3, 14, 14), torch.rand(1, 3, 14, 14)
    ssim(c, d)  # 14×14 is enough without a crop ...
    with pytest.raises(ValueError):
        ssim(c, d, crop_border=2)  # ... but not after cropping to 10×10


# --------------------------------------------------------------------------------------------
# Colour
# --------------------------------------------------------------------------------------------
def test_rgb_to_y_known_values():
    px = torch.tensor(
        [[255.0, 255.0, 255.0], [0.0, 0.0, 0.0], [255.0, 0.0, 0.0], [0.0, 255.0, 0.0]],
        dtype=torch.float64,
    )
    img = px.t().reshape(3, 1, 4)  # 3×1×4: four pixels
    y = rgb_to_y(img)
    assert y.shape == (1, 1, 4)
    expect = [235.0, 16.0, 16 + 65.481, 16 + 128.553]
    np.testing.assert_allclose(y.flatten().numpy(), expect, atol=1e-12)
    # Batched, and not rounded.
    batch = torch.rand(2, 3, 5, 6, dtype=torch.float64) * 255
    yb = rgb_to_y(batch)
    assert yb.shape == (2, 1, 5, 6)
    ref = _ref_y(batch.permute(0, 2, 3, 1).numpy())[..., 0]
    np.testing.assert_allclose(yb[:, 0].numpy(), ref, atol=1e-10)
    assert (yb - yb.round()).abs().max() > 1e-3
    with pytest.raises(ValueError):
        rgb_to_y(torch.rand(1, 1, 4, 4))


def test_rgb_to_grey_and_back():
    white = torch.ones(1, 3, 2, 2)
    assert torch.allclose(rgb_to_grey(white), torch.ones(1, 1, 2, 2), atol=1e-6)
    red = torch.zeros(3, 2, 2)
    red[0] = 1
    assert rgb_to_grey(red).shape == (1, 2, 2)
    assert torch.allclose(rgb_to_grey(red), torch.full((1, 2, 2), 0.299), atol=1e-7)
    x = torch.rand(2, 3, 4, 5, dtype=torch.float64)
    expect = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    torch.testing.assert_close(rgb_to_grey(x)[:, 0], expect)
    with pytest.raises(ValueError):
        rgb_to_grey(torch.rand(1, 1, 4, 4))
    g = torch.rand(2, 1, 4, 5)
    rgb = grey_to_rgb(g)
    assert rgb.shape == (2, 3, 4, 5)
    for c in range(3):
        assert torch.equal(rgb[:, c], g[:, 0])


# --------------------------------------------------------------------------------------------
# Quantisation
# --------------------------------------------------------------------------------------------
def _with_out_of_range(seed: int) -> torch.Tensor:
    x = torch.rand(2, 3, 8, 8, generator=_gen(seed), dtype=torch.float64) * 1.6 - 0.3
    assert (x < 0).any() and (x > 1).any()
    return x


def _is_k_over_255(t: torch.Tensor) -> bool:
    k = t.double() * 255
    return bool(((k - k.round()).abs() < 1e-4).all() and (k >= 0).all() and (k <= 255).all())


def test_quantize_forward_values():
    x = _with_out_of_range(1)
    expect = torch.round(x.clamp(0, 1) * 255) / 255
    for fn in (quantize, straight_through_quantize, soft_round_quantize):
        out = fn(x)
        assert out.dtype == x.dtype
        torch.testing.assert_close(out, expect, rtol=0, atol=1e-12)
        assert _is_k_over_255(out)
        assert _is_k_over_255(fn(x.float()))


def test_straight_through_gradient_is_identity():
    x = _with_out_of_range(2).requires_grad_(True)
    straight_through_quantize(x).sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))  # clamped values included
    x.grad = None
    g = torch.randn(x.shape, generator=_gen(3), dtype=torch.float64)
    straight_through_quantize(x).backward(g)
    assert torch.equal(x.grad, g)


def test_soft_round_gradient():
    x = _with_out_of_range(4).requires_grad_(True)
    soft_round_quantize(x).sum().backward()
    expect = 1.0 - torch.cos(2 * math.pi * x.detach())
    torch.testing.assert_close(x.grad, expect, rtol=0, atol=1e-12)
    # Zero at the quantisation levels' period points, 2 half-way.
    z = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64, requires_grad=True)
    soft_round_quantize(z).sum().backward()
    torch.testing.assert_close(z.grad, torch.tensor([0.0, 2.0, 0.0], dtype=torch.float64))


def test_to_and_from_uint8():
    x = _with_out_of_range(5).float()
    u = to_uint8(x)
    assert u.dtype == torch.uint8 and u.shape == x.shape
    assert torch.equal(u.long(), torch.round(x.double().clamp(0, 1) * 255).long())
    f = from_uint8(u)
    assert f.dtype == torch.float32
    assert torch.equal(to_uint8(f), u)
    torch.testing.assert_close(f, quantize(x), rtol=0, atol=1e-6)


# --------------------------------------------------------------------------------------------
# JPEG
# --------------------------------------------------------------------------------------------
def _smooth_u8(b, c, h, w, seed) -> torch.Tensor:
    x = _smooth(b, c, h, w, seed)
    g = _gen(seed + 7)
    x = x + 0.03 * torch.randn(x.shape, generator=g, dtype=torch.float64)  # some texture
    return to_uint8(x)


def test_jpeg_roundtrip_shape_dtype():
    x = _smooth_u8(2, 3, 32, 48, seed=1)
    out, sizes = jpeg_roundtrip(x, 90)
    assert out.shape == x.shape and out.dtype == torch.uint8
    assert len(sizes) == 2 and all(isinstance(s, int) and s > 0 for s in sizes)
    # Lossy but close at quality 90.
    assert float(psnr(out, x, y_channel=False).min()) > 28


def test_jpeg_deterministic():
    x = _smooth_u8(1, 3, 40, 40, seed=2)
    assert jpeg_encode(x[0], 75) == jpeg_encode(x[0].clone(), 75)
    a, sa = jpeg_roundtrip(x, 50)
    b, sb = jpeg_roundtrip(x.clone(), 50)
    assert sa == sb and torch.equal(a, b)


def test_jpeg_higher_quality_more_bytes():
    x = _smooth_u8(1, 3, 64, 64, seed=3)
    sizes = [jpeg_roundtrip(x, q)[1][0] for q in (30, 50, 70, 90)]
    assert sizes == sorted(sizes) and len(set(sizes)) == 4


def test_jpeg_grey():
    x = _smooth_u8(2, 1, 24, 40, seed=4)
    out, sizes = jpeg_roundtrip(x, 80)
    assert out.shape == (2, 1, 24, 40) and out.dtype == torch.uint8
    assert len(sizes) == 2
    data = jpeg_encode(x[0], 80)
    assert jpeg_decode(data).shape == (1, 24, 40)


def test_jpeg_protocol_settings():
    """Baseline JPEG, 4:2:0 chroma subsampling, Huffman optimisation off (docs/protocol.md)."""
    import io

    from PIL import Image, JpegImagePlugin

    x = _smooth_u8(1, 3, 32, 32, seed=5)[0]
    data = jpeg_encode(x, 70)
    with Image.open(io.BytesIO(data)) as im:
        assert JpegImagePlugin.get_sampling(im) == 2  # 4:2:0
        assert not im.info.get("progressive", False)
    buf = io.BytesIO()
    Image.fromarray(x.permute(1, 2, 0).numpy()).save(
        buf, format="JPEG", quality=70, subsampling=2, optimize=False
    )
    assert data == buf.getvalue()


def test_jpeg_rejects_float_and_reports_version():
    with pytest.raises(TypeError):
        jpeg_encode(torch.rand(3, 8, 8), 90)
    v = libjpeg_version()
    assert isinstance(v, str) and v


@pytest.mark.parametrize("strip_rows", [1, 7, 64, 500])
@pytest.mark.parametrize("shape", [(1, 1, 40, 37), (2, 3, 75, 29)])
def test_ssim_strips_are_bit_identical_to_one_pass(strip_rows, shape):
    """The strip-wise SSIM (the default, for speed) gives exactly the one-pass numbers, for
    strips that do not divide the rows evenly and for a strip taller than the image."""
    from irnbench.metrics import _ssim_per_channel

    gen = torch.Generator().manual_seed(3)
    a = torch.rand(shape, generator=gen, dtype=torch.float64) * 255
    b = (a + 20 * torch.randn(shape, generator=gen, dtype=torch.float64)).clamp(0, 255)
    whole = _ssim_per_channel(a, b, strip_rows=0)
    assert torch.equal(_ssim_per_channel(a, b, strip_rows=strip_rows), whole)
    assert whole.shape == shape[:2]


def test_fidelity_equals_the_four_metric_calls():
    """``fidelity`` prepares each image once per colour space and gives psnr/ssim's numbers."""
    from irnbench.metrics import fidelity

    gen = torch.Generator().manual_seed(5)
    hr = torch.rand(1, 3, 40, 44, generator=gen)
    out = (hr + 0.03 * torch.randn(1, 3, 40, 44, generator=gen)).clamp(0, 1)
    want = {f"{m}_{space}": float(fn(hr, out, 2, y_channel=space == "y")[0])
            for space in ("y", "rgb") for m, fn in (("psnr", psnr), ("ssim", ssim))}
    assert fidelity(hr, out, 2) == want
    assert list(fidelity(hr, out, 2)) == ["psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb"]
