"""The lossy channel between a method's degrade and restore — owned by the harness.

At evaluation the degraded image is clamped and rounded to uint8 (and, where the task says so,
really JPEG- or WebP-coded with Pillow) before ``restore`` sees it, so no method can carry
information in float precision. In training the same channel is differentiable: straight-through
rounding by default, soft-round when a method asks for it (CAR), and the real codec forward with
an identity gradient (as the IRN code does for JPEG).
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
from irnbench.ops.webp import webp_roundtrip

Quantizer = Literal["ste", "soft"]

#: The codecs of the channel: name (the results' ``codec`` column) → label in tables.
CODECS: dict[str, str] = {"jpeg": "JPEG", "webp": "WebP"}
#: A condition with a quality but no codec is JPEG (results written before WebP existed).
DEFAULT_CODEC = "jpeg"
_ROUNDTRIP = {"jpeg": jpeg_roundtrip, "webp": webp_roundtrip}


def check_codec(codec: str | None) -> str:
    """A codec name of ``CODECS`` (``None``: ``DEFAULT_CODEC``); ValueError for another."""
    codec = DEFAULT_CODEC if codec is None else str(codec).lower()
    if codec not in _ROUNDTRIP:
        raise ValueError(f"unknown codec {codec!r}; use one of {', '.join(CODECS)}")
    return codec


def condition_codec(condition: dict[str, Any]) -> str | None:
    """The codec a channel condition runs (``None``: the plain uint8 channel, no quality)."""
    if condition.get("quality") is None:
        return None
    return check_codec(condition.get("codec"))


def codec_roundtrip(batch_u8: torch.Tensor, quality: int, codec: str | None = None
                    ) -> tuple[torch.Tensor, list[int]]:
    """Code a uint8 batch with ``codec`` (default JPEG) at ``quality``: decoded batch, bytes."""
    return _ROUNDTRIP[check_codec(codec)](batch_u8, int(quality))


@dataclass
class Transmission:
    """What came through the channel: ``y`` (float k/255), its uint8 form, bytes, info."""

    y: torch.Tensor
    y_u8: torch.Tensor
    sent_u8: torch.Tensor
    nbytes: list[int] | None = None
    info: dict[str, Any] = field(default_factory=dict)


def transmit(y: torch.Tensor, quality: int | None = None, codec: str | None = None
             ) -> Transmission:
    """Evaluation channel: clamp + round to uint8, then optionally ``codec`` (default JPEG)
    at ``quality``.

    ``sent_u8`` is the method's own uint8 output (before the codec); ``y_u8``/``y`` is what
    arrives at ``restore``; ``info`` (quality and codec) is passed to ``restore`` as keyword
    arguments.
    """
    sent = to_uint8(y)
    if quality is None:
        return Transmission(from_uint8(sent, y.dtype), sent, sent)
    codec = check_codec(codec)
    decoded, sizes = codec_roundtrip(sent, int(quality), codec)
    return Transmission(
        from_uint8(decoded, y.dtype), decoded, sent, sizes,
        {"quality": int(quality), "codec": codec},
    )


class _CodecIdentityGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, quality, codec):
        decoded, _ = codec_roundtrip(to_uint8(x), int(quality), codec)
        return from_uint8(decoded, x.dtype).to(x.device)

    @staticmethod
    def backward(ctx, grad):
        return grad, None, None


def train_channel(
    y: torch.Tensor, quantizer: Quantizer = "ste", quality: int | None = None,
    codec: str | None = None,
) -> torch.Tensor:
    """Differentiable channel for training (see module docstring); ``codec`` default JPEG."""
    if quantizer == "ste":
        q = straight_through_quantize(y)
    elif quantizer == "soft":
        q = soft_round_quantize(y)
    else:
        raise ValueError(f"unknown quantizer {quantizer!r}; use 'ste' or 'soft'")
    if quality is not None:
        q = _CodecIdentityGrad.apply(q, int(quality), check_codec(codec))
    return q
