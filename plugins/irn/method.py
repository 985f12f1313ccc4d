from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from irnbench.ops.tiling import resolve_tile, tiled
from irnbench.plugin import (
    IRN_ECCV,
    IRN_IJCV,
    ColorAugment,
    InvalidSetting,
    Method,
    ModelCard,
    Preset,
    PretrainedCfg,
    RescaleTask,
    Task,
    irn_table1_rows,
    module_fingerprint,
    option,
    sain_readme_rows,
    shipped_cfgs,
    tile_option,
)
from irnbench.plugin import Options as BaseOptions

from .model import InvRescaleNet
from .official import irn_official

__all__ = ["CARD", "IRN", "SCALES", "paper_preset"]

CARD = ModelCard(
    summary=f"Invertible Rescaling Network ({IRN_ECCV.inline})",
    what="""
        The ``irn`` method: IRN rescaling ×2, ×3, ×4 and ×8. degrade = the first 3 channels of
        the invertible forward pass (the LR); restore = the inverse pass of [LR, z] with
        z ~ N(0, I)·temperature (the official test default, ``gaussian_scale`` 1.0; 0 is also a
        valid sample, official issue #26). Written from the ECCV 2020 paper and the official
        code (``IRN_model.py``, ``Inv_arch.py``, the train ymls); ×3 (learnable
        downsampling) and ×8 follow the IJCV 2022 configs. On ``compress`` the ×s LR goes
        straight into JPEG and is restored without JPEG restoration (the IJCV paper's "IRN"
        line), with the ``rescale`` ×s weights.
        """,
    departures="""
        - Where the paper and the code differ this follows the code: the Jacobian
          log-determinants are computed but never used, and the latent term is the Gaussian
          "CE" surrogate Σz²/B, not the paper's JS-divergence distribution loss (that is IRN+'s
          GAN stage; official issues #14, #16, #20, #22).
        - Images above ``irnbench.ops.tiling.AUTO_TILE_PIXELS`` run tiled (option ``tile``)
          with 32 LR pixels of context, for bounded memory; the official test runs whole images.
        - The ``gpu`` and ``cpu`` presets (and the ``cpu-*`` fine-tunes) are irnbench's own
          budgets, not the paper's schedule (``paper``).
        """,
    weights="""
        - Shipped (tag ``cpu``): rescale ×2 and ×4, irnbench's own CPU fine-tune chains on
          ``mini-train``, not the paper's model; each file's sidecar (``weights/*.json``) holds
          its record, docs/experiments.md its history.
        - Importable (tag ``official``): the authors' ``IRN_x2.pth``, ``IRN_x3.pth``,
          ``IRN_x4.pth``, ``IRN_x8.pth``, and ``IRN+_x4.pth`` with ``--tag plus``
          (``irnbench weights import irn IRN_x4.pth --task rescale --scale 4``; docs/weights.md).
        - ×3 and ×8 ship nothing: import the release or train (``irnbench train --plugin irn
          --scale 3``).
        """,
    citation=IRN_ECCV.citation,
    url=IRN_ECCV.url,
    code="github.com/pkuxmq/Invertible-Image-Rescaling",
    licence="code Apache-2.0 (pkuxmq/Invertible-Image-Rescaling); the authors state no "
            "separate licence for the released weights",
    also=(IRN_IJCV.citation,),
)
__doc__ = CARD.docstring()

#: Context (in LR pixels) kept around each tile; images with more HR pixels than
#: ``irnbench.ops.tiling.AUTO_TILE_PIXELS`` run tiled (option ``tile``).
TILE_OVERLAP_LR = 32

#: Scales this plugin builds: ×2 [8] and ×4 [8, 8] (ECCV), ×3 [12] (learnable downsampling) and
#: ×8 [8, 8, 8] (IJCV configs).
SCALES = (2, 3, 4, 8)


def paper_preset(batch_size: int) -> Preset:
    """The official IRN schedule (``train_IRN_x4.yml``): 500k Adam steps at 2e-4, 144² crops,
    halved every 100k; the IRN family's configs differ only in the batch size."""
    return Preset(
        name="paper",
        iterations=500_000,
        batch_size=batch_size,
        crop=144,
        lr=2e-4,
        betas=(0.9, 0.999),
        weight_decay=1e-5,
        milestones=(100_000, 200_000, 300_000, 400_000),
        gamma=0.5,
        grad_clip=10.0,
        val_every=5000,
        checkpoint_every=5000,
    )


#: The step time the ``gpu`` preset's hour assumes: an estimate, NOT YET MEASURED
#: (``scripts/gpu_check.sh`` measures it; docs/performance.md).
GPU_PRESET_STEP_SECONDS = 0.1


def _gpu_preset() -> Preset:
    """irnbench's one-GPU budget (NOT the paper's schedule; its hour is NOT YET MEASURED): the
    paper's batch and crops for an hour at ``GPU_PRESET_STEP_SECONDS``, at twice the paper's
    rate."""
    steps = round(3600 / GPU_PRESET_STEP_SECONDS)
    return Preset(
        name="gpu",
        iterations=steps,
        batch_size=16,
        crop=144,
        lr=4e-4,
        betas=(0.9, 0.999),
        weight_decay=1e-5,
        milestones=(steps * 6 // 10, steps * 8 // 10),
        gamma=0.5,
        warmup=1000,
        grad_clip=10.0,
        val_every=2000,
        checkpoint_every=1000,
    )


def _cpu_preset() -> Preset:
    """irnbench's CPU budget (NOT the paper's schedule): a higher rate after a warm-up, for
    progress within a few CPU hours; grad-norm clipping at 10, as the stacked exp() couplings
    explode without it (official issues #24, #35)."""
    return Preset(
        name="cpu",
        iterations=1500,
        batch_size=16,
        crop=32,
        lr=8e-4,
        betas=(0.9, 0.999),
        weight_decay=1e-5,
        milestones=(900, 1200),
        gamma=0.5,
        warmup=100,
        grad_clip=10.0,
        val_every=500,
        checkpoint_every=250,
    )


#: The fine-tunes' shared schedule: the ``cpu`` batch and crops, fresh Adam after a 50-step
#: warm-up, the whole held-out photo validated (``val_side=0``).
_FT = dict(batch_size=16, crop=32, betas=(0.9, 0.999), weight_decay=1e-5, gamma=0.5, warmup=50,
           grad_clip=10.0, val_side=0)


def _chain_presets() -> dict[str, Preset]:
    """The fine-tunes that made the shipped ×2 and ×4 weights (irnbench's own, NOT the paper's
    schedule), each continuing its predecessor; their record is docs/experiments.md."""
    color = ColorAugment()
    return {
        # the rest of the cpu schedule, with colour augmentation
        "cpu-ft-color": Preset(name="cpu-ft-color", iterations=500, lr=4e-4, milestones=(200,),
                               val_every=100, checkpoint_every=100, color=color,
                               continues="cpu", **_FT),
        # 6k steps at the paper's rate (written for ``train --bf16``)
        "cpu-long": Preset(name="cpu-long", iterations=6000, lr=2e-4, milestones=(3600, 4800),
                           val_every=1000, checkpoint_every=250, color=color,
                           continues="cpu-ft-color", **_FT),
        # saturation gains up to 3, clipped: the saturated colours mini-train lacks
        "cpu-sat": Preset(name="cpu-sat", iterations=3000, lr=1e-4, milestones=(1800, 2400),
                          val_every=500, checkpoint_every=250, color=ColorAugment(clip=True),
                          continues="cpu-long", **_FT),
        # per-channel casts as well: bright saturated yellows
        "cpu-cast": Preset(name="cpu-cast", iterations=2000, lr=1e-4, milestones=(1200, 1600),
                           val_every=500, checkpoint_every=250,
                           color=ColorAugment(clip=True, cast=True), continues="cpu-sat", **_FT),
        # cpu-long without colour augmentation, for ×4
        "cpu-long-plain": Preset(name="cpu-long-plain", iterations=3000, lr=2e-4,
                                 milestones=(1800, 2400), val_every=1000, checkpoint_every=250,
                                 continues="cpu", **_FT),
    }


class IRN(Method):
    """Invertible Rescaling Network: degrade = forward LR channels, restore = inverse of [y, z]
    (the module docstring is the model card; options: ``IRN.Options``)."""

    name = "irn"
    tasks = ("rescale", "compress")  # compress: the rescale ×s network and weights, no CRM
    card = CARD
    description = CARD.summary
    stochastic = True
    paper = CARD.paper(*irn_table1_rows("IRN"), *sain_readme_rows("IRN"))
    presets = {
        "paper": paper_preset(batch_size=16),  # official train_IRN_x{2,4}.yml (and the IJCV ×3)
        "gpu": _gpu_preset(),  # about 1 h on one GPU (an estimate, not yet measured)
        "cpu": _cpu_preset(),  # irnbench's CPU budget; the shipped chains start from it
        **_chain_presets(),
        # wiring check only (crop 32: a multiple of 2·s for s = 2, 4, 8; 30 at ×3)
        "smoke": Preset(
            name="smoke",
            iterations=6,
            batch_size=2,
            crop=32,
            lr=2e-4,
            betas=(0.9, 0.999),
            weight_decay=1e-5,
            grad_clip=10.0,
            val_every=3,
            checkpoint_every=2,
        ),
    }
    preset_notes = {
        "cpu-ft-color": "×2 chain, step 2 of 5",
        "cpu-long": "×2 chain, step 3 of 5",
        "cpu-sat": "×2 chain, step 4 of 5",
        "cpu-cast": "×2 chain, step 5 of 5 (shipped)",
        "cpu-long-plain": "×4 chain, step 2 of 2 (shipped)",
    }
    pretrained_cfgs: dict[str, PretrainedCfg] = shipped_cfgs(Path(__file__).parent, "irn",
                                                             paper=CARD.citation)
    official_weights = irn_official(CARD)

    @dataclass(frozen=True)
    class Options(BaseOptions):
        """IRN's options: the training loss weights and tiling."""

        lambda_fit: float | None = option(None, "weight of the LR guidance loss (default: s²)")
        lambda_ce: float = option(1.0, "weight of the latent (Gaussian CE) loss")
        lambda_rec: float = option(1.0, "weight of the HR reconstruction loss")
        train_temperature: float = option(1.0, "temperature of z in the training inverse pass")
        tile: int = tile_option()

    def __init__(self, task: Task, **options: Any):
        super().__init__(task, **options)
        if not self.supports(task):
            raise InvalidSetting(
                f"irn supports rescale and compress ×{', ×'.join(map(str, SCALES))}; "
                f"got {task!r}"
            )
        self.scale = int(task.setting["scale"])
        self.net = InvRescaleNet(self.scale)
        fit = self.opts.lambda_fit
        self.lambda_fit = float(self.scale**2 if fit is None else fit)
        self.lambda_ce = self.opts.lambda_ce
        self.lambda_rec = self.opts.lambda_rec
        self.train_temperature = self.opts.train_temperature

    @classmethod
    def supports(cls, task: Task) -> bool:
        return task.name in cls.tasks and int(task.setting.get("scale", 0)) in SCALES

    @classmethod
    def weights_task(cls, task: Task) -> Task:
        """IRN on ``compress`` ×s is the ``rescale`` ×s network with the same weights."""
        if task.name == "compress":
            return RescaleTask(scale=task.setting["scale"])
        return task

    # -- the two halves ----------------------------------------------------------------------
    def _use_tiles(self, hr_pixels: int) -> int:
        """HR tile side for an image (0: untiled); see ``irnbench.ops.tiling.resolve_tile``."""
        return resolve_tile(self.opts.tile, hr_pixels)

    def degrade(self, x: torch.Tensor) -> torch.Tensor:
        """HR B×3×H×W → float LR B×3×H/s×W/s (first 3 forward channels, not quantised)."""
        tile = self._use_tiles(x.shape[-2] * x.shape[-1])
        if tile:
            s = self.scale
            return tiled(lambda t: self.net(t)[:, :3], x, tile, TILE_OVERLAP_LR * s, 1 / s, s)
        return self.net(x)[:, :3]

    def degrade_key(self) -> str:
        """The forward pass is fixed by the scale, the tiling and the network's weights."""
        tile = self.opts.tile
        return f"irn-forward x{self.scale} tile={tile} {module_fingerprint(self.net)}"

    def latent_shape(self, y: torch.Tensor) -> tuple[int, ...]:
        """Shape of z for an LR batch: B×(3s² − 3)×h×w."""
        b, _, h, w = y.shape
        return (b, self.net.out_channels - 3, h, w)

    def sample_z(
        self,
        y: torch.Tensor,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """z ~ N(0, I)·temperature, shaped for ``y``, on y's device and dtype."""
        z = torch.randn(self.latent_shape(y), generator=generator, device=y.device, dtype=y.dtype)
        return z * temperature

    def restore_with_z(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Inverse pass of concat[y, z] → HR B×3×H×W (tiled on large images: the full-image z is
        sliced per tile, so tiled and untiled restorations see the same z)."""
        t = torch.cat((y, z), 1)
        tile = self._use_tiles(y.shape[-2] * y.shape[-1] * self.scale**2)
        if tile:
            return tiled(self.net.inverse, t, tile // self.scale, TILE_OVERLAP_LR, self.scale)
        return self.net.inverse(t)

    def restore(
        self,
        y: torch.Tensor,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        **channel_info: Any,
    ) -> torch.Tensor:
        """Quantised LR → HR with a fresh z ~ N(0, I)·temperature (``channel_info`` is ignored)."""
        return self.restore_with_z(y, self.sample_z(y, temperature, generator))

    # -- training ----------------------------------------------------------------------------
    def training_loss(self, batch: dict[str, Any], task: Task) -> dict[str, torch.Tensor]:
        """IRN's three terms, each summed per sample and averaged over the batch (official code).

        batch: ``hr`` B×3×H×W, ``lr_ref`` the float bicubic LR, and for z′ either ``randn``
        (the runner's per-sample noise, so a DDP run does not depend on the world size) or
        else an optional ``generator``.
        fit = λ_fit·mean_B Σ(y − lr_ref)² on the un-quantised y; ce = λ_ce·mean_B Σz²;
        rec = λ_rec·mean_B Σ√((x̂ − hr)² + 1e-6), x̂ = f⁻¹([channel(y), z′]) with a fresh
        z′ ~ N(0, 1) and the straight-through training channel, so the gradient reaches the
        forward pass through the quantiser.
        """
        hr = batch["hr"]
        lr_ref = batch["lr_ref"].detach()
        b = hr.shape[0]
        out = self.net(hr)
        y, z = out[:, :3], out[:, 3:]
        fit = self.lambda_fit * (y - lr_ref).pow(2).sum() / b
        ce = self.lambda_ce * z.pow(2).sum() / b
        y_q = task.channel(y, train=True)
        noise = batch.get("randn")
        if noise is not None:
            shape = self.latent_shape(y_q)[1:]
            z_new = noise(shape, dtype=y_q.dtype) * self.train_temperature
        else:
            z_new = self.sample_z(y_q, self.train_temperature, batch.get("generator"))
        x_hat = self.restore_with_z(y_q, z_new)[:, :3]
        rec = self.lambda_rec * torch.sqrt((x_hat - hr).pow(2) + 1e-6).sum() / b
        return {"total": fit + ce + rec, "fit": fit, "ce": ce, "rec": rec}
