"""Colour conversions used by the protocol (BT.601 luma, decolorization guide)."""

from __future__ import annotations

import torch

from irnbench.protocol import GREY_WEIGHTS, PIXEL_MAX, Y_OFFSET, Y_WEIGHTS

__all__ = ["rgb_to_y", "rgb_to_grey", "grey_to_rgb"]


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """BT.601 Y ("MATLAB rgb2ycbcr") of RGB in [0, 255] → Y in [16, 235], float, not rounded.

    Accepts ``B×3×H×W`` or ``3×H×W``; returns the same rank with one channel.
    """
    cdim = -3
    if x.shape[cdim] != 3:
        raise ValueError(f"rgb_to_y needs 3 channels, got shape {tuple(x.shape)}")
    w = torch.tensor(Y_WEIGHTS, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return Y_OFFSET + (x * w).sum(dim=cdim, keepdim=True) / PIXEL_MAX


def rgb_to_grey(x: torch.Tensor) -> torch.Tensor:
    """Decolorization guide 0.299R + 0.587G + 0.114B (float, same range as the input)."""
    if x.shape[-3] != 3:
        raise ValueError(f"rgb_to_grey needs 3 channels, got shape {tuple(x.shape)}")
    w = torch.tensor(GREY_WEIGHTS, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x * w).sum(dim=-3, keepdim=True)


def grey_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Replicate a one-channel image to three channels."""
    return x.expand(*x.shape[:-3], 3, *x.shape[-2:])
