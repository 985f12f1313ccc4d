"""8-bit quantisation: exact at evaluation, differentiable surrogates for training."""

from __future__ import annotations

import math

import torch

from irnbench.protocol import PIXEL_MAX

__all__ = ["quantize", "to_uint8", "from_uint8", "straight_through_quantize", "soft_round_quantize"]


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1], scale by 255 and round to the nearest integer (uint8 tensor)."""
    return (x.detach().clamp(0, 1) * PIXEL_MAX).round().to(torch.uint8)


def from_uint8(x: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 tensor → float k/255."""
    return x.to(dtype) / PIXEL_MAX


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Non-differentiable clamp + round to k/255, in x's float dtype."""
    return (x.clamp(0, 1) * PIXEL_MAX).round() / PIXEL_MAX


class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # noqa: D401 - autograd API
        return quantize(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


class _SoftRound(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return quantize(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (1.0 - torch.cos(2.0 * math.pi * x))


def straight_through_quantize(x: torch.Tensor) -> torch.Tensor:
    """Round to k/255 forward; pass the gradient unchanged backward, clamped values included.

    This is IRN's ``Quantization`` module (pkuxmq/Invertible-Image-Rescaling).
    """
    return _StraightThrough.apply(x)


def soft_round_quantize(x: torch.Tensor) -> torch.Tensor:
    """Round forward; backward multiplies the gradient by (1 − cos 2πx), x the [0, 1] input.

    The derivative of x − sin(2πx)/2π, as written in the public CAR training port (MindSpore
    CAR); the period is applied to the [0, 1] value exactly as the port does.
    """
    return _SoftRound.apply(x)
