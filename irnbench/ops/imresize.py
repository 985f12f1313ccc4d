"""MATLAB-compatible bicubic ``imresize`` in batched, differentiable PyTorch.

Follows MATLAB's algorithm (``imresize.m``): Keys cubic with a = -0.5; when downscaling
the kernel is stretched by 1/scale (antialiasing); output index x (1-based) maps to input
coordinate u = x/scale + 0.5(1 - 1/scale); weights are normalised per output pixel; borders are
mirrored symmetrically (edge pixel repeated); output size = ceil(in * scale). Each dimension is
one matrix multiply with a precomputed (out x in) weight matrix, so the op is exact, batched and
differentiable. The output is float and not rounded.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

__all__ = ["imresize", "resize_matrix", "cubic"]


def cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    ax = x.abs()
    ax2 = ax * ax
    ax3 = ax2 * ax
    inner = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    outer = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return inner + outer


@lru_cache(maxsize=64)
def _resize_matrix64(in_len: int, out_len: int, scale: float, antialias: bool) -> torch.Tensor:
    kernel_width = 4.0
    stretch = antialias and scale < 1
    if stretch:
        kernel_width /= scale
    x = torch.arange(1, out_len + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = torch.floor(u - kernel_width / 2)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]  # 1-based
    distance = u[:, None] - indices
    weights = scale * cubic(distance * scale) if stretch else cubic(distance)
    weights = weights / weights.sum(dim=1, keepdim=True)
    # Symmetric padding: ..., 2, 1, 1, 2, ... (0-based: index i maps into [0..n-1, n-1..0]).
    mirror = torch.cat([torch.arange(in_len), torch.arange(in_len - 1, -1, -1)])
    idx0 = (indices.long() - 1) % (2 * in_len)
    cols = mirror[idx0]
    matrix = torch.zeros(out_len, in_len, dtype=torch.float64)
    matrix.scatter_add_(1, cols, weights)
    return matrix


def resize_matrix(
    in_len: int,
    out_len: int,
    scale: float,
    antialias: bool = True,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The (out_len x in_len) matrix that resizes one dimension as MATLAB ``imresize`` does."""
    # copy=True: the float64 matrix is cached, and callers must not be able to edit the cache.
    return _resize_matrix64(int(in_len), int(out_len), float(scale), bool(antialias)).to(
        dtype=dtype, device=device, copy=True
    )


def imresize(x: torch.Tensor, scale: float, antialias: bool = True) -> torch.Tensor:
    """Resize ``x`` (``B×C×H×W`` or ``C×H×W``) by ``scale`` with MATLAB bicubic semantics.

    ``scale`` < 1 downscales (antialiased, as MATLAB's default); the output size is
    ``ceil(H*scale) x ceil(W*scale)``. Float in, float out (no clamping, no rounding).
    """
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive finite number, got {scale}")
    squeeze = x.dim() == 3
    if squeeze:
        x = x.unsqueeze(0)
    if x.dim() != 4:
        raise ValueError(f"expected a B×C×H×W or C×H×W tensor, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError("imresize expects a floating-point tensor")
    h, w = x.shape[-2:]
    out_h = int(math.ceil(h * scale - 1e-9))
    out_w = int(math.ceil(w * scale - 1e-9))
    mh = resize_matrix(h, out_h, scale, antialias, x.dtype, x.device)
    mw = resize_matrix(w, out_w, scale, antialias, x.dtype, x.device)
    out = torch.matmul(mh, x)  # resize H first, as MATLAB does
    out = torch.matmul(out, mw.t())
    return out.squeeze(0) if squeeze else out
