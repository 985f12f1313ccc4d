from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from irnbench.ops.tiling import resolve_tile, tiled
from irnbench.plugin import (
    IRN_IJCV,
    InvalidSetting,
    Method,
    ModelCard,
    Preset,
    PretrainedCfg,
    Task,
    option,
    shipped_cfgs,
    tile_option,
)
from irnbench.plugin import Options as BaseOptions
from irnbench_plugins.irn.method import CARD as IRN_CARD
from irnbench_plugins.irn.method import paper_preset

from .model import InvGreyNet
from .official import irn_color_official

__all__ = ["CARD", "IRNColor"]

CARD = ModelCard(
    summary=f"IRN-Color: invertible decolorization-colorization ({IRN_IJCV.inline})",
    what="""
        The ``irn-color`` method: IRN-Color, task ``decolorize``. The network is ``InvGreyNet``
        (an invertible 1×1 colour transform initialised to RGB → YUV, then eight couplings):
        degrade = channel 0 of the forward pass (the grey image), restore = the inverse of
        [grey, z]. As in the official code z = 0 by default, both in training and at test
        (``gaussian_scale`` 0), so the method is deterministic; the ``temperature`` and
        ``train_temperature`` options draw z ~ N(0, I)·T instead. Losses (official, each summed
        per sample and averaged over the batch): fit = 3·Σ(grey − luma)² on the un-quantised
        grey, luma = 0.299R + 0.587G + 0.114B; ce = Σz²; rec = Σ√((x̂ − x)² + 1e-6) with
        x̂ = f⁻¹([Q(grey), z]) and Q the straight-through training channel. Written from the IJCV
        2022 paper and the official code (``InvGreyNet``, ``IRN_color_model.py``,
        ``train_IRN_color.yml``).
        """,
    departures="""
        - Images above ``irnbench.ops.tiling.AUTO_TILE_PIXELS`` run tiled (option ``tile``) with
          32 pixels of context, for bounded memory; the official test runs whole images.
        - The ``cpu`` preset is irnbench's own budget, not the paper's schedule (``paper``).
        """,
    weights="""
        - Shipped (tag ``cpu``): decolorize, irnbench's own ``cpu``-preset run on
          ``mini-train``, not the paper's model (docs/experiments.md).
        - Importable (tag ``official``): the authors' ``IRN_color.pth`` (``irnbench weights
          import irn-color IRN_color.pth --task decolorize``; docs/weights.md).
        """,
    citation=IRN_IJCV.citation,
    url=IRN_IJCV.url,
    code=IRN_CARD.code,
    licence=IRN_CARD.licence,
)
__doc__ = CARD.docstring()

#: Context kept around each tile, in pixels; images with more pixels than
#: ``irnbench.ops.tiling.AUTO_TILE_PIXELS`` run tiled (option ``tile``).
TILE_OVERLAP = 32


def _cpu_preset() -> Preset:
    """irnbench's CPU budget (NOT the paper's schedule): a small batch, as a step costs about an
    IRN ×2 step on four times the pixels, and a higher rate after a warm-up, for progress within
    about an hour on two cores; grad-norm clipping at 10."""
    return Preset(
        name="cpu",
        iterations=1000,
        batch_size=4,
        crop=32,
        lr=8e-4,
        betas=(0.9, 0.999),
        weight_decay=1e-5,
        milestones=(600, 800),
        gamma=0.5,
        warmup=100,
        grad_clip=10.0,
        val_every=250,
        checkpoint_every=250,
    )


class IRNColor(Method):
    """IRN-Color: invertible decolorization (grey = forward channel 0) and colorization (inverse)
    (the module docstring is the model card; options: ``IRNColor.Options``)."""

    name = "irn-color"
    tasks = ("decolorize",)
    card = CARD
    description = CARD.summary
    stochastic = False  # z = 0 by default: deterministic (IRN-Color's test code)
    # The IJCV decolorization table is not confirmed from the paper's text: no rows.
    paper = CARD.paper()
    presets = {
        "paper": paper_preset(batch_size=8),  # official train_IRN_color.yml: batch 8, crop 144
        "cpu": _cpu_preset(),  # irnbench's CPU budget
        # wiring check only (seconds)
        "smoke": Preset(
            name="smoke",
            iterations=4,
            batch_size=2,
            crop=16,
            lr=2e-4,
            betas=(0.9, 0.999),
            weight_decay=1e-5,
            grad_clip=10.0,
            val_every=2,
            checkpoint_every=2,
        ),
    }
    pretrained_cfgs: dict[str, PretrainedCfg] = shipped_cfgs(Path(__file__).parent, "irn-color",
                                                             paper=CARD.citation)
    official_weights = irn_color_official(CARD)

    @dataclass(frozen=True)
    class Options(BaseOptions):
        """IRN-Color's options: loss weights, z temperatures, depth and tiling."""

        lambda_fit: float = option(3.0, "weight of the grey guidance loss")
        lambda_ce: float = option(1.0, "weight of the latent (Gaussian CE) loss")
        lambda_rec: float = option(1.0, "weight of the colour reconstruction loss")
        temperature: float = option(0.0, "z temperature at test (0: z = 0, the official default)")
        train_temperature: float = option(0.0, "z temperature in the training inverse pass")
        blocks: int = option(8, "invertible blocks")
        tile: int = tile_option()

    def __init__(self, task: Task, **options: Any):
        super().__init__(task, **options)
        if not self.supports(task):
            raise InvalidSetting(f"irn-color supports the decolorize task; got {task!r}")
        self.net = InvGreyNet(blocks=self.opts.blocks)
        self.lambda_fit = self.opts.lambda_fit
        self.lambda_ce = self.opts.lambda_ce
        self.lambda_rec = self.opts.lambda_rec
        self.temperature = self.opts.temperature
        self.train_temperature = self.opts.train_temperature

    # -- the two halves ----------------------------------------------------------------------
    def _tile(self, pixels: int) -> int:
        """Tile side for an image of ``pixels`` pixels (0: untiled); see ``resolve_tile``."""
        return resolve_tile(self.opts.tile, pixels)

    def degrade(self, x: torch.Tensor) -> torch.Tensor:
        """RGB B×3×H×W → float grey B×1×H×W (forward channel 0, not quantised)."""
        tile = self._tile(x.shape[-2] * x.shape[-1])
        if tile:
            return tiled(lambda t: self.net(t)[:, :1], x, tile, TILE_OVERLAP, 1.0)
        return self.net(x)[:, :1]

    def sample_z(
        self,
        y: torch.Tensor,
        temperature: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """z for a grey batch: zeros at temperature 0, else N(0, I)·temperature (B×2×H×W)."""
        shape = (y.shape[0], self.net.latent_channels, *y.shape[-2:])
        if temperature == 0:
            return y.new_zeros(shape)
        z = torch.randn(shape, generator=generator, device=y.device, dtype=y.dtype)
        return z * temperature

    def restore_with_z(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Inverse pass of concat[grey, z] → RGB B×3×H×W (tiled on large images)."""
        t = torch.cat((y, z), 1)
        tile = self._tile(y.shape[-2] * y.shape[-1])
        if tile:
            return tiled(self.net.inverse, t, tile, TILE_OVERLAP, 1.0)
        return self.net.inverse(t)

    def restore(
        self,
        y: torch.Tensor,
        temperature: float | None = None,
        generator: torch.Generator | None = None,
        **channel_info: Any,
    ) -> torch.Tensor:
        """uint8 grey (as k/255) → RGB with z = 0 (or N(0, I)·``temperature`` when set)."""
        t = self.temperature if temperature is None else float(temperature)
        return self.restore_with_z(y, self.sample_z(y, t, generator))

    # -- training ----------------------------------------------------------------------------
    def training_loss(self, batch: dict[str, Any], task: Task) -> dict[str, torch.Tensor]:
        """fit + ce + rec (module docstring); ``lr_ref`` is the float luma guide B×1×H×W.

        z of the training inverse pass is 0 unless ``train_temperature`` > 0; then it comes from
        the runner's per-sample ``randn`` (so a DDP run does not depend on the world size).
        """
        hr = batch["hr"]
        guide = batch["lr_ref"].detach()
        b = hr.shape[0]
        out = self.net(hr)
        y, z = out[:, :1], out[:, 1:]
        fit = self.lambda_fit * (y - guide).pow(2).sum() / b
        ce = self.lambda_ce * z.pow(2).sum() / b
        y_q = task.channel(y, train=True)
        noise = batch.get("randn")
        if self.train_temperature and noise is not None:
            z_new = noise(tuple(z.shape[1:]), dtype=y_q.dtype) * self.train_temperature
        else:
            z_new = self.sample_z(y_q, self.train_temperature, batch.get("generator"))
        x_hat = self.net.inverse(torch.cat((y_q, z_new), 1))
        rec = self.lambda_rec * torch.sqrt((x_hat - hr).pow(2) + 1e-6).sum() / b
        return {"total": fit + ce + rec, "fit": fit, "ce": ce, "rec": rec}
