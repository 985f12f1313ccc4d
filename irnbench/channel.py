"""The lossy channel between a method's degrade and restore — owned by the harness.

At evaluation the degraded image is clamped and rounded to uint8 (and, where the task says so,
really JPEG-coded with Pillow) before ``restore`` sees it, so no method can carry information in
float precision. In training the same channel is differentiable: straight-through rounding by
default, soft-round when a method asks for it (CAR), and real JPEG forward with an identity
gradient (as the IRN code does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from irnbench.ops.jpeg import jpeg_roundtrip
from irnbench.ops.quantize import (
    from_uint8,
    soft_round_quantize,
    straight_through_quantize,
    to_uint8,
)

Quantizer = Literal["ste", "soft"]


@dataclass
class Transmission:
    """What came through the channel: ``y`` (float k/255), its uint8 form, bytes, info."""

    y: torch.Tensor
    y_u8: torch.Tensor
    sent_u8: torch.Tensor
    nbytes: list[int] | None = None
    info: dict[str, Any] = field(default_factory=dict)


def transmit(y: torch.Tensor, quality: int | None = None) -> Transmission:
    """Evaluation channel: clamp + round to uint8, then optionally JPEG at ``quality``.

    ``sent_u8`` is the method's own uint8 output (before the codec); ``y_u8``/``y`` is what
    arrives at ``restore``; ``info`` is passed to ``restore`` as keyword arguments.
    """
    sent = to_uint8(y)
    if quality is None:
        return Transmission(from_uint8(sent, y.dtype), sent, sent)
    decoded, sizes = jpeg_roundtrip(sent, int(quality))
    return Transmission(
        from_uint8(decoded, y.dtype), decoded, sent, sizes, {"quality": int(quality)}
    )


class _JpegIdentityGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, quality):
        decoded, _ = jpeg_roundtrip(to_uint8(x), int(quality))
        return from_uint8(decoded, x.dtype).to(x.device)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def train_channel(
    y: torch.Tensor, quantizer: Quantizer = "ste", quality: int | None = None
) -> torch.Tensor:
    """Differentiable channel for training (see module docstring)."""
    if quantizer == "ste":
        q = straight_through_quantize(y)
    elif quantizer == "soft":
        q = soft_round_quantize(y)
    else:
        raise ValueError(f"unknown quantizer {quantizer!r}; use 'ste' or 'soft'")
    if quality is not None:
        q = _JpegIdentityGrad.apply(q, int(quality))
    return q
