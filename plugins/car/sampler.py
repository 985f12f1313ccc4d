"""CAR's adaptive grid sampler in pure PyTorch (no CUDA extension), differentiable everywhere.

Written from CAR (IEEE TIP 2020; sunwj/CAR: the forward math of the released CUDA kernel). For every
LR pixel (i, j) and tap t = a·k + b of its k×k kernel (a, b ∈ 0..k−1, p = k // 2), on the HR
image reflection-padded by p (size Hp × Wp)::

    x = (j + 0.5)·s − 0.5 + b + u·Δx[t, i, j]      y = (i + 0.5)·s − 0.5 + a + u·Δy[t, i, j]
    x0 = floor(x), α = x − x0, xL = clamp(x0, 0, Wp − 1), xR = clamp(xL + 1, 0, Wp − 1)
    (likewise β, yT, yB from y)
    v_t = (1−α)(1−β)·I[yT, xL] + α(1−β)·I[yT, xR] + (1−α)β·I[yB, xL] + αβ·I[yB, xR]
    LR[c, i, j] = Σ_t K[t, i, j] · v_t

with s the scale and u the offset unit (= s in CAR). The edge rule is the CUDA kernel's, not
``grid_sample``'s: α and β come from the *unclamped* coordinate while the indices are clamped and
xR/yB are derived from the clamped xL/yT — so a tap at x = −0.3 blends I[0] (weight 0.3) and I[1]
(weight 0.7). The same K and offsets serve every colour channel.

Memory is bounded by processing the taps in chunks (k² = 169 at ×4): each chunk gathers its four
neighbours from the flattened padded image and adds its weighted sum to the output, so at most
``chunk_taps`` taps are materialised at once. Autograd (``gather`` / arithmetic) gives gradients
with respect to the image, the kernels and the offsets (through α and β; ``floor`` has zero
gradient, as the sampler is piecewise bilinear in the offsets). Under autograd the saved tensors of
every chunk are kept for the backward pass, so chunking bounds inference memory, not training
memory.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["adaptive_grid_sample", "DEFAULT_CHUNK_ELEMENTS"]

#: Auto chunking keeps B·C·taps·h·w of one gathered neighbour tensor below this many elements.
DEFAULT_CHUNK_ELEMENTS = 1 << 22


def adaptive_grid_sample(
    img: torch.Tensor,
    kernels: torch.Tensor,
    offsets_h: torch.Tensor,
    offsets_v: torch.Tensor,
    scale: int,
    offset_unit: float | None = None,
    chunk_taps: int | None = None,
) -> torch.Tensor:
    """Downscale ``img`` (B×C×H×W) with per-LR-pixel kernels and offsets.

    ``kernels``, ``offsets_h`` (Δx, horizontal) and ``offsets_v`` (Δy, vertical) are B×k²×h×w
    with h = H // scale and w = W // scale; offsets are in units of ``offset_unit`` HR pixels
    (default: ``scale``, as in CAR). ``chunk_taps`` taps are processed at a time (default: as
    many as keep one gathered tensor under ``DEFAULT_CHUNK_ELEMENTS`` elements). Returns B×C×h×w.
    """
    if img.dim() != 4 or kernels.dim() != 4:
        raise ValueError("img and kernels must be 4-D (B×C×H×W, B×k²×h×w)")
    b, c, hh, ww = img.shape
    k2, h, w = kernels.shape[1:]
    k = math.isqrt(k2)
    if k * k != k2 or k % 2 == 0:
        raise ValueError(f"kernels need an odd square number of taps, got {k2}")
    if (h, w) != (hh // scale, ww // scale) or kernels.shape[0] != b:
        raise ValueError(
            f"kernel grid {tuple(kernels.shape)} does not fit image {tuple(img.shape)} at ×{scale}"
        )
    if offsets_h.shape != kernels.shape or offsets_v.shape != kernels.shape:
        raise ValueError("offsets must have the kernels' shape")
    p = k // 2
    if p >= min(hh, ww):
        raise ValueError(f"image {hh}×{ww} is too small for reflection padding by {p}")
    unit = float(scale if offset_unit is None else offset_unit)

    padded = F.pad(img, (p, p, p, p), mode="reflect") if p else img
    hp, wp = hh + 2 * p, ww + 2 * p
    flat = padded.reshape(b, c, hp * wp)
    dtype, dev = img.dtype, img.device

    # Tap-independent parts of the coordinates (padded frame).
    base_y = ((torch.arange(h, device=dev, dtype=dtype) + 0.5) * scale - 0.5).view(1, 1, h, 1)
    base_x = ((torch.arange(w, device=dev, dtype=dtype) + 0.5) * scale - 0.5).view(1, 1, 1, w)
    taps = torch.arange(k2, device=dev)
    tap_a = (taps // k).to(dtype).view(1, k2, 1, 1)
    tap_b = (taps % k).to(dtype).view(1, k2, 1, 1)

    if chunk_taps is None:
        chunk_taps = max(1, DEFAULT_CHUNK_ELEMENTS // max(1, b * c * h * w))
    chunk_taps = max(1, min(int(chunk_taps), k2))

    out = img.new_zeros(b, c, h, w)
    for start in range(0, k2, chunk_taps):
        sl = slice(start, min(start + chunk_taps, k2))
        n = sl.stop - sl.start
        x = base_x + tap_b[:, sl] + unit * offsets_h[:, sl]  # B×n×h×w
        y = base_y + tap_a[:, sl] + unit * offsets_v[:, sl]
        x0, y0 = torch.floor(x), torch.floor(y)
        alpha, beta = (x - x0).unsqueeze(1), (y - y0).unsqueeze(1)  # B×1×n×h×w
        xl = x0.long().clamp(0, wp - 1)
        xr = (xl + 1).clamp(0, wp - 1)
        yt = y0.long().clamp(0, hp - 1)
        yb = (yt + 1).clamp(0, hp - 1)

        def pick(yi: torch.Tensor, xi: torch.Tensor, n: int = n) -> torch.Tensor:
            idx = (yi * wp + xi).reshape(b, 1, -1).expand(b, c, -1)
            return flat.gather(2, idx).reshape(b, c, n, h, w)

        v = ((1 - alpha) * (1 - beta)) * pick(yt, xl)
        v = v + (alpha * (1 - beta)) * pick(yt, xr)
        v = v + ((1 - alpha) * beta) * pick(yb, xl)
        v = v + (alpha * beta) * pick(yb, xr)
        out = out + (kernels[:, sl].unsqueeze(1) * v).sum(2)
    return out
