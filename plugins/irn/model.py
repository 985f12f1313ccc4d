"""``InvRescaleNet``: IRN's invertible network, ×s = 2^k Haar stages each followed by couplings.

Written from REFERENCE.md Part A §1 (official code: ``InvRescaleNet`` in ``Inv_arch.py``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .blocks import DenseBlock, HaarDownsampling, InvBlockExp, SubnetConstructor

__all__ = ["InvRescaleNet", "DEFAULT_BLOCKS"]

#: Official ``block_num`` per scale: ×2 [8], ×4 [8, 8], ×8 [8, 8, 8] (IJCV).
DEFAULT_BLOCKS: dict[int, tuple[int, ...]] = {2: (8,), 4: (8, 8), 8: (8, 8, 8)}


class InvRescaleNet(nn.Module):
    """For each stage: ``HaarDownsampling(C)`` (C → 4C), then ``block_num[i]`` ``InvBlockExp``.

    ``forward(x)`` maps B×3×H×W to B×(3·s²)×(H/s)×(W/s); channels 0–2 are the LR image y (the
    subband-major Haar order keeps them first after every stage) and the rest is z.
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
        stages = round(math.log2(scale)) if scale > 1 else 0
        if scale < 2 or 2**stages != scale:
            raise ValueError(f"InvRescaleNet needs a power-of-two scale ≥ 2, got {scale}")
        if block_num is None:
            block_num = DEFAULT_BLOCKS.get(scale, (8,) * stages)
        if len(block_num) != stages:
            raise ValueError(f"×{scale} needs {stages} entries in block_num, got {block_num}")
        self.scale = scale
        self.channels = channels
        ops: list[nn.Module] = []
        c = channels
        for n in block_num:
            ops.append(HaarDownsampling(c))
            c *= 4
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
