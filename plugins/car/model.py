"""CAR's networks: the resampler (kernel/offset generation, "DSN") and the EDSR upscaler.

Written from Sun and Chen, IEEE TIP 2020 (official inference code sunwj/CAR ``modules.py``,
``EDSR/edsr.py``). Layer shapes of the ``paper`` configuration are the released ones; the widths
and depths are parameters so that a slim model can be trained on a CPU (``cpu`` preset).

Mean shifts (subtract / add back the DIV2K RGB mean 0.4488, 0.4371, 0.4040 with rgb_range 1): the
``paper`` configuration keeps them as the released code does, frozen 1×1 convolutions
(``sub_mean``, ``add_mean``; initialised to the identity and ∓mean, loaded from a checkpoint as
stored), so an imported official checkpoint computes exactly what the authors' network does; the
slim ``cpu`` / ``smoke`` configurations use fixed buffers. Frozen tensors are not counted as
trainable parameters.
"""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CARConfig", "CONFIGS", "MeanShift", "ResamplerNet", "EDSR", "kernel_size"]

RGB_MEAN = (0.4488, 0.4371, 0.4040)


def kernel_size(scale: int) -> int:
    """CAR's kernel side k = 3s + 1 (7 at ×2, 13 at ×4)."""
    return 3 * scale + 1


@dataclass(frozen=True)
class CARConfig:
    """Widths and depths of the resampler and the upscaler (``paper`` = the released model)."""

    enc_first: int = 64  #: width of the first 5×5 conv (full resolution)
    enc_mid: int = 128  #: width at 1/2 and 1/4 resolution
    enc_blocks: int = 5  #: residual blocks at 1/4 resolution
    feats: int = 256  #: width at 1/8 resolution and in both heads
    trunk_convs: int = 3  #: 3×3 convs at 1/8 resolution in each head's trunk
    edsr_blocks: int = 32
    edsr_feats: int = 256
    edsr_res_scale_milli: int = 100  #: EDSR residual scale ×1000 (0.1), an int for the arch tag
    mean_conv: int = 1  #: 1: the released frozen 1×1 mean-shift convs; 0: fixed buffers

    @property
    def edsr_res_scale(self) -> float:
        return self.edsr_res_scale_milli / 1000.0

    def as_tensor(self) -> torch.Tensor:
        """The configuration as an int64 tensor (stored with the weights as ``arch``)."""
        return torch.tensor(astuple(self), dtype=torch.int64)

    @classmethod
    def from_tensor(cls, t: torch.Tensor) -> CARConfig:
        """The configuration stored with weights; tags written before ``mean_conv`` existed
        (8 entries) used the mean buffers."""
        vals = [int(v) for v in t.tolist()]
        if len(vals) == len(fields(cls)) - 1:
            vals.append(0)
        if len(vals) != len(fields(cls)):
            raise ValueError(f"arch tag has {len(vals)} entries, expected {len(fields(cls))}")
        return cls(*vals)


CONFIGS: dict[str, CARConfig] = {
    # The released model: resampler ≈ 10M, EDSR 32 × 256 with residual scale 0.1.
    "paper": CARConfig(),
    # irnbench's CPU budget (not the paper's model): slim resampler, EDSR 4 × 32, res scale 1.
    "cpu": CARConfig(enc_first=16, enc_mid=32, enc_blocks=2, feats=64, trunk_convs=1,
                     edsr_blocks=4, edsr_feats=32, edsr_res_scale_milli=1000, mean_conv=0),
    # Wiring checks only.
    "smoke": CARConfig(enc_first=8, enc_mid=8, enc_blocks=1, feats=16, trunk_convs=1,
                       edsr_blocks=1, edsr_feats=8, edsr_res_scale_milli=1000, mean_conv=0),
}


class MeanShift(nn.Module):
    """Add ``sign``·mean per channel: a frozen 1×1 conv (the released form) or a fixed buffer."""

    def __init__(self, sign: float, conv: bool):
        super().__init__()
        mean = torch.tensor(RGB_MEAN)
        self.conv = conv
        if conv:
            self.weight = nn.Parameter(torch.eye(3).view(3, 3, 1, 1), requires_grad=False)
            self.bias = nn.Parameter(sign * mean, requires_grad=False)
        else:
            self.register_buffer("shift", sign * mean.view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv:
            return F.conv2d(x, self.weight, self.bias)
        return x + self.shift


def _conv3(cin: int, cout: int) -> nn.Sequential:
    """Reflection-pad 1 + 3×3 conv (the resampler pads by reflection throughout)."""
    return nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3))


class _ReflectResBlock(nn.Module):
    """x + conv3(LReLU(conv3(x))), reflection padding, no normalisation."""

    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(_conv3(ch, ch), nn.LeakyReLU(0.2), _conv3(ch, ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _Down(nn.Module):
    """Space-to-depth ×2 then a 1×1 conv (no activation, as released)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(4 * cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pixel_unshuffle(x, 2))


def _trunk(feats: int, convs: int, up: int) -> nn.Sequential:
    """convs × [conv3, ReLU] at 1/8 → 1×1 conv + pixel-shuffle(up) to the LR grid → conv3, ReLU."""
    layers: list[nn.Module] = []
    for _ in range(convs):
        layers += [_conv3(feats, feats), nn.ReLU()]
    if up > 1:
        layers += [nn.Conv2d(feats, feats * up * up, 1), nn.PixelShuffle(up)]
    layers += [_conv3(feats, feats), nn.ReLU()]
    return nn.Sequential(*layers)


def _head(feats: int, out: int, tanh: bool) -> nn.Sequential:
    layers: list[nn.Module] = [_conv3(feats, feats), nn.ReLU(), _conv3(feats, out)]
    if tanh:
        layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class ResamplerNet(nn.Module):
    """CAR's kernel-generation network: HR B×3×H×W (H, W multiples of 8) → kernels, Δx, Δy.

    Encoder: mean shift; reflect-pad 2 + 5×5 conv 3→64 + LReLU(0.2); space-to-depth(2) + 1×1
    conv 256→128; space-to-depth(2) + 1×1 conv 512→128; x + Res(x) with Res 5 residual blocks;
    space-to-depth(2) + 1×1 conv 512→256 (features at 1/8). Two trunks of identical shape (3 ×
    [conv3×3 256→256, ReLU], 1×1 conv to 256·(8/s)² + pixel-shuffle(8/s), conv3×3, ReLU). Kernel
    head: conv3×3, ReLU, conv3×3 → k², clamp to [1e-6, 1], divide by the (≥1e-6-clamped) sum —
    so each LR pixel's k² weights are positive and sum to 1. Offset heads (Δx, Δy): conv3×3,
    ReLU, conv3×3 → k², tanh (so Δ ∈ (−1, 1), later scaled by s). All outputs B×k²×H/s×W/s.
    """

    def __init__(self, scale: int, cfg: CARConfig | None = None):
        super().__init__()
        cfg = cfg or CARConfig()
        if scale not in (2, 4, 8):
            raise ValueError(f"the resampler needs a scale dividing 8, got {scale}")
        self.scale = scale
        self.k = kernel_size(scale)
        k2 = self.k**2
        self.sub_mean = MeanShift(-1.0, bool(cfg.mean_conv))
        self.enc = nn.Sequential(
            nn.ReflectionPad2d(2), nn.Conv2d(3, cfg.enc_first, 5), nn.LeakyReLU(0.2),
            _Down(cfg.enc_first, cfg.enc_mid),
            _Down(cfg.enc_mid, cfg.enc_mid),
        )
        self.res = nn.Sequential(*(_ReflectResBlock(cfg.enc_mid) for _ in range(cfg.enc_blocks)))
        self.down8 = _Down(cfg.enc_mid, cfg.feats)
        up = 8 // scale
        self.kernels_trunk = _trunk(cfg.feats, cfg.trunk_convs, up)
        self.kernels_head = _head(cfg.feats, k2, tanh=False)
        self.offsets_trunk = _trunk(cfg.feats, cfg.trunk_convs, up)
        self.offsets_h_head = _head(cfg.feats, k2, tanh=True)
        self.offsets_v_head = _head(cfg.feats, k2, tanh=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h, w = x.shape[-2:]
        if h % 8 or w % 8:
            raise ValueError(f"the resampler needs H, W multiples of 8, got {h}×{w}")
        f = self.enc(self.sub_mean(x))
        f = f + self.res(f)
        f = self.down8(f)
        weights = self.kernels_head(self.kernels_trunk(f)).clamp(1e-6, 1.0)
        kernels = weights / weights.sum(1, keepdim=True).clamp_min(1e-6)
        t = self.offsets_trunk(f)
        return kernels, self.offsets_h_head(t), self.offsets_v_head(t)


class _EDSRBlock(nn.Module):
    def __init__(self, ch: int, res_scale: float):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU(), nn.Conv2d(ch, ch, 3, padding=1)
        )
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) * self.res_scale


class EDSR(nn.Module):
    """EDSR (Lim et al., 2017) as CAR uses it: LR in [0, 1] → ×s image.

    Mean shift (rgb_range 1); head conv3×3 3→F; ``blocks`` residual blocks (conv, ReLU, conv,
    ×``res_scale``, identity skip) + conv3×3, with a global skip from the head; upsampler of
    log2(s) × [conv3×3 F→4F, pixel-shuffle(2)]; tail conv3×3 F→3; mean added back.
    """

    def __init__(self, scale: int, blocks: int = 32, feats: int = 256, res_scale: float = 0.1,
                 mean_conv: bool = True):
        super().__init__()
        stages = round(math.log2(scale))
        if scale < 2 or 2**stages != scale:
            raise ValueError(f"EDSR here needs a power-of-two scale, got {scale}")
        self.sub_mean = MeanShift(-1.0, mean_conv)
        self.add_mean = MeanShift(1.0, mean_conv)
        self.head = nn.Conv2d(3, feats, 3, padding=1)
        self.body = nn.Sequential(
            *(_EDSRBlock(feats, res_scale) for _ in range(blocks)),
            nn.Conv2d(feats, feats, 3, padding=1),
        )
        up: list[nn.Module] = []
        for _ in range(stages):
            up += [nn.Conv2d(feats, 4 * feats, 3, padding=1), nn.PixelShuffle(2)]
        self.upsample = nn.Sequential(*up)
        self.tail = nn.Conv2d(feats, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.head(self.sub_mean(x))
        f = f + self.body(f)
        return self.add_mean(self.tail(self.upsample(f)))
