from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from irnbench.ops.tiling import resolve_tile, tiled
from irnbench.plugin import (
    CAR_TIP,
    IRN_TABLE1,
    InvalidSetting,
    Method,
    ModelCard,
    Preset,
    PretrainedCfg,
    Task,
    config_overrides,
    irn_table1_rows,
    option,
    overridden,
    sain_readme_rows,
    shipped_cfgs,
    tile_option,
)
from irnbench.plugin import Options as BaseOptions

from .model import CONFIGS, EDSR, CARConfig, ResamplerNet, kernel_size
from .official import car_official
from .sampler import adaptive_grid_sample

__all__ = ["CARD", "CAR", "SCALES", "offset_loss", "tv_loss"]

CARD = ModelCard(
    summary=f"Content Adaptive Resampler + EDSR ({CAR_TIP.inline})",
    what="""
        The ``car`` method: CAR & EDSR, rescale ×2 and ×4. degrade: the resampler predicts, per
        LR pixel, a k×k kernel (k = 3s + 1; non-negative, summing to 1) and per-tap offsets
        Δx, Δy ∈ (−1, 1) (×s HR pixels), shared by the three colour channels, and the adaptive
        grid sampler (``sampler.py``, pure PyTorch, the CUDA kernel's formula and edge rule)
        applies them to the HR image; the harness rounds the float LR to uint8, as the released
        ``run.py`` does before EDSR. restore: EDSR (``paper``: 32 blocks × 256 features,
        residual scale 0.1, mean shift). Written from the paper and the released inference code
        (sunwj/CAR); training follows the public MindSpore training port [3P] (the paper's own
        training details are unpublished).
        """,
    departures="""
        - Any HR size that is a multiple of the scale runs: the HR image is reflection-padded
          at the bottom/right to a multiple of 8 for the resampler's 1/8-resolution encoder only,
          its kernel and offset maps are cropped back to the H/s × W/s grid, and the sampler
          runs on the unpadded image. The released code needs multiples of 8 (its ``run.py``
          crops to ×8); on those sizes this is exactly the released pipeline.
        - The sampler processes its k² taps in chunks (``chunk_taps``), and ``restore`` runs EDSR
          tiled above ``AUTO_TILE_PIXELS`` with an overlap equal to EDSR's receptive radius (tiled
          and untiled outputs agree), for bounded memory; ``degrade`` is not tiled.
        - Training, which the release lacks (its sampler has no backward): LR_q is the
          harness's training channel with the port's soft-round gradient (× (1 − cos 2πx));
          loss = L1(x̂, HR) + 0.005·TV + 0.001·Offset, the port's weights [3P] (the paper's λ are
          [U]). Offset: mean over (B, LR pixels) of Σ_t w_t·√(Δx_t² + Δy_t² + 1e-12), w_t the
          distance of tap t from the centre over k. TV: Σ over taps and LR pixels of
          K_t·(|∂_i Δx_t| + |∂_j Δx_t| + |∂_i Δy_t| + |∂_j Δy_t|) (forward differences weighted
          by the kernel at the pair's first pixel), divided by the batch size [3P; the exact
          discretisation is U]. [U]: an irnbench choice, not a confirmed detail of the paper.
        - Presets [U]: ``paper`` / ``paper-x2`` are the port's ×4 / ×2 schedules, an "epoch"
          read as one crop per DIV2K training image; the runner's flip/transpose augmentation
          applies (the port flips only). ``cpu`` is irnbench's own budget and slim model.
        """,
    weights="""
        - Shipped (tag ``cpu``): rescale ×2 and ×4, irnbench's own ``cpu``-preset runs of the slim
          ``cpu`` configuration on ``mini-train``; not the paper's model.
        - Importable (tag ``official``): the authors' ``2x/kgn.pth`` + ``2x/usn.pth`` and
          ``4x/kgn.pth`` + ``4x/usn.pth`` (``irnbench weights import car 4x/kgn.pth 4x/usn.pth
          --task rescale --scale 4``; docs/weights.md).
        """,
    citation=CAR_TIP.citation,
    url=CAR_TIP.url,
    code="github.com/sunwj/CAR",
    licence="code GPL-3.0 (sunwj/CAR); the authors state no separate licence for the released "
            "weights",
)
__doc__ = CARD.docstring()

SCALES = (2, 4)

CAR_SOURCE = f"CAR paper as quoted by {IRN_TABLE1}"

#: 10^−0.1: repeating a milestone n times multiplies the rate by 10^(−n/10).
_DECADE_GAMMA = 10 ** -0.1


def _port_milestones(total: int) -> tuple[int, ...]:
    """×0.5, ×0.2, ×0.5, ×0.2 at 20/40/60/80 % as repeated milestones of γ = 10^−0.1."""
    return tuple(
        m for frac, reps in ((0.2, 3), (0.4, 7), (0.6, 3), (0.8, 7))
        for m in [round(frac * total)] * reps
    )


def _paper_preset(name: str, iterations: int, batch: int, crop: int) -> Preset:
    return Preset(
        name=name, iterations=iterations, batch_size=batch, crop=crop, lr=1e-4,
        betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, milestones=_port_milestones(iterations),
        gamma=_DECADE_GAMMA, val_every=1000, checkpoint_every=1000,
        options={"config": "paper"},
    )


@dataclass(frozen=True)
class _CAROptions(BaseOptions):
    """CAR's options: the configuration (and overrides of its fields), the loss weights, the
    sampler's chunking and ``restore``'s tiling (HR tile side)."""

    config: str = option("paper", "model size", choices=CONFIGS)
    lambda_tv: float = option(0.005, "weight of the offsets' total variation loss")
    lambda_offset: float = option(0.001, "weight of the offset magnitude loss")
    chunk_taps: int | None = option(None, "sampler taps per chunk (none or 0: automatic)")
    tile: int = tile_option()


def offset_loss(offsets_h: torch.Tensor, offsets_v: torch.Tensor) -> torch.Tensor:
    """Mean over (B, LR pixels) of Σ_t w_t·|Δ_t|, w_t = distance of tap t from the centre / k."""
    k2 = offsets_h.shape[1]
    k = int(round(k2**0.5))
    t = torch.arange(k2, device=offsets_h.device, dtype=offsets_h.dtype)
    c = (k - 1) / 2
    w = torch.sqrt((t // k - c) ** 2 + (t % k - c) ** 2) / k
    mag = torch.sqrt(offsets_h.pow(2) + offsets_v.pow(2) + 1e-12)
    return (w.view(1, k2, 1, 1) * mag).sum(1).mean()


def tv_loss(kernels: torch.Tensor, offsets_h: torch.Tensor, offsets_v: torch.Tensor
            ) -> torch.Tensor:
    """Kernel-weighted total variation of the offset maps, summed and divided by the batch."""
    total = kernels.new_zeros(())
    for off in (offsets_h, offsets_v):
        di = (off[..., 1:, :] - off[..., :-1, :]).abs() * kernels[..., :-1, :]
        dj = (off[..., :, 1:] - off[..., :, :-1]).abs() * kernels[..., :, :-1]
        total = total + di.sum() + dj.sum()
    return total / kernels.shape[0]


class CAR(Method):
    """CAR & EDSR: content-adaptive resampler down, EDSR up (the module docstring is the model
    card; options: ``CAR.Options``). The configuration is stored with the weights (buffer
    ``arch``) and ``load_state_dict`` rebuilds the networks to it, so ``cpu`` weights load into
    a method created with the default (``paper``) configuration."""

    name = "car"
    tasks = ("rescale",)
    card = CARD
    description = CARD.summary
    paper = CARD.paper(*irn_table1_rows("CAR & EDSR", CAR_SOURCE),
                       *sain_readme_rows("CAR & EDSR"))
    presets = {
        # the port's ×4 and ×2 schedules: 500 epochs of 800 crops (module docstring)
        "paper": _paper_preset("paper", iterations=25_000, batch=16, crop=192),
        "paper-x2": _paper_preset("paper-x2", iterations=17_000, batch=24, crop=96),
        # irnbench's CPU budget, NOT the paper's: the slim model, crops a multiple of 8 and s
        "cpu": Preset(
            name="cpu", iterations=2500, batch_size=8, crop=64, lr=5e-4,
            milestones=(1500, 2100), gamma=0.5, warmup=100, grad_clip=10.0,
            val_every=500, checkpoint_every=250, options={"config": "cpu"},
        ),
        "smoke": Preset(  # wiring check only (seconds)
            name="smoke", iterations=4, batch_size=2, crop=32, lr=1e-4, grad_clip=10.0,
            val_every=2, checkpoint_every=2, options={"config": "smoke"},
        ),
    }
    pretrained_cfgs: dict[str, PretrainedCfg] = shipped_cfgs(Path(__file__).parent, "car",
                                                             paper=CARD.citation)
    official_weights = car_official(CARD)

    Options = config_overrides(CARConfig, _CAROptions, "Options")

    def __init__(self, task: Task, **options: Any):
        super().__init__(task, **options)
        if not self.supports(task):
            raise InvalidSetting(f"car supports rescale ×2 and ×4; got {task!r}")
        self.scale = int(task.setting["scale"])
        self.lambda_tv = self.opts.lambda_tv
        self.lambda_offset = self.opts.lambda_offset
        self.chunk_taps = self.opts.chunk_taps or None
        self._build(replace(CONFIGS[self.opts.config], **overridden(self.opts, CARConfig)))

    def _build(self, cfg: CARConfig) -> None:
        """(Re)create the networks for ``cfg`` on the current device and dtype."""
        ref = next(self.parameters(), None)
        self.cfg = cfg
        self.resampler = ResamplerNet(self.scale, cfg)
        self.upscaler = EDSR(self.scale, cfg.edsr_blocks, cfg.edsr_feats, cfg.edsr_res_scale,
                             mean_conv=bool(cfg.mean_conv))
        self.register_buffer("arch", cfg.as_tensor())
        if ref is not None:
            self.to(device=ref.device, dtype=ref.dtype)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        tag = state_dict.get("arch")
        if tag is not None:
            cfg = CARConfig.from_tensor(tag)
            if cfg != self.cfg:
                self._build(cfg)
            # an older, shorter tag of the same configuration loads as the current format
            state_dict = {**state_dict, "arch": cfg.as_tensor().to(tag.device)}
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    @classmethod
    def supports(cls, task: Task) -> bool:
        return task.name in cls.tasks and int(task.setting.get("scale", 0)) in SCALES

    @property
    def kernel_size(self) -> int:
        return kernel_size(self.scale)

    # -- the two halves ----------------------------------------------------------------------
    def resample_params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Kernels, Δx, Δy (B×k²×H/s×W/s) for HR ``x``; pads to ×8 internally (module doc)."""
        h, w = x.shape[-2:]
        s = self.scale
        if h % s or w % s:
            raise ValueError(f"car ×{s} needs HR sizes that are multiples of {s}, got {h}×{w}")
        ph, pw = (-h) % 8, (-w) % 8
        xp = F.pad(x, (0, pw, 0, ph), mode="reflect") if ph or pw else x
        kernels, dx, dy = self.resampler(xp)
        if ph or pw:
            kernels, dx, dy = (t[..., : h // s, : w // s] for t in (kernels, dx, dy))
        return kernels, dx, dy

    def degrade(self, x: torch.Tensor) -> torch.Tensor:
        """HR B×3×H×W → float LR B×3×H/s×W/s (not quantised; the harness rounds it)."""
        kernels, dx, dy = self.resample_params(x)
        return adaptive_grid_sample(x, kernels, dx, dy, self.scale, chunk_taps=self.chunk_taps)

    def _tile_overlap_lr(self) -> int:
        # Receptive radius of EDSR in LR pixels: head, 2 per block, body conv, first up conv,
        # plus one for the remaining HR-side convs — tiled and untiled results agree.
        return 2 * self.cfg.edsr_blocks + 5

    def restore(self, y: torch.Tensor, **channel_info: Any) -> torch.Tensor:
        """Quantised LR → HR via EDSR (``channel_info`` is ignored)."""
        tile = resolve_tile(self.opts.tile, y.shape[-2] * y.shape[-1] * self.scale**2)
        if tile:
            s = self.scale
            return tiled(self.upscaler, y, max(1, tile // s), self._tile_overlap_lr(), s)
        return self.upscaler(y)

    # -- training ----------------------------------------------------------------------------
    def training_loss(self, batch: dict[str, Any], task: Task) -> dict[str, torch.Tensor]:
        """L1(x̂, HR) + λ_tv·TV + λ_offset·Offset with the soft-round channel (module doc)."""
        hr = batch["hr"]
        kernels, dx, dy = self.resample_params(hr)
        lr = adaptive_grid_sample(hr, kernels, dx, dy, self.scale, chunk_taps=self.chunk_taps)
        lr_q = task.channel(lr, train=True, quantizer="soft")
        sr = self.upscaler(lr_q)
        l1 = (sr - hr).abs().mean()
        tv = self.lambda_tv * tv_loss(kernels, dx, dy)
        off = self.lambda_offset * offset_loss(dx, dy)
        return {"total": l1 + tv + off, "l1": l1, "tv": tv, "offset": off}
