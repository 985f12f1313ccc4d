"""``InvRescaleNet``: IRN's invertible network, downsampling stages each followed by couplings.

×2^k: k Haar stages; ×3: one learnable ``ConvDownsampling(3)`` stage (IJCV). Written from
the ECCV/IJCV papers (official code: ``InvRescaleNet`` in ``Inv_arch.py``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .blocks import (
    ConvDownsampling,
    DenseBlock,
    HaarDownsampling,
    InvBlockExp,
    SubnetConstructor,
)

__all__ = ["InvRescaleNet", "DEFAULT_BLOCKS", "stage_factors", "downsampling"]

#: Official ``block_num`` per scale: ×2 [8], ×4 [8, 8] (ECCV); ×3 [12], ×8 [8, 8, 8] (IJCV).
DEFAULT_BLOCKS: dict[int, tuple[int, ...]] = {2: (8,), 3: (12,), 4: (8, 8), 8: (8, 8, 8)}


def stage_factors(scale: int) -> tuple[int, ...]:
    """Downsampling factor of each stage: (2,)·k for ×2^k (Haar), (3,) for ×3 (learnable)."""
    if scale == 3:
        return (3,)
    stages = round(math.log2(scale)) if scale > 1 else 0
    if scale < 2 or 2**stages != scale:
        raise ValueError(f"InvRescaleNet supports ×3 and power-of-two scales ≥ 2, got {scale}")
    return (2,) * stages


def downsampling(factor: int, channels: int) -> nn.Module:
    """The invertible C → factor²·C stage: fixed Haar for ×2, ``ConvDownsampling`` otherwise."""
    return HaarDownsampling(channels) if factor == 2 else ConvDownsampling(factor)


class InvRescaleNet(nn.Module):
    """For each stage: a downsampling (C → f²·C), then ``block_num[i]`` ``InvBlockExp``.

    The stages are ``HaarDownsampling`` (f = 2) for ×2/×4/×8 and one learnable
    ``ConvDownsampling(3)`` for ×3; ``operations`` holds them in forward order, as the official
    checkpoints' ``operations.N.*`` keys do. ``forward(x)`` maps B×3×H×W to B×(3·s²)×(H/s)×(W/s);
    channels 0–2 are the LR image y (the subband-major order keeps them first after every
    stage) and the rest is z.
    ``inverse(t)`` is the exact inverse (blocks in reverse order, each run with ``rev=True``).
    """

    def __init__(
        self,
        scale: int,
        block_num: tuple[int, ...] | list[int] | None = None,
        channels: int = 3,
        clamp: float = 1.0,
        subnet: SubnetConstructor = DenseBlock,
    ):
        super().__init__()
        factors = stage_factors(scale)
        if block_num is None:
            block_num = DEFAULT_BLOCKS.get(scale, (8,) * len(factors))
        if len(block_num) != len(factors):
            raise ValueError(
                f"×{scale} needs {len(factors)} entries in block_num, got {block_num}"
            )
        self.scale = scale
        self.channels = channels
        ops: list[nn.Module] = []
        c = channels
        for f, n in zip(factors, block_num, strict=True):
            ops.append(downsampling(f, c))
            c *= f * f
            ops.extend(InvBlockExp(c, channels, clamp, subnet) for _ in range(n))
        self.operations = nn.ModuleList(ops)
        self.out_channels = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.operations:
            x = op(x, rev=False)
        return x

    def inverse(self, t: torch.Tensor) -> torch.Tensor:
        for op in reversed(self.operations):
            t = op(t, rev=True)
        return t

    def logdet(self) -> torch.Tensor:
        """Sum of the last pass's per-op log-determinants (official code computes it; unused)."""
        dets = [op.last_logdet for op in self.operations if op.last_logdet is not None]
        return torch.stack(dets).sum() if dets else torch.zeros(())
