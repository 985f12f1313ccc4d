"""Full-reference metrics under the IRN paper's protocol (pure functions).

Both images are converted to uint8 (clamp to [0, 1], ×255, round) as the official test code
does; the Y channel is BT.601 computed in float64 from the uint8 values and not re-rounded;
``crop_border`` pixels are cut from every side; PSNR = 20·log10(255/√MSE) per image; SSIM uses
an 11×11 Gaussian window (σ = 1.5) over the valid region, C1 = (0.01·255)², C2 = (0.03·255)²,
averaged over channels (BasicSR ``calculate_psnr`` / ``calculate_ssim``).

Optional perceptual metrics (LPIPS, …) go through pyiqa (the ``iqa`` extra): see ``iqa_metric``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import torch

from irnbench.errors import IrnbenchError
from irnbench.ops.color import rgb_to_y
from irnbench.protocol import PIXEL_MAX, SSIM_K1, SSIM_K2, SSIM_SIGMA, SSIM_WINDOW

__all__ = ["psnr", "ssim", "fidelity", "prepare_for_metric", "iqa_metric", "IQAUnavailable"]


def prepare_for_metric(x: torch.Tensor, crop_border: int, y_channel: bool) -> torch.Tensor:
    """uint8-round (float inputs in [0, 1]), optional Y conversion, border crop → float64 0..255."""
    if x.dtype == torch.uint8:
        v = x.to(torch.float64)
    else:
        # Round in the image's own float dtype (float32 for network outputs), as IRN's
        # tensor2img (float32 NumPy) and the channel's ``to_uint8`` do: a float64 product rounds
        # differently where x·255 lies within a float32 ulp of k + 0.5. Half precision is widened
        # to float32 first, as tensor2img's ``.float()`` does.
        v = x.detach()
        if v.dtype in (torch.float16, torch.bfloat16):
            v = v.float()
        v = (v.clamp(0, 1) * PIXEL_MAX).round().to(torch.float64)
    if y_channel and v.shape[-3] == 3:
        v = rgb_to_y(v)
    if crop_border:
        c = int(crop_border)
        v = v[..., c:-c, c:-c]
    return v


def _as_batch(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if x.dim() == 3:
        return x.unsqueeze(0), True
    if x.dim() != 4:
        raise ValueError(f"expected C×H×W or B×C×H×W, got shape {tuple(x.shape)}")
    return x, False


def _prepared_pair(
    x: torch.Tensor, y: torch.Tensor, crop_border: int, y_channel: bool
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Both images batched and prepared by the protocol; ``single`` when the input was C×H×W."""
    if x.shape != y.shape:
        raise ValueError(f"image shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    xb, single = _as_batch(x)
    yb, _ = _as_batch(y)
    a = prepare_for_metric(xb, crop_border, y_channel)
    return a, prepare_for_metric(yb, crop_border, y_channel), single


def psnr(
    x: torch.Tensor, y: torch.Tensor, crop_border: int = 0, y_channel: bool = True
) -> torch.Tensor | float:
    """PSNR in dB per image (tensor of shape ``B``; a float for a single ``C×H×W`` image)."""
    a, b, single = _prepared_pair(x, y, crop_border, y_channel)
    out = _psnr_prepared(a, b)
    return float(out[0]) if single else out


def _psnr_prepared(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    mse = ((a - b) ** 2).flatten(1).mean(dim=1)
    return 20.0 * torch.log10(PIXEL_MAX / torch.sqrt(mse))  # mse = 0 → inf, as BasicSR


@lru_cache(maxsize=4)
def _gaussian_1d(size: int, sigma: float) -> tuple[float, ...]:
    """cv2.getGaussianKernel(size, sigma); the 2-D window is its outer product with itself."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    return tuple((g / g.sum()).tolist())


def _filter_valid(t: torch.Tensor, g: tuple[float, ...]) -> torch.Tensor:
    """Correlate the last two dims with outer(g, g) over the valid region (no padding).

    Separable, as shifted in-place sums: the same numbers as a 2-D float64 conv to ~1e-14, but
    over 10x faster on CPU, where float64 conv2d has no fast path (a 2040×1356 Y SSIM: 25 s →
    1.9 s on 2 cores), and only about twice the image in memory.
    """
    k = len(g)
    h = t.shape[-2] - k + 1
    rows = t[..., 0:h, :] * g[0]
    for i in range(1, k):
        rows.add_(t[..., i : i + h, :], alpha=g[i])
    w = t.shape[-1] - k + 1
    out = rows[..., 0:w] * g[0]
    for i in range(1, k):
        out.add_(rows[..., i : i + w], alpha=g[i])
    return out


#: Output rows per strip of the SSIM maps: a strip's float64 intermediates stay in the CPU
#: cache. Each output value comes from the same operations in the same order as an unstripped
#: pass, so the result is bit-identical; 1.7–3x faster on CPU (``benchmarks/bench_ssim.py``).
SSIM_STRIP_ROWS = 64


def _ssim_map(a: torch.Tensor, b: torch.Tensor, g: tuple[float, ...]) -> torch.Tensor:
    """a, b: B×C×H×W float64 in [0, 255] → the SSIM map over the valid region."""
    c1 = (SSIM_K1 * PIXEL_MAX) ** 2
    c2 = (SSIM_K2 * PIXEL_MAX) ** 2
    mu1, mu2 = _filter_valid(a, g), _filter_valid(b, g)  # no padding: the valid region
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1 = _filter_valid(a * a, g) - mu1_sq
    s2 = _filter_valid(b * b, g) - mu2_sq
    s12 = _filter_valid(a * b, g) - mu12
    num = (2 * mu12 + c1) * (2 * s12 + c2)
    den = (mu1_sq + mu2_sq + c1) * (s1 + s2 + c2)
    return num / den


def _ssim_per_channel(a: torch.Tensor, b: torch.Tensor,
                      strip_rows: int = SSIM_STRIP_ROWS) -> torch.Tensor:
    """a, b: B×C×H×W float64 in [0, 255] → B×C mean SSIM over the valid region (computed in
    horizontal strips of ``strip_rows`` output rows; 0: in one pass)."""
    n, ch = a.shape[:2]
    g = _gaussian_1d(SSIM_WINDOW, SSIM_SIGMA)
    k = len(g)
    rows = a.shape[-2] - k + 1
    step = strip_rows if strip_rows > 0 else rows
    maps = [_ssim_map(a[..., top : top + step + k - 1, :], b[..., top : top + step + k - 1, :], g)
            for top in range(0, rows, step)]
    return torch.cat(maps, dim=-2).reshape(n, ch, -1).mean(dim=2)


def ssim(
    x: torch.Tensor, y: torch.Tensor, crop_border: int = 0, y_channel: bool = True
) -> torch.Tensor | float:
    """SSIM per image (mean over channels), BasicSR/MATLAB ``ssim_index`` protocol."""
    a, b, single = _prepared_pair(x, y, crop_border, y_channel)
    out = _ssim_prepared(a, b)
    return float(out[0]) if single else out


def _ssim_prepared(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if min(a.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(
            f"image too small for SSIM after cropping: {tuple(a.shape[-2:])} < {SSIM_WINDOW}"
        )
    return _ssim_per_channel(a, b).mean(dim=1)


def fidelity(x: torch.Tensor, y: torch.Tensor, crop_border: int = 0) -> dict[str, float]:
    """``psnr_y``, ``ssim_y``, ``psnr_rgb``, ``ssim_rgb`` of one image pair (the rescaling and
    compression protocol), each image prepared once per colour space; equal to four calls of
    ``psnr`` / ``ssim``."""
    scores = {}
    for space, y_channel in (("y", True), ("rgb", False)):
        a, b, _ = _prepared_pair(x, y, crop_border, y_channel)
        scores[f"psnr_{space}"] = float(_psnr_prepared(a, b)[0])
        scores[f"ssim_{space}"] = float(_ssim_prepared(a, b)[0])
    return scores


class IQAUnavailable(IrnbenchError):
    """pyiqa is not installed, or it could not load a metric's weights."""


def iqa_metric(name: str, device: str | torch.device = "cpu") -> Callable[..., torch.Tensor]:
    """A pyiqa metric (e.g. ``"lpips"``) as ``f(x, ref) -> per-image scores``.

    Needs the ``iqa`` extra (``pip install 'irnbench[iqa]'``). Metric weights are downloaded by
    pyiqa on first use; offline that fails, and this raises ``IQAUnavailable`` saying so.
    """
    try:
        import pyiqa  # noqa: PLC0415 - optional dependency
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise IQAUnavailable(
            f"metric {name!r} needs pyiqa: pip install 'irnbench[iqa]' (import failed: {exc})"
        ) from exc
    try:
        model = pyiqa.create_metric(name, device=torch.device(device), as_loss=False)
    except Exception as exc:  # noqa: BLE001 - pyiqa raises many kinds on download failure
        raise IQAUnavailable(
            f"pyiqa could not create metric {name!r} ({type(exc).__name__}: {exc}). Its weights "
            "download on first use: run once on a connected machine, or copy pyiqa's cache "
            "(~/.cache/torch/hub/pyiqa) here."
        ) from exc

    def score(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(x.clamp(0, 1).float(), ref.clamp(0, 1).float()).flatten()

    return score
