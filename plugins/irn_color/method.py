"""The ``irn-color`` method: IRN-Color (Xiao et al., IJCV 2022), decolorization–colorization.

Written from the IJCV 2022 paper (official code: ``InvGreyNet``, ``IRN_color_model.py``,
``train_IRN_color.yml`` of pkuxmq's IJCV repository). The network is ``InvGreyNet`` (see
``model.py``): degrade = channel 0 of the forward pass (the grey image), restore = the inverse of
[grey, z]. As in the official code z = 0 by default, both when training and at test
(``gaussian_scale`` 0), so the method is deterministic: one row per image. The ``temperature`` /
``train_temperature`` options draw z ~ N(0, I)·T instead.

Losses (official, each summed per sample and averaged over the batch, as IRN's):
fit = λ_fit·Σ(grey − guide)² on the un-quantised grey, λ_fit = 3, guide = 0.299R + 0.587G +
0.114B; ce = λ_ce·Σz², λ_ce = 1; rec = λ_rec·Σ√((x̂ − x)² + 1e-6), λ_rec = 1, with
x̂ = f⁻¹([Q(grey), z]) and Q the straight-through training channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from irnbench.ops.tiling import resolve_tile, tiled
from irnbench.plugin import (
    InvalidSetting,
    Method,
    Paper,
    Preset,
    PretrainedCfg,
    Task,
    option,
    shipped_cfgs,
    tile_option,
)
from irnbench.plugin import Options as BaseOptions
from irnbench_plugins.irn.method import paper_preset

from .model import InvGreyNet
from .official import IRN_COLOR_OFFICIAL

__all__ = ["IRNColor"]

#: Context kept around each tile, in pixels; images with more pixels than
#: ``irnbench.ops.tiling.AUTO_TILE_PIXELS`` run tiled (option ``tile``).
TILE_OVERLAP = 32


def _cpu_preset() -> Preset:
    """irnbench's CPU budget (NOT the paper's schedule): 1k steps of 32² crops, batch 4.

    One step (forward, inverse and backward of eight full-resolution couplings) costs about as
    much as an IRN ×2 step on four times the pixels, so the batch is small to keep the run near an
    hour on two cores. A higher learning rate than the paper's (8e-4 after a 100-step warm-up,
    halved at 60 % and 80 %) buys progress within that budget; grad-norm clipping at 10 is kept.
    Weights trained with it are labelled as such in every table. The shipped weights ran it for
    2000 steps (``--iterations 2000``). Fine-tunes tried and not shipped: docs/experiments.md.
    """
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
    """IRN-Color: invertible decolorization (grey = forward channel 0) and colorization (inverse).

    Constructor options: see ``IRNColor.Options``.
    """

    name = "irn-color"
    tasks = ("decolorize",)
    description = "IRN-Color: invertible decolorization-colorization (Xiao et al., IJCV 2022)"
    stochastic = False  # z = 0 by default: deterministic (IRN-Color's test code)
    paper = Paper(
        citation="Xiao, Zheng, Liu, Lin, Liu, 'Invertible Rescaling Network and "
        "Its Extensions', IJCV 2022",
        url="https://arxiv.org/abs/2210.04188",
        # The IJCV decolorization table is not confirmed from the paper's text: no rows.
        results=(),
    )
    presets = {
        # Official train_IRN_color.yml: batch 8, crop 144.
        "paper": paper_preset(batch_size=8),
        "cpu": _cpu_preset(),
        # Wiring check only (seconds).
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
    #: Weights shipped in ``weights/`` (the ``cpu`` preset's, trained on ``mini-train``).
    pretrained_cfgs: dict[str, PretrainedCfg] = shipped_cfgs(Path(__file__).parent, "irn-color")
    #: The authors' release (``irnbench weights import irn-color IRN_color.pth ...``).
    official_weights = IRN_COLOR_OFFICIAL

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
