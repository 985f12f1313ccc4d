"""T-IRN and T-SAIN: IRN and SAIN rebuilt from tri-branch invertible blocks in YCbCr.

Written from the AAAI 2025 paper (Bao et al., "Plug-and-Play Tri-Branch Invertible Block for
Image Rescaling", arXiv 2412.13508) and the official code (github.com/Jingwei-Bao/T-InvBlocks,
classes ``TIRN_2``, ``TIRN_4``, ``TSAIN_2``, ``TSAIN_4`` and ``threeCInvBlock``). Where the
paper and the code differ, this follows the code (see ``TriBranchRescaleNet``). Module names
follow the official state dict, so a released checkpoint loads under its own key names.
"""

from __future__ import annotations

import torch
from torch import nn

from irnbench_plugins.irn.blocks import (
    DenseBlock,
    HaarDownsampling,
    SubnetConstructor,
    inference_layout,
)

__all__ = [
    "TriBranchInvBlock", "TriBranchRescaleNet", "TIRN", "TSAIN", "rgb_to_ycbcr",
    "ycbcr_to_rgb", "enter_ycbcr", "leave_ycbcr", "TIRN_BLOCKS", "TSAIN_BLOCKS",
]

#: Official blocks per Haar stage, per scale (TIRN_2.yml: e_blocks 3; TIRN_4.yml: e 3, v 4).
TIRN_BLOCKS: dict[int, tuple[int, ...]] = {2: (3,), 4: (3, 4)}
#: Official (blocks per Haar stage, comp blocks) per scale (TSAIN_2.yml: e 3, v 1;
#: TSAIN_4.yml: e 3, v 3, f 2).
TSAIN_BLOCKS: dict[int, tuple[tuple[int, ...], int]] = {2: ((3,), 1), 4: ((3, 3), 2)}


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """B×3×H×W RGB → [Y, Cb, Cr]: full-range BT.601 (JFIF) with the official code's rounded
    coefficients, on [0, 1] values; not clamped."""
    r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 0.5
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 0.5
    return torch.cat((y, cb, cr), 1)


def ycbcr_to_rgb(ycbcr: torch.Tensor) -> torch.Tensor:
    """B×3×H×W [Y, Cb, Cr] → RGB with the official rounded coefficients, clamped to [0, 1].

    The clamp is part of the official conversion and every use of it clamps; the rounded
    coefficients are not an exact inverse of ``rgb_to_ycbcr`` (≈6e-7), as in the official code.
    """
    y, cb, cr = ycbcr[:, 0:1], ycbcr[:, 1:2] - 0.5, ycbcr[:, 2:3] - 0.5
    r = y + 1.402 * cr
    g = y - 0.344136 * cb - 0.714136 * cr
    b = y + 1.772 * cb
    return torch.cat((r, g, b), 1).clamp(0, 1)


def enter_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """Haar layout [R, G, B | rest] → block layout [Cb, Cr | rest | Y] (LL subband converted)."""
    ycc = rgb_to_ycbcr(x[:, :3])
    return torch.cat((ycc[:, 1:3], x[:, 3:], ycc[:, :1]), 1)


def _rgb_of(x: torch.Tensor) -> torch.Tensor:
    """The clamped RGB of block layout [Cb, Cr | rest | Y]."""
    return ycbcr_to_rgb(torch.cat((x[:, -1:], x[:, :2]), 1))


def leave_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """Block layout [Cb, Cr | rest | Y] → Haar layout [R, G, B | rest], the RGB clamped."""
    return torch.cat((_rgb_of(x), x[:, 2:-1]), 1)


class TriBranchInvBlock(nn.Module):
    """The tri-branch invertible block (official ``threeCInvBlock``) on [Cb, Cr | hf | Y].

    x1 = chroma (2 ch), x2 = high frequencies (C − 3 ch), x3 = luma (1 ch). Forward:
    y1 = x1 + E(x3) + F(x2); s = clamp·(2·sigmoid(H(y1)) − 1); y3 = x3 + K(y1) + L(x2);
    t = clamp·(2·sigmoid(J(y3)) − 1); y2 = x2·exp(s + t) + G(y1) + I(y3). The inverse undoes
    these in reverse order, dividing by exp(s + t) as the official code does.
    """

    def __init__(self, channels: int, clamp: float = 1.0, subnet: SubnetConstructor = DenseBlock):
        super().__init__()
        if channels < 4:
            raise ValueError(f"a tri-branch block needs ≥ 4 channels, got {channels}")
        self.split = (2, channels - 3, 1)
        self.clamp = clamp
        hf = channels - 3
        self.E = subnet(1, 2)
        self.F = subnet(hf, 2)
        self.G = subnet(2, hf)
        self.H = subnet(2, hf)
        self.I = subnet(1, hf)
        self.J = subnet(1, hf)
        self.K = subnet(2, 1)
        self.L = subnet(hf, 1)

    def _scale(self, v: torch.Tensor) -> torch.Tensor:
        return self.clamp * (torch.sigmoid(v) * 2 - 1)

    def forward(self, x: torch.Tensor, rev: bool = False) -> torch.Tensor:
        x = inference_layout(x)
        a, b, c = x.split(self.split, dim=1)
        if not rev:  # a, b, c = x1 (chroma), x2 (high frequencies), x3 (luma)
            y1 = a + self.E(c) + self.F(b)
            s = self._scale(self.H(y1))
            y3 = c + self.K(y1) + self.L(b)
            t = self._scale(self.J(y3))
            y2 = b * torch.exp(s + t) + self.G(y1) + self.I(y3)
            return torch.cat((y1, y2, y3), 1)
        s = self._scale(self.H(a))  # a, b, c = y1, y2, y3
        t = self._scale(self.J(c))
        x2 = (b - self.G(a) - self.I(c)) / torch.exp(s + t)
        x3 = c - self.K(a) - self.L(x2)
        x1 = a - self.F(x2) - self.E(x3)
        return torch.cat((x1, x2, x3), 1)


class TriBranchRescaleNet(nn.Module):
    """Haar stages of tri-branch blocks in YCbCr, then optional SAIN-style comp blocks.

    Stage i: leave YCbCr (i > 0; clamped RGB), Haar, enter YCbCr, ``stage_blocks[i]`` blocks.
    Stage 1 is ``haar_operations`` / ``down_operations``, stage 2 ``haar_operations_2`` /
    ``down_operations_2`` (official names). ``forward(x)`` returns (first output, LR) as the
    official code does: LR is the clamped RGB of the last stage's output. T-IRN's first output
    is the raw block layout; T-SAIN's comp blocks continue from that layout and its first
    output is [LR̂ | block-layout channels 3…C−1] (LR̂ their clamped RGB; training only).
    ``inverse(t)``, t = [LR | z] (z = 0 at test time), reverses comp blocks, then each stage
    (blocks, leave with the clamp, inverse Haar, enter again before an earlier stage) and
    returns the 3-channel HR, not clamped.
    These details follow the official code, which decides wherever it and the paper could
    differ: the rounded BT.601 coefficients; a [0, 1] clamp on every YCbCr→RGB step, also
    between the ×4 stages and in the inverse; T-SAIN's LR taken before its comp blocks; z = 0
    at test time. The inverse forms no LR reconstruction (T-SAIN's code makes one for training).
    """

    def __init__(
        self,
        stage_blocks: tuple[int, ...] | list[int],
        comp_blocks: int = 0,
        channels: int = 3,
        clamp: float = 1.0,
        subnet: SubnetConstructor = DenseBlock,
    ):
        super().__init__()
        if not 1 <= len(stage_blocks) <= 2 or channels != 3:
            raise ValueError("tri-branch nets have 1 or 2 Haar stages (×2, ×4) on RGB input, "
                             f"got stages {tuple(stage_blocks)}, channels {channels}")
        self.scale = 2 ** len(stage_blocks)
        self.channels = channels
        c = channels
        for i, n in enumerate(stage_blocks):
            suffix = "" if i == 0 else f"_{i + 1}"
            setattr(self, "haar_operations" + suffix, nn.ModuleList([HaarDownsampling(c)]))
            c *= 4
            setattr(self, "down_operations" + suffix, nn.ModuleList(
                TriBranchInvBlock(c, clamp, subnet) for _ in range(n)))
        if comp_blocks:
            self.comp_operations = nn.ModuleList(
                TriBranchInvBlock(c, clamp, subnet) for _ in range(comp_blocks))
        self.stages = len(stage_blocks)
        self.out_channels = c
        #: Channels of z in ``inverse``'s input [LR | z]: 3·(s² − 1).
        self.latent_channels = c - channels

    def _stage(self, i: int) -> tuple[nn.ModuleList, nn.ModuleList]:
        suffix = "" if i == 0 else f"_{i + 1}"
        return getattr(self, "haar_operations" + suffix), getattr(self, "down_operations" + suffix)

    def _comp(self) -> nn.ModuleList:
        return getattr(self, "comp_operations", nn.ModuleList())

    def _down(self, x: torch.Tensor) -> torch.Tensor:
        """Every Haar stage and its blocks: the last stage's output in block layout."""
        for i in range(self.stages):
            haars, blocks = self._stage(i)
            if i > 0:
                x = leave_ycbcr(x)
            for op in haars:
                x = op(x)
            x = enter_ycbcr(x)
            for op in blocks:
                x = op(x)
        return x

    def downscale(self, x: torch.Tensor) -> torch.Tensor:
        """The transmitted LR alone: ``forward(x)[1]`` without T-SAIN's comp blocks, whose
        output only training reads."""
        return _rgb_of(self._down(x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self._down(x)
        lr = _rgb_of(x)
        comp = self._comp()
        if len(comp) == 0:
            return x, lr
        for op in comp:
            x = op(x)
        return torch.cat((_rgb_of(x), x[:, 3:]), 1), lr

    def inverse(self, t: torch.Tensor) -> torch.Tensor:
        x = enter_ycbcr(t)
        for op in reversed(self._comp()):
            x = op(x, rev=True)
        for i in reversed(range(self.stages)):
            haars, blocks = self._stage(i)
            if i < self.stages - 1:
                x = enter_ycbcr(x)
            for op in reversed(blocks):
                x = op(x, rev=True)
            x = leave_ycbcr(x)
            for op in reversed(haars):
                x = op(x, rev=True)
        return x

    def upscale(self, lr: torch.Tensor) -> torch.Tensor:
        """The test-time HR of ``lr`` (B×3×h×w): the inverse of [lr | 0], as the official code."""
        b, _, h, w = lr.shape
        z = lr.new_zeros(b, self.latent_channels, h, w)
        return self.inverse(torch.cat((lr, z), 1))


class TIRN(TriBranchRescaleNet):
    """T-IRN ×2 / ×4 (official ``TIRN_2`` / ``TIRN_4``): 3 blocks at 12 channels, and for ×4
    4 more at 48 channels after a second Haar stage."""

    def __init__(self, scale: int, clamp: float = 1.0, subnet: SubnetConstructor = DenseBlock):
        if scale not in TIRN_BLOCKS:
            raise ValueError(f"T-IRN exists for ×2 and ×4, got ×{scale}")
        super().__init__(TIRN_BLOCKS[scale], 0, clamp=clamp, subnet=subnet)


class TSAIN(TriBranchRescaleNet):
    """T-SAIN ×2 / ×4 (official ``TSAIN_2`` / ``TSAIN_4``): T-IRN-like stages (×2: 3 blocks;
    ×4: 3 + 3) whose LR is transmitted, then comp blocks (×2: 1, ×4: 2) for training."""

    def __init__(self, scale: int, clamp: float = 1.0, subnet: SubnetConstructor = DenseBlock):
        if scale not in TSAIN_BLOCKS:
            raise ValueError(f"T-SAIN exists for ×2 and ×4, got ×{scale}")
        stages, comp = TSAIN_BLOCKS[scale]
        super().__init__(stages, comp, clamp=clamp, subnet=subnet)
