"""TAR's networks: the task-aware downscaler (TAD) and upscaler (TAU).

No official code of Kim et al. (ECCV 2018) was found; the shapes follow the third-party PyTorch
port's auto-encoder (simon-schaefer/tar, "AETAD", one ×2 stage),
generalised to ×s by irnbench as noted on each class. Depths and widths are parameters
(``TARConfig``); the ``paper`` configuration is the port's, since the paper's own is [U].

Decolorization (irnbench's reuse of the same networks at scale 1, [U] for the paper's own
colourisation model): TAD maps RGB → 1 grey channel and TAU grey → RGB, with no space-to-depth
and no pixel-shuffle (``scale=1``, ``channels_in``/``channels_out``). The rescaling networks keep
their layers and state-dict keys exactly (the channel arguments default to 3).
"""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["TARConfig", "CONFIGS", "TAD", "TAU"]


@dataclass(frozen=True)
class TARConfig:
    """Widths and depths of TAD and TAU (``paper`` = the third-party port's AETAD)."""

    head1: int = 8  #: TAD's first conv width
    head2: int = 16  #: TAD's second conv width (then space-to-depth)
    feats: int = 64  #: residual-trunk width of both networks
    tad_blocks: int = 3
    tau_blocks: int = 3

    def as_tensor(self) -> torch.Tensor:
        """The configuration as an int64 tensor (stored with the weights as ``arch``)."""
        return torch.tensor(astuple(self), dtype=torch.int64)

    @classmethod
    def from_tensor(cls, t: torch.Tensor) -> TARConfig:
        vals = [int(v) for v in t.tolist()]
        if len(vals) != len(fields(cls)):
            raise ValueError(f"arch tag has {len(vals)} entries, expected {len(fields(cls))}")
        return cls(*vals)


CONFIGS: dict[str, TARConfig] = {
    "paper": TARConfig(),
    # irnbench's CPU budget (not the paper's model).
    "cpu": TARConfig(feats=32, tad_blocks=3, tau_blocks=4),
    # Wiring checks only.
    "smoke": TARConfig(head1=4, head2=4, feats=8, tad_blocks=1, tau_blocks=1),
}


class _ResBlock(nn.Module):
    """x + conv3×3(ReLU(conv3×3(x))), zero padding, no normalisation, residual scale 1."""

    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU(), nn.Conv2d(ch, ch, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _trunk(ch: int, blocks: int) -> nn.Sequential:
    """``blocks`` residual blocks then a 3×3 conv (wrapped in a global skip by the caller)."""
    return nn.Sequential(*(_ResBlock(ch) for _ in range(blocks)), nn.Conv2d(ch, ch, 3, padding=1))


def _stages(scale: int) -> int:
    stages = round(math.log2(scale)) if scale >= 1 else -1
    if scale < 1 or 2**stages != scale:
        raise ValueError(f"TAR needs a power-of-two scale (1 for decolorization), got {scale}")
    return stages


class TAD(nn.Module):
    """Downscaler g: HR B×3×H×W → LR B×3×H/s×W/s (float, not clamped).

    conv3×3 3→8, ReLU, conv3×3 8→16, ReLU; space-to-depth(s) → 16s² channels; a 1×1 conv to
    ``feats`` when 16s² ≠ feats (×4, or narrower configs — irnbench's generalisation; at ×2 with
    64 features this is the port exactly, without it); residual trunk with global skip; conv3×3
    feats→3. The ReLUs after the two head convs are [U] (the port's activations are not recorded).
    ``channels_in``/``channels_out`` (default 3/3) are irnbench's decolorization variant (3/1).
    """

    def __init__(self, scale: int, cfg: TARConfig | None = None, channels_in: int = 3,
                 channels_out: int = 3):
        super().__init__()
        cfg = cfg or TARConfig()
        _stages(scale)
        self.scale = scale
        self.head = nn.Sequential(
            nn.Conv2d(channels_in, cfg.head1, 3, padding=1), nn.ReLU(),
            nn.Conv2d(cfg.head1, cfg.head2, 3, padding=1), nn.ReLU(),
        )
        c = cfg.head2 * scale * scale
        self.proj = nn.Conv2d(c, cfg.feats, 1) if c != cfg.feats else nn.Identity()
        self.trunk = _trunk(cfg.feats, cfg.tad_blocks)
        self.tail = nn.Conv2d(cfg.feats, channels_out, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.proj(F.pixel_unshuffle(self.head(x), self.scale))
        return self.tail(f + self.trunk(f))


class TAU(nn.Module):
    """Upscaler f: LR B×3×h×w → HR B×3×sh×sw.

    conv3×3 3→feats; residual trunk with global skip; log2(s) × [conv3×3 feats→4·feats,
    pixel-shuffle(2)] (the port's single ×2 stage, repeated for ×4); conv3×3 feats→3.
    ``channels_in``/``channels_out`` (default 3/3) are irnbench's decolorization variant (1/3).
    """

    def __init__(self, scale: int, cfg: TARConfig | None = None, channels_in: int = 3,
                 channels_out: int = 3):
        super().__init__()
        cfg = cfg or TARConfig()
        stages = _stages(scale)
        self.head = nn.Conv2d(channels_in, cfg.feats, 3, padding=1)
        self.trunk = _trunk(cfg.feats, cfg.tau_blocks)
        up: list[nn.Module] = []
        for _ in range(stages):
            up += [nn.Conv2d(cfg.feats, 4 * cfg.feats, 3, padding=1), nn.PixelShuffle(2)]
        self.upsample = nn.Sequential(*up)
        self.tail = nn.Conv2d(cfg.feats, channels_out, 3, padding=1)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        f = self.head(y)
        return self.tail(self.upsample(f + self.trunk(f)))
