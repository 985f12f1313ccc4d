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
import platform
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from irnbench.ops import winograd

__all__ = [
    "HaarDownsampling", "ConvDownsampling", "DenseBlock", "DenseBlockReference", "InvBlockExp",
    "SubnetConstructor", "inference_layout", "nchw_inference",
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
    """Run CPU inference in the default NCHW layout inside the block, and ``DenseBlock`` as the
    plain forward (the official network's computation: the benchmarks' reference)."""
    global _channels_last_inference
    old, _channels_last_inference = _channels_last_inference, False
    try:
        yield
    finally:
        _channels_last_inference = old


# -- DenseBlock's CPU inference path ---------------------------------------------------------------
#: The first ``_PREFIX`` feature maps of a DenseBlock (x, x1, …; 1–4) are concatenated once, as
#: the plain forward does, and read as one piece; later maps are read alone. 2 and 3 measured
#: alike, 1 (x alone: many convs of 3 input channels) and 4 slower.
_PREFIX = 2


def _fast_inference(x: torch.Tensor) -> bool:
    """Whether ``DenseBlock`` runs its inference path: CPU fp32 outside autograd, autocast,
    tracing and compilation, with the Winograd kernel or PyTorch's oneDNN ops, unless
    ``nchw_inference`` is active."""
    if not _channels_last_inference or torch.is_grad_enabled():
        return False
    if x.device.type != "cpu" or x.dtype != torch.float32 or x.dim() != 4:
        return False
    if torch.jit.is_tracing() or torch.jit.is_scripting() or _compiling():
        return False
    return not _autocast_cpu() and (winograd.available() or _onednn_ops())


def _compiling() -> bool:
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and hasattr(compiler, "is_compiling")
                and compiler.is_compiling())


def _autocast_cpu() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled()


_ONEDNN_OPS: bool | None = None


def _onednn_ops() -> bool:
    """oneDNN is built in and enabled, and its fused conv ops (the ones inductor uses, private
    to PyTorch) exist and compute what ``_conv`` and ``_conv_add_`` expect: checked once per
    process on a tiny conv, so that another PyTorch version falls back to the plain forward."""
    global _ONEDNN_OPS
    if _ONEDNN_OPS is None:
        ops = getattr(torch.ops, "mkldnn", None)
        _ONEDNN_OPS = (platform.machine().lower() in ("x86_64", "amd64")
                       and torch.backends.mkldnn.is_available()
                       and hasattr(ops, "_convolution_pointwise")
                       and hasattr(ops, "_convolution_pointwise_")
                       and _probe_onednn_ops())
    return _ONEDNN_OPS and torch.backends.mkldnn.enabled


def _probe_onednn_ops() -> bool:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 6, 7, generator=g).contiguous(memory_format=torch.channels_last)
    w, b = torch.randn(8, 5, 3, 3, generator=g), torch.randn(8, generator=g)
    try:
        with torch.no_grad():
            y = _conv(x, w, b, (1, 1), leaky=True)
            acc = _conv(x, w[..., :1, :], None, (0, 1), leaky=False)
            _conv_add_(acc, x, w[..., 2:, :], (0, 1))
            ok = (torch.allclose(y, F.leaky_relu(F.conv2d(x, w, b, padding=1), 0.2), atol=1e-4)
                  and torch.allclose(acc, F.conv2d(x, w[..., :1, :] + w[..., 2:, :],
                                                   padding=(0, 1)), atol=1e-4))
    except (RuntimeError, TypeError, NotImplementedError):
        return False
    return bool(ok)


def _conv(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None,
          padding: tuple[int, int], leaky: bool) -> torch.Tensor:
    """conv2d (stride 1) by oneDNN, LeakyReLU(0.2) fused when ``leaky``."""
    if leaky:
        return torch.ops.mkldnn._convolution_pointwise(
            x, w, bias, padding, (1, 1), (1, 1), 1, "leaky_relu", [0.2], "")
    return torch.ops.mkldnn._convolution_pointwise(
        x, w, bias, padding, (1, 1), (1, 1), 1, "none", [], "")


def _conv_add_(acc: torch.Tensor, x: torch.Tensor, w: torch.Tensor,
               padding: tuple[int, int]) -> torch.Tensor:
    """acc += conv2d(x, w) (stride 1, no bias), accumulated by oneDNN in place."""
    return torch.ops.mkldnn._convolution_pointwise_.binary(
        acc, x, w, None, padding, (1, 1), (1, 1), 1, "add", 1.0, None, [], None)


def _taps_as_channels(channels_out: int) -> tuple[bool, bool]:
    """Which kernel dims (rows, columns) of a 3x3 conv to ``channels_out`` run cheaper as output
    channels: oneDNN pads output channels to a multiple of 16 (measured: 1×1 for 3 outputs, 1×3
    for 9, the plain 3x3 for 32 or 45)."""
    if 9 * channels_out <= 32:
        return True, True
    return 3 * channels_out <= 32, False


def _taps_to_channels(w: torch.Tensor, fold: tuple[bool, bool]) -> torch.Tensor:
    """O×C×3×3 → (3·O)×C×1×3 (rows folded: channel r·O + o is kernel row r of output o) or
    (9·O)×C×1×1 (both: channel (3r + c)·O + o is tap (r, c))."""
    o, c = w.shape[:2]
    if fold[1]:
        return w.permute(2, 3, 0, 1).reshape(9 * o, c, 1, 1)
    return w.permute(2, 0, 1, 3).reshape(3 * o, c, 1, 3)


def _unfold_taps(z: torch.Tensor, fold: tuple[bool, bool]) -> torch.Tensor:
    """Sum the tap groups of ``z`` (see ``_taps_to_channels``), each shifted to its offset:
    out[h, w] = Σ z_(r, c)[h + r − 1, w + c − 1], zero outside the image (the conv's padding)."""
    rows = (0, 1, 2) if fold[0] else (1,)
    cols = (0, 1, 2) if fold[1] else (1,)
    o = z.shape[1] // (len(rows) * len(cols))
    h, w = z.shape[-2:]
    groups = {(r, c): z[:, g * o:(g + 1) * o] for g, (r, c) in
              enumerate((r, c) for r in rows for c in cols)}
    out = groups.pop((1, 1)).clone(memory_format=torch.channels_last)  # the centre, with bias
    for (r, c), tap in groups.items():
        dr, dc = r - 1, c - 1  # out[i, j] += tap[i + dr, j + dc] where both are inside
        out[:, :, max(0, -dr):h - max(0, dr), max(0, -dc):w - max(0, dc)] += (
            tap[:, :, max(0, dr):h - max(0, -dr), max(0, dc):w - max(0, -dc)])
    return out


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

    Training and every non-CPU or non-fp32 call run exactly that (``_forward_plain``). CPU fp32
    inference outside autograd runs ``_forward_inference``: the same sums without copying
    earlier feature maps, by Winograd F(2x2, 3x3) where the AVX-512 kernel is available
    (``irnbench.ops.winograd``), else by oneDNN over feature-map pieces; equal up to fp32
    rounding.
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
        self._plan: tuple[tuple, list] | None = None  # inference weights, not in the state dict

    def __getstate__(self) -> dict:
        """Pickling and ``copy.deepcopy`` leave out the cached inference weights."""
        return {**self.__dict__, "_plan": None}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _fast_inference(x):
            return self._forward_inference(x)
        return self._forward_plain(x)

    def _forward_plain(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        return self.conv5(torch.cat((x, x1, x2, x3, x4), 1))

    # -- CPU inference -------------------------------------------------------------------------
    def _forward_inference(self, x: torch.Tensor) -> torch.Tensor:
        if winograd.available():
            return self._forward_winograd(x)
        return self._forward_pieces(x)

    def _forward_winograd(self, x: torch.Tensor) -> torch.Tensor:
        """Each conv by Winograd F(2x2, 3x3) over the input and every earlier map read in
        place (the kernel takes them as pieces of one input): 16 multiplications per 2x2
        tile and channel pair instead of 36, and no concatenation."""
        feats = [x]
        for k, (w, bias) in enumerate(self._winograd_weights()):
            feats.append(winograd.conv3x3(feats, w, bias, 0.2 if k < 4 else None))
        return feats[-1]

    def _winograd_weights(self) -> list[tuple[winograd.WinogradWeights, torch.Tensor | None]]:
        """Per conv, its weights transformed for the pieces (x, x1, …) and its bias; cached
        like ``_inference_weights``."""
        key = ("winograd", *self._parameter_key())
        if self._plan is not None and self._plan[0] == key:
            return self._plan[1]
        cin, gc = self.conv1.in_channels, self.conv1.out_channels
        plan = []
        with torch.no_grad():
            for k, conv in enumerate((self.conv1, self.conv2, self.conv3, self.conv4, self.conv5)):
                bias = None if conv.bias is None else conv.bias.detach().float().contiguous()
                plan.append((winograd.transform_weights(conv.weight, (cin, *(gc,) * k)), bias))
        self._plan = (key, plan)
        return plan

    def _parameter_key(self) -> tuple:
        """Changes when a parameter does (its storage or its in-place version)."""
        return tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in self.parameters())

    def _forward_pieces(self, x: torch.Tensor) -> torch.Tensor:
        """The plain forward without its quadratic copying, in channels_last (oneDNN, CPU).

        The plain forward concatenates all earlier feature maps again for each conv (4·in + 320
        channels copied per block). A preallocated channels_last buffer does not avoid that: a
        channel slice of an NHWC tensor is not contiguous, and oneDNN copies every input it is
        given that is not. Here conv k sums convs over contiguous pieces instead: the first
        ``_PREFIX`` maps (x, x1, …) concatenated once, then each later map alone, with the
        weights split by input channel; oneDNN adds each piece's conv into the first one's
        output (its ``sum`` post-op), so nothing is copied again. conv5 with few output
        channels (3 or 9 in the IRN family), which oneDNN pads to 16, runs as a 1×1 or 1×3 conv
        whose output channels are the kernel's taps or rows, then shifted and added.
        """
        weights, fold = self._inference_weights()
        x = x.contiguous(memory_format=torch.channels_last)
        feats, prefix = [x], x
        for k, (ws, bias) in enumerate(weights):
            if k < _PREFIX:  # one piece: the concatenation of every earlier map, as in the plain
                src = x if k == 0 else torch.cat(feats, 1)
                pieces = [src]
                prefix = src
            else:
                pieces = [prefix, *feats[_PREFIX:]]
            pad = (1, 1) if k < 4 else (1 - fold[0], 1 - fold[1])
            if len(pieces) == 1:
                out = _conv(pieces[0], ws[0], bias, pad, leaky=k < 4)
            else:
                out = _conv(pieces[0], ws[0], bias, pad, leaky=False)
                for piece, w in zip(pieces[1:], ws[1:], strict=True):
                    _conv_add_(out, piece, w, pad)
                if k < 4:
                    F.leaky_relu_(out, 0.2)
            feats.append(out)
        return _unfold_taps(feats[-1], fold) if any(fold) else feats[-1]

    def _inference_weights(self) -> tuple[list[tuple[list[torch.Tensor], torch.Tensor | None]],
                                          tuple[bool, bool]]:
        """Per conv (weights of its pieces, bias), and which kernel dims of conv5 (rows,
        columns) run as output channels. Cached until a parameter changes (its storage or
        its in-place version)."""
        key = ("pieces", *self._parameter_key())
        if self._plan is not None and self._plan[0] == key:
            return self._plan[1]
        cin, gc = self.conv1.in_channels, self.conv1.out_channels
        start = [0] + [cin + gc * j for j in range(5)]  # first channel of x, x1, …, x4; end
        fold = _taps_as_channels(self.conv5.out_channels)
        weights = []
        with torch.no_grad():
            for k, conv in enumerate((self.conv1, self.conv2, self.conv3, self.conv4, self.conv5)):
                w = conv.weight.detach()
                bias = None if conv.bias is None else conv.bias.detach()
                cuts = [0, start[k + 1]] if k < _PREFIX else [0] + start[_PREFIX:k + 2]
                pieces = [w[:, a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
                if k == 4 and any(fold):
                    pieces = [_taps_to_channels(p, fold) for p in pieces]
                    if bias is not None:  # the bias belongs to the centre tap's channels only
                        groups = (3 if fold[0] else 1) * (3 if fold[1] else 1)
                        centred = torch.zeros(groups, bias.numel(), dtype=bias.dtype,
                                              device=bias.device)
                        centred[groups // 2] = bias
                        bias = centred.flatten()
                weights.append(([p.contiguous() for p in pieces], bias))
        self._plan = (key, (weights, fold))
        return weights, fold


class DenseBlockReference(DenseBlock):
    """``DenseBlock`` as it was before its inference path: always the plain forward (concatenate
    every earlier map for each conv). Same parameters and state dict; for the benchmark
    (``benchmarks/bench_irn.py``) and the equivalence test only."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward_plain(x)


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
