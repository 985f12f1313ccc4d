"""IRN-Color's network (``InvGreyNet``): an invertible 1×1 colour transform and 8 couplings.

Written from the IJCV 2022 paper (official code: ``InvGreyNet`` in pkuxmq's IJCV repository,
``IRN_color_model.py``, ``train_IRN_color.yml``):

* a learnable invertible 1×1 convolution — a plain 3×3 matrix W (no bias, no LU factorisation),
  inverted with ``torch.inverse`` — initialised to RGB→YUV, rows
  (0.299, 0.587, 0.114), (−0.147, −0.289, 0.436), (0.615, −0.515, −0.100);
* then 8 ``InvBlockExp`` couplings with C = 3 and split 1 (DenseBlock subnets, gc = 32, clamp 1),
  shared with IRN (``irnbench_plugins.irn.blocks``); no spatial change.

Channel 0 of the output is the grey image, channels 1–2 are z. At initialisation every coupling is
the identity (zero-initialised last convs), so the grey image starts as the Y row of W — the luma
guide itself. Log-determinants are computed (the 1×1 transform's as H·W·log|det W| per sample,
as in Glow: not stated in the paper, so this follows the Glow convention the paper builds on)
and, as everywhere in the IRN family, no loss uses them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from irnbench_plugins.irn.blocks import DenseBlock, InvBlockExp

__all__ = ["RGB_TO_YUV", "InvertibleConv1x1", "InvGreyNet"]

#: Initial value of the 1×1 transform: RGB → YUV (rows Y, U, V), from the official code.
RGB_TO_YUV: tuple[tuple[float, float, float], ...] = (
    (0.299, 0.587, 0.114),
    (-0.147, -0.289, 0.436),
    (0.615, -0.515, -0.100),
)


class InvertibleConv1x1(nn.Module):
    """Learnable invertible 1×1 convolution: out[:, i] = Σ_j W[i, j]·x[:, j]; inverse W⁻¹.

    W is stored as a plain C×C matrix (the official parameterisation); ``determinant`` reports
    det W so that training can be checked to keep it invertible.
    """

    def __init__(self, init: torch.Tensor | tuple[tuple[float, ...], ...] = RGB_TO_YUV):
        super().__init__()
        w = torch.as_tensor(init, dtype=torch.float32).clone()
        if w.dim() != 2 or w.shape[0] != w.shape[1]:
            raise ValueError(f"the 1x1 transform needs a square matrix, got {tuple(w.shape)}")
        self.weight = nn.Parameter(w)
        self.last_logdet: torch.Tensor | None = None

    @property
    def channels(self) -> int:
        return self.weight.shape[0]

    def determinant(self) -> torch.Tensor:
        """det W (a 0-dim tensor): far from zero while the transform stays invertible."""
        return torch.linalg.det(self.weight.detach())

    def forward(self, x: torch.Tensor, rev: bool = False) -> torch.Tensor:
        c = self.channels
        w = torch.inverse(self.weight) if rev else self.weight
        # Per-sample log|det| of the whole map: H·W copies of W (Glow); never used in a loss.
        logdet = x.shape[-2] * x.shape[-1] * torch.linalg.slogdet(self.weight.detach())[1]
        self.last_logdet = -logdet if rev else logdet
        return F.conv2d(x, w.reshape(c, c, 1, 1).to(x.dtype))


class InvGreyNet(nn.Module):
    """RGB B×3×H×W ↔ [grey | z] B×(1 + 2)×H×W: 1×1 transform, then ``blocks`` couplings."""

    #: Channels of the grey image (first) and of z (the rest).
    grey_channels = 1
    latent_channels = 2

    def __init__(self, blocks: int = 8, gc: int = 32, clamp: float = 1.0):
        super().__init__()
        self.conv = InvertibleConv1x1(RGB_TO_YUV)

        def subnet(cin: int, cout: int) -> nn.Module:
            return DenseBlock(cin, cout, gc=gc)

        self.blocks = nn.ModuleList(
            InvBlockExp(3, 1, clamp=clamp, subnet=subnet) for _ in range(blocks)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """RGB → [grey | z] (channel 0 is the grey image)."""
        out = self.conv(x)
        for block in self.blocks:
            out = block(out)
        return out

    def inverse(self, t: torch.Tensor) -> torch.Tensor:
        """[grey | z] → RGB, the exact inverse of ``forward``."""
        for block in reversed(self.blocks):
            t = block(t, rev=True)
        return self.conv(t, rev=True)
