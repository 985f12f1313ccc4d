"""Invertible blocks shared by the IRN family: Haar and learnable ×s downsampling, affine
coupling, DenseBlock.

Written from the ECCV 2020 paper (official code: ``Inv_arch.py`` and
``Subnet_constructor.py`` in ``codes/models/modules/`` of pkuxmq/Invertible-Image-Rescaling).
Every block has a forward (``rev=False``) and an exact inverse (``rev=True``). Log-determinants
are computed, as the official code does, but no loss uses them (official issues #20, #27); they
are kept only for inspection in ``last_logdet``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "HaarDownsampling", "ConvDownsampling", "DenseBlock", "InvBlockExp", "SubnetConstructor",
    "inference_layout", "nchw_inference",
]

#: ``subnet(channels_in, channels_out) -> nn.Module``: how couplings build F, G and H.
SubnetConstructor = Callable[[int, int], nn.Module]

# The four Haar filters as ±1 2x2 kernels over a block [[a, b], [c, d]]; the forward divides by 4.
_HAAR_KERNELS = (
    ((1.0, 1.0), (1.0, 1.0)),  # LL: a + b + c + d
    ((1.0, -1.0), (1.0, -1.0)),  # a − b + c − d (left column minus right)
    ((1.0, 1.0), (-1.0, -1.0)),  # a + b − c − d (top row minus bottom)
    ((1.0, -1.0), (-1.0, 1.0)),  # a − b − c + d (diagonal)
)


_channels_last_inference = True


def inference_layout(x: torch.Tensor) -> torch.Tensor:
    """``x`` in channels_last when it is a 4-D CPU tensor outside autograd, else unchanged.

    oneDNN's NHWC convolutions run IRN inference 1.3–1.8× faster (×4–×2) than the default
    NCHW layout on CPU inference (``benchmarks/bench_irn.py``); the values are equal up to fp32
    summation order (≈1e-5). Training keeps the default layout: there channels_last measured no
    faster (forward + backward), and the weights need no conversion either way.
    """
    if (_channels_last_inference and x.dim() == 4 and x.device.type == "cpu"
            and not torch.is_grad_enabled()):
        return x.contiguous(memory_format=torch.channels_last)
    return x


@contextmanager
def nchw_inference() -> Iterator[None]:
    """Run CPU inference in the default NCHW layout inside the block (the benchmarks' reference)."""
    global _channels_last_inference
    old, _channels_last_inference = _channels_last_inference, False
    try:
        yield
    finally:
        _channels_last_inference = old


class HaarDownsampling(nn.Module):
    """Fixed 2x2 Haar transform, C → 4C channels at half resolution, subband-major output order.

    Official code: a grouped stride-2 conv with ±1 filters divided by 4, stored as an
    ``nn.Parameter`` with ``requires_grad=False`` (so the 16·C weights count as frozen parameters),
    and outputs reordered so that channel ``k·C + c`` is subband ``k`` of input channel ``c``
    (channels ``0..C−1`` are the LL band). The inverse is the transposed conv with the same ±1
    weights and no 1/4, since the ±1 matrix satisfies HᵀH = 4I.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        kernel = torch.tensor(_HAAR_KERNELS).unsqueeze(1)  # 4×1×2×2
        # Grouped-conv layout: filter c·4 + k is subband k of input channel c.
        self.haar_weights = nn.Parameter(kernel.repeat(channels, 1, 1, 1), requires_grad=False)
        self.last_logdet: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, rev: bool = False) -> torch.Tensor:
        c = self.channels
        if not rev:
            b, _, h, w = x.shape
            out = F.conv2d(x, self.haar_weights, stride=2, groups=c) / 4.0  # B×(c·4+k)×h/2×w/2
            out = out.reshape(b, c, 4, h // 2, w // 2).transpose(1, 2)
            # log|det| per sample = (#input elements / 4)·log(1/16): det(H/4) = 1/16 per 2x2 block.
            self.last_logdet = self._logdet(x[0].numel(), x)
            return out.reshape(b, 4 * c, h // 2, w // 2)
        b, _, h, w = x.shape
        grouped = x.reshape(b, 4, c, h, w).transpose(1, 2).reshape(b, 4 * c, h, w)
        self.last_logdet = -self._logdet(x[0].numel(), x)
        return F.conv_transpose2d(grouped, self.haar_weights, stride=2, groups=c)

    @staticmethod
    def _logdet(numel: int, x: torch.Tensor) -> torch.Tensor:
        return torch.tensor(numel / 4.0 * math.log(1.0 / 16.0), dtype=x.dtype, device=x.device)


class ConvDownsampling(nn.Module):
    """Learnable invertible ×s downsampling (IRN ×3), C → s²·C channels, subband-major order.

    Official IJCV code (``ConvDownsampling``, ``Inv_arch.py``, pkuxmq/Invertible-Image-Rescaling):
    each s×s block of each channel (pixel-unshuffle order p) is mapped by one shared learnable
    s²×s² matrix W, out[k·C + c] = Σ_p W[k, p]·in[c·s² + p]; the inverse applies W⁻¹. W starts as
    the identity with row 0 the box average, so channels 0..C−1 start as the s×s box mean.
    """

    def __init__(self, scale: int):
        super().__init__()
        if scale < 2:
            raise ValueError(f"ConvDownsampling needs a scale ≥ 2, got {scale}")
        self.scale = scale
        weights = torch.eye(scale * scale)
        weights[0] = 1.0 / (scale * scale)
        self.conv_weights = nn.Parameter(weights)
        self.last_logdet: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, rev: bool = False) -> torch.Tensor:
        return self._reverse(x) if rev else self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """B×C×H×W → B×(s²·C)×H/s×W/s: pixel-unshuffle, W on every block, subband-major."""
        s, s2 = self.scale, self.scale * self.scale
        b, c, h, w = x.shape
        blocks = F.pixel_unshuffle(x, s).reshape(b, c, s2, h // s, w // s)
        out = torch.einsum("kp,bcphw->bkchw", self.conv_weights.to(x.dtype), blocks)
        self.last_logdet = self._logdet(x[0].numel() / s2)
        return out.reshape(b, s2 * c, h // s, w // s)

    def _reverse(self, x: torch.Tensor) -> torch.Tensor:
        """The exact inverse: undo the subband-major order, W⁻¹ on every block, pixel-shuffle."""
        s2 = self.scale * self.scale
        b, cs2, h, w = x.shape
        bands = x.reshape(b, s2, cs2 // s2, h, w)
        inv = self._inverse_weights(x.dtype)
        blocks = torch.einsum("pk,bkchw->bcphw", inv, bands).reshape(b, cs2, h, w)
        self.last_logdet = -self._logdet(x[0].numel() / s2)
        return F.pixel_shuffle(blocks, self.scale)

    def _inverse_weights(self, dtype: torch.dtype) -> torch.Tensor:
        """W⁻¹ as ``dtype``, inverted in float64 where the device has it (MPS has not): a
        float32 inverse alone adds ≈1e-6 to the round trip, and W⁻¹ amplifies errors ≈9×."""
        w = self.conv_weights
        exact = torch.float32 if w.device.type == "mps" else torch.float64
        return torch.inverse(w.to(exact)).to(dtype)

    def _logdet(self, n_blocks: float) -> torch.Tensor:
        """Per-sample log|det| = (number of s×s blocks)·log|det W| (computed, never a loss)."""
        return n_blocks * torch.linalg.slogdet(self.conv_weights.detach().float())[1]


class DenseBlock(nn.Module):
    """The coupling subnet ("DBNet", gc=32): five densely connected 3x3 convs, in → out channels.

    Official code: conv ``i`` sees the concatenation of the input and all earlier outputs;
    LeakyReLU(0.2) after conv1–4; conv1–4 Xavier-normal ×0.1 with zero bias; conv5 (no
    activation, no residual) zero-initialised, so every coupling starts as the identity.
    """

    def __init__(self, channels_in: int, channels_out: int, gc: int = 32, bias: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, gc, 3, 1, 1, bias=bias)
        self.conv2 = nn.Conv2d(channels_in + gc, gc, 3, 1, 1, bias=bias)
        self.conv3 = nn.Conv2d(channels_in + 2 * gc, gc, 3, 1, 1, bias=bias)
        self.conv4 = nn.Conv2d(channels_in + 3 * gc, gc, 3, 1, 1, bias=bias)
        self.conv5 = nn.Conv2d(channels_in + 4 * gc, channels_out, 3, 1, 1, bias=bias)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            nn.init.xavier_normal_(conv.weight)
            with torch.no_grad():
                conv.weight.mul_(0.1)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
        nn.init.zeros_(self.conv5.weight)
        if self.conv5.bias is not None:
            nn.init.zeros_(self.conv5.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        return self.conv5(torch.cat((x, x1, x2, x3, x4), 1))


class InvBlockExp(nn.Module):
    """Affine coupling with a sigmoid-clamped scale; the first ``split`` channels are additive.

    Official code (``channel_split_num`` = 3 for rescaling, 1 for IRN-Color), x = [x1 | x2]:
    y1 = x1 + F(x2); s = clamp·(2·sigmoid(H(y1)) − 1); y2 = x2·exp(s) + G(y1).
    F maps (C − split) → split, G and H map split → (C − split). ``subnet`` builds them
    (default: ``DenseBlock``). The clamp keeps s in (−clamp, clamp) — without it and the
    grad-norm clipping training explodes (official issues #24, #35).
    """

    #: Invert the scale as ``/ exp(s)`` instead of ``· exp(−s)`` (equal up to float rounding);
    #: subclasses that must match another code base bit for bit set it.
    divide_inverse = False

    def __init__(
        self,
        channels: int,
        split: int,
        clamp: float = 1.0,
        subnet: SubnetConstructor = DenseBlock,
    ):
        super().__init__()
        if not 0 < split < channels:
            raise ValueError(f"split must be in 1..{channels - 1}, got {split}")
        self.split_len1 = split
        self.split_len2 = channels - split
        self.clamp = clamp
        self.F = subnet(self.split_len2, self.split_len1)
        self.G = subnet(self.split_len1, self.split_len2)
        self.H = subnet(self.split_len1, self.split_len2)
        self.last_logdet: torch.Tensor | None = None

    def _scale(self, y1: torch.Tensor) -> torch.Tensor:
        return self.clamp * (torch.sigmoid(self.H(y1)) * 2 - 1)

    def forward(self, x: torch.Tensor, rev: bool = False) -> torch.Tensor:
        x = inference_layout(x)
        x1, x2 = x.split((self.split_len1, self.split_len2), dim=1)
        if not rev:
            y1 = x1 + self.F(x2)
            s = self._scale(y1)
            y2 = x2 * torch.exp(s) + self.G(y1)
            sign = 1.0
        else:  # here x = [y1 | y2]
            y1, y2 = x1, x2
            s = self._scale(y1)
            if self.divide_inverse:
                x2 = (y2 - self.G(y1)) / torch.exp(s)
            else:
                x2 = (y2 - self.G(y1)) * torch.exp(-s)
            x1 = y1 - self.F(x2)
            sign = -1.0
        # Official code: per-block log-det = sum(s) / B; computed, never used in a loss.
        self.last_logdet = sign * s.detach().sum() / s.shape[0]
        return torch.cat((y1, y2), 1) if not rev else torch.cat((x1, x2), 1)
