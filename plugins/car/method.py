"""The ``car`` method: Content Adaptive Resampler + EDSR (Sun & Chen, IEEE TIP 2020), ×2 / ×4.

Written from the paper. Only CAR's inference code is public (sunwj/CAR; its sampler
has no backward), so training follows the facts known from the public MindSpore training port
[3P]; everything marked [U] below is an irnbench choice, not a confirmed detail of the paper.

Pipeline
    degrade(x): the resampler predicts, per LR pixel, a k×k kernel (k = 3s + 1; non-negative,
    summing to 1) and per-tap offsets Δx, Δy ∈ (−1, 1) (×s HR pixels), shared by the three colour
    channels; the pure-PyTorch adaptive grid sampler (``sampler.py``, exact CUDA-kernel formula
    and edge rule) applies them to the HR image. The output is the float LR; the harness clamps
    and rounds it to uint8 (the released ``run.py`` does the same before EDSR).
    restore(y): EDSR (``paper``: 32 blocks × 256 features, residual scale 0.1, mean shift) on the
    quantised LR.

HR sizes. The resampler's encoder works at 1/8 resolution, so the released code needs H, W
multiples of 8 (its ``run.py`` crops to ×8). Here any H, W that are multiples of the scale work:
the HR image is reflection-padded at the bottom/right to a multiple of 8 for the resampler only,
the kernel and offset maps are cropped back to the H/s × W/s grid, and the sampler runs on the
unpadded image (so the sampler's own edge rule applies at the real image border). On sizes that
are already multiples of 8 this is exactly the released pipeline.

Memory. The sampler processes its k² taps in chunks (``chunk_taps``); ``restore`` runs EDSR
tiled above ``AUTO_TILE_PIXELS`` HR pixels, with an overlap equal to EDSR's receptive radius, so
tiled and untiled outputs agree. ``degrade`` is not tiled: the resampler's 1/8-resolution encoder
sees the whole image, as in the released code.

Training (``training_loss``)
    LR = sampler(HR); LR_q = ``task.channel(LR, train=True, quantizer="soft")`` — forward rounding
    to k/255, backward gradient × (1 − cos 2πx), the port's "soft round"; x̂ = EDSR(LR_q).
    total = L1(x̂, HR) + 0.005·TV + 0.001·Offset, the weights of the public training port [3P]:
    the CAR paper's own λ values are [U].
    - L1: mean absolute error over pixels.
    - Offset: mean over (B, LR pixels) of Σ_t w_t·√(Δx_t² + Δy_t² + 1e-12), w_t = Euclidean
      distance of tap t from the centre tap divided by k (far taps pay more for moving); Δ are the
      tanh outputs (before ×s). The 1e-12 only keeps the gradient finite at Δ = 0.
    - TV: Σ over (taps, LR pixels) of K_t·(|∂_i Δx_t| + |∂_j Δx_t| + |∂_i Δy_t| + |∂_j Δy_t|)
      (forward differences, weighted by the kernel weight at the first pixel of each pair),
      divided by the batch size only, as the port describes ("normalised by batch") [3P; the exact
      discretisation is U].
    The loss weights and ``chunk_taps`` are constructor options.

Presets. ``paper`` is the port's ×4 schedule and ``paper-x2`` its ×2 one (irnbench presets are
not per scale): Adam, lr 1e-4 stepped to 5e-5 / 1e-5 / 5e-6 / 1e-6 at 20/40/60/80 % of 500 epochs,
crops 192 (×4) / 96 (×2), batch 16 / 24, flips. Caveats: an "epoch" is taken as one crop per DIV2K
training image (800), so 500 epochs = 25,000 steps at batch 16 and 17,000 at batch 24 [U]; Adam's
eps is the port's 1e-6; the runner also applies the flip/transpose augmentation it applies to every
method (the port uses H/V flips only). The step factors 0.5, 0.2, 0.5, 0.2 are expressed with the
harness's single ``gamma`` by repeating milestones: γ = 10^−0.1 applied 3, 7, 3, 7 times gives
×0.501, ×0.1, ×0.0501, ×0.01 of the base rate (within 0.3 % of the port's values). ``cpu`` trains
the slim ``cpu`` configuration (not the paper's model) within about an hour on two CPU cores;
``smoke`` takes seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from irnbench.ops.tiling import resolve_tile, tiled
from irnbench.plugin import (
    IRN_TABLE1,
    InvalidSetting,
    Method,
    Paper,
    Preset,
    PretrainedCfg,
    Task,
    config_overrides,
    option,
    overridden,
    sain_rows,
    shipped_cfgs,
    table_rows,
    tile_option,
)
from irnbench.plugin import Options as BaseOptions

from .model import CONFIGS, EDSR, CARConfig, ResamplerNet, kernel_size
from .official import CAR_OFFICIAL
from .sampler import adaptive_grid_sample

__all__ = ["CAR", "SCALES", "offset_loss", "tv_loss"]

SCALES = (2, 4)

CAR_SOURCE = f"CAR paper as quoted by {IRN_TABLE1}"

# (scale, dataset) → (PSNR-Y, SSIM-Y), "CAR & EDSR" rows of IRN's Table 1.
_TABLE1 = {
    (2, "set5"): (38.94, 0.9658),
    (2, "set14"): (35.61, 0.9404),
    (2, "b100"): (33.83, 0.9262),
    (2, "urban100"): (35.24, 0.9572),
    (2, "div2k-val"): (38.26, 0.9599),
    (4, "set5"): (33.88, 0.9174),
    (4, "set14"): (30.31, 0.8382),
    (4, "b100"): (29.15, 0.8001),
    (4, "urban100"): (29.28, 0.8711),
    (4, "div2k-val"): (32.82, 0.8837),
}
# "CAR & EDSR" rows of SAIN's README JPEG table (DIV2K val, QF 30/50/70/80/90).
_SAIN_ROWS = {
    2: [(27.83, 0.7602), (28.66, 0.7903), (29.44, 0.8165), (30.07, 0.8347), (31.31, 0.8648)],
    4: [(25.25, 0.6610), (25.76, 0.6827), (26.22, 0.7037), (26.69, 0.7214), (27.91, 0.7604)],
}

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
    """CAR & EDSR: content-adaptive resampler down, EDSR up (see the module docstring).

    Constructor options (all optional): ``config`` ("paper" — default —, "cpu", "smoke"), any
    ``CARConfig`` field to override it (e.g. ``edsr_blocks=8``), ``lambda_tv`` (0.005),
    ``lambda_offset`` (0.001), ``chunk_taps`` (sampler taps per chunk; default automatic) and
    ``tile`` (HR tile side for ``restore``; 0 = automatic above ``AUTO_TILE_PIXELS``).

    The configuration is stored with the weights (buffer ``arch``), and ``load_state_dict``
    rebuilds the networks to the stored configuration, so weights of the ``cpu`` model load into
    a method created with the default (paper) configuration.
    """

    name = "car"
    tasks = ("rescale",)
    description = "Content Adaptive Resampler + EDSR (Sun & Chen, IEEE TIP 2020)"
    paper = Paper(
        citation="Sun, Chen, 'Learned Image Downscaling for Upscaling using Content Adaptive "
        "Resampler', IEEE TIP 29:4027-4040, 2020",
        url="https://arxiv.org/abs/1907.12904",
        results=(*table_rows("CAR & EDSR", CAR_SOURCE, _TABLE1),
                 *sain_rows("CAR & EDSR", _SAIN_ROWS)),
    )
    presets = {
        "paper": _paper_preset("paper", iterations=25_000, batch=16, crop=192),
        "paper-x2": _paper_preset("paper-x2", iterations=17_000, batch=24, crop=96),
        # irnbench's CPU budget (NOT the paper's schedule or model): slim resampler, EDSR 4×32,
        # 64² crops (a multiple of 8 and of both scales), Adam 5e-4 with a short warm-up.
        "cpu": Preset(
            name="cpu", iterations=2500, batch_size=8, crop=64, lr=5e-4,
            milestones=(1500, 2100), gamma=0.5, warmup=100, grad_clip=10.0,
            val_every=500, checkpoint_every=250, options={"config": "cpu"},
        ),
        "smoke": Preset(
            name="smoke", iterations=4, batch_size=2, crop=32, lr=1e-4, grad_clip=10.0,
            val_every=2, checkpoint_every=2, options={"config": "smoke"},
        ),
    }
    #: Weights shipped in ``weights/`` (irnbench ``cpu``-preset runs; see their JSON sidecars).
    pretrained_cfgs: dict[str, PretrainedCfg] = shipped_cfgs(Path(__file__).parent, "car")
    #: The authors' ×2 / ×4 releases (``irnbench weights import car kgn.pth usn.pth ...``).
    official_weights = CAR_OFFICIAL

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
