from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from irnbench.plugin import (
    SAIN_AAAI,
    InvalidSetting,
    Method,
    ModelCard,
    Task,
    module_fingerprint,
    resolve_tile,
    sain_readme_rows,
    tile_option,
    tiled,
)
from irnbench.plugin import Options as BaseOptions

from .model import SAINet
from .official import COMMIT, sain_official

__all__ = ["CARD", "InvertibleRescaler", "SAIN", "SCALES", "TILE_OVERLAP_LR"]

CARD = ModelCard(
    summary=f"Self-Asymmetric Invertible Network, compression-aware rescaling ({SAIN_AAAI.inline})",
    what="""
        The ``sain`` method: SAIN, compression-aware image rescaling ×2 and ×4. An invertible
        network takes the HR image through every Haar stage, then Enhanced invertible blocks
        (IRN's affine coupling plus a subnet E whose output forms the LR) and Vanilla blocks
        (IRN's coupling). The transmitted LR is the last Enhanced block's x1 + E(x2); the
        Vanilla blocks learn to mimic what a codec does to that LR, so the inverse, run from the
        decoded LR and a latent z drawn from a learned Gaussian mixture, restores the HR image.
        irnbench runs the authors' released weights: ``degrade`` returns the float LR (the
        harness quantises it and, with ``--jpeg``, JPEG-codes it), ``restore`` draws z from the
        mixture under the run's seeded generator (times ``temperature``, as the official
        ``gaussian_scale``) and returns the inverse's HR.
        """,
    departures="""
        - z comes from the harness's seeded generator, one draw per ``--draws`` (the rescale task
          scores the mean of 5, as for IRN); the official test draws one z per image from the
          unseeded global RNG. The draw itself is the official one: the same random numbers in
          the same order, so a seed reproduces the official z.
        - The harness owns the channel: uint8 rounding, then Pillow JPEG (4:2:0, optimise off,
          the settings of SAIN's own codec wrapper) at each ``--jpeg`` quality, or Pillow WebP
          (lossy, other options default, as SAIN's ``REALCOMP``) at each ``--webp`` quality
          (``sain.webp``'s channel; docs/protocol.md).
        - ``degrade`` skips the Vanilla blocks (only the training losses read their output),
          which leaves the LR unchanged; the HR is not clamped here (the harness clamps and
          rounds it, as the official metric code does).
        - Images above ``irnbench.ops.tiling.AUTO_TILE_PIXELS`` HR pixels (DIV2K's included) run
          tiled with 32 LR pixels of context, the z of the whole image sliced per tile: the
          result differs slightly from an untiled run near tile borders. ``--option tile=-1``
          never tiles.
        - No training: ``irnbench train --plugin sain`` refuses and points to the official code.
        """,
    weights=f"""
        No weights ship with irnbench. ``irnbench weights import sain FILE --task rescale --scale
        S`` (or ``irnbench weights fetch``) installs the authors' files, committed in the
        repository at commit {COMMIT} (``experiments/pretrained_models/``; each pinned by URL and
        git blob SHA-1 in ``SAIN.official_weights``), after checking every tensor's name and
        shape and that the Haar weights are the Haar constants: ``SAINx2_JPEG.pth`` →
        ``sain.official`` ×2, ``SAINx4_JPEG.pth`` → ``sain.official`` ×4 (both trained with JPEG
        at QF 75; they should reproduce the SAIN rows of SAIN's README table, DIV2K val at QF
        30–90, under SAIN's protocol, whose channel is inferred to be Y), and
        ``SAINx2_WebP.pth`` → ``sain.webp`` ×2 (``--tag webp``; trained with WebP, no published
        numbers). An untagged ``sain`` resolves to ``sain.official`` once imported.
        """,
    citation=SAIN_AAAI.citation,
    url=SAIN_AAAI.url,
    code="github.com/yang-jin-hai/SAIN",
    licence="Apache-2.0 (yang-jin-hai/SAIN: code and weights, which are committed in the "
            "repository)",
)
__doc__ = CARD.docstring()

#: Scales with released weights.
SCALES = (2, 4)
#: Context (in LR pixels) kept around each tile, as IRN's.
TILE_OVERLAP_LR = 32

class InvertibleRescaler(Method):
    """A rescaler run from an invertible network ``self.net`` with ``downscale(x)`` → LR and
    ``inverse([LR | z])`` → HR (SAIN, T-IRN, T-SAIN): the shared ``degrade``, ``restore_with_z``
    and tiling. Subclasses set ``name``, ``build_net`` and ``restore``."""

    tasks = ("rescale",)

    @dataclass(frozen=True)
    class Options(BaseOptions):
        """Tiling of large images."""

        tile: int = tile_option()

    def __init__(self, task: Task, **options: Any):
        super().__init__(task, **options)
        if not self.supports(task):
            raise InvalidSetting(f"{self.name} supports rescale ×2 and ×4; got {task!r}")
        self.scale = int(task.setting["scale"])
        self.net = self.build_net(self.scale)

    def build_net(self, scale: int) -> nn.Module:
        raise NotImplementedError

    @classmethod
    def supports(cls, task: Task) -> bool:
        return task.name in cls.tasks and int(task.setting.get("scale", 0)) in SCALES

    def _tile(self, hr_pixels: int) -> int:
        return resolve_tile(self.opts.tile, hr_pixels)

    def degrade(self, x: torch.Tensor) -> torch.Tensor:
        """HR B×3×H×W → the transmitted float LR B×3×H/s×W/s (not quantised)."""
        tile, s = self._tile(x.shape[-2] * x.shape[-1]), self.scale
        if tile:
            return tiled(self.net.downscale, x, tile, TILE_OVERLAP_LR * s, 1 / s, s)
        return self.net.downscale(x)

    def degrade_key(self) -> str:
        """The LR is fixed by the network, its weights, the scale and the tiling."""
        return (f"{self.name}-downscale x{self.scale} tile={self.opts.tile} "
                f"{module_fingerprint(self.net)}")

    def latent_shape(self, y: torch.Tensor) -> tuple[int, ...]:
        """Shape of z for an LR batch: B×3(s² − 1)×h×w."""
        b, _, h, w = y.shape
        return (b, self.net.latent_channels, h, w)

    def restore_with_z(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The inverse of [y | z] → HR B×3×H×W, not clamped (tiled on large images: the
        full-image z is sliced per tile, so tiled and untiled restorations see the same z)."""
        t = torch.cat((y, z), 1)
        tile = self._tile(y.shape[-2] * y.shape[-1] * self.scale**2)
        if tile:
            return tiled(self.net.inverse, t, tile // self.scale, TILE_OVERLAP_LR, self.scale)
        return self.net.inverse(t)


class SAIN(InvertibleRescaler):
    """SAIN: degrade = the last Enhanced block's LR; restore = the inverse of [y | z], z drawn
    from the learned Gaussian mixture × ``temperature`` (official ``gaussian_scale`` = 1)."""

    name = "sain"
    card = CARD
    description = CARD.summary
    stochastic = True
    paper = CARD.paper(*sain_readme_rows("SAIN"))
    #: The authors' ×2 and ×4 JPEG releases (and ×2 WebP as ``--tag webp``).
    official_weights = sain_official(CARD)
    training_note = ("training is out of scope here; train SAIN with the official code at "
                     "https://github.com/yang-jin-hai/SAIN and import its checkpoint with "
                     "`irnbench weights import sain`")

    def build_net(self, scale: int) -> SAINet:
        return SAINet(scale)

    def sample_z(self, y: torch.Tensor, temperature: float = 1.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """z from the mixture (the official draw) × ``temperature``, shaped for ``y``."""
        return self.net.sample_latent(y, generator).to(y.dtype) * temperature

    def restore(
        self,
        y: torch.Tensor,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        **channel_info: Any,
    ) -> torch.Tensor:
        """What came through the channel → HR with a fresh z (``channel_info`` is ignored)."""
        return self.restore_with_z(y, self.sample_z(y, temperature, generator))
