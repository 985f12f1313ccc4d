"""The ``tar`` method: Task-Aware image Downscaling (TAD & TAU; Kim, Choi, Lim, Lee, ECCV 2018).

Written from the paper and its project page. No official code was found, so this is irnbench's
reconstruction; every choice that is not confirmed by the paper's project page is marked [U].

Idea [R: project page]: an auto-encoder — a downscaling CNN g (TAD) produces the LR image, an
upscaling CNN f (TAU) restores it, both trained jointly with

    L = L1(f(Q(g(x))), x) + λ·L1(g(x), bicubic(x))

where the guide term keeps the LR close to the (float, MATLAB-bicubic) LR reference.

Choices
    - Architecture: the third-party port's AETAD (see ``model.py``), generalised to ×4 with a 1×1
      projection after space-to-depth(4) and two pixel-shuffle stages in TAU [3P + irnbench].
    - λ = 1 [U]; both L1 terms are means over pixels; the guide is on the un-quantised LR.
    - Q = ``task.channel(y, train=True)``: the harness's straight-through rounding to k/255
      (option ``quantizer="soft"`` switches to the soft-round gradient) [U: the paper's handling
      of quantisation is not known].
    - Presets [U]: ``paper`` is an EDSR-like schedule chosen by irnbench, not a published one —
      Adam 1e-4 (β 0.9/0.999), batch 16, 96² crops, 300k steps halved at 100k and 200k; ``cpu``
      trains the slim ``cpu`` configuration within about an hour on two CPU cores; ``smoke``
      takes seconds.
    - Decolorization (task ``decolorize``, irnbench's learned joint baseline for IRN-Color): the
      same networks at scale 1 (``model.py``) — TAD maps RGB → grey, TAU grey → RGB — trained with
      the same two L1 terms, the guide now being the luma 0.299R + 0.587G + 0.114B, and the same
      runner and presets (``cpu`` with 48² crops: ``decolorize_presets``). The paper shows
      colourisation but its model and numbers are [U], so there are no paper rows for it. The
      rescaling networks and their state-dict keys are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from irnbench.plugin import (
    IRN_TABLE1,
    InvalidSetting,
    Method,
    Paper,
    PaperResult,
    Preset,
    PretrainedCfg,
    Task,
    config_overrides,
    option,
    overridden,
    shipped_cfgs,
)
from irnbench.plugin import Options as BaseOptions

from .model import CONFIGS, TAD, TAU, TARConfig

__all__ = ["TAR", "SCALES"]

SCALES = (2, 4)

TAR_SOURCE = f"TAD paper as quoted by {IRN_TABLE1}"
TAR_NOTE = (
    "as quoted by the IRN paper, unverified against TAD's own (Kim et al., ECCV 2018); PSNR only; "
    "B100 ×2 above Set14 ×2 is unusual"
)
# (scale, dataset) → PSNR-Y, "TAD & TAU" rows of IRN's Table 1 (no SSIM given).
_TABLE1 = {
    (2, "set5"): 38.46,
    (2, "set14"): 35.52,
    (2, "b100"): 36.68,
    (2, "urban100"): 35.03,
    (2, "div2k-val"): 39.01,
    (4, "set5"): 31.81,
    (4, "set14"): 28.63,
    (4, "b100"): 28.51,
    (4, "urban100"): 26.63,
    (4, "div2k-val"): 31.16,
}


@dataclass(frozen=True)
class _TAROptions(BaseOptions):
    """TAR's options: the configuration (and overrides of its fields), the guide weight and the
    training channel's rounding gradient."""

    config: str = option("paper", "model size", choices=CONFIGS)
    lambda_guide: float = option(1.0, "weight of the LR guide loss")
    quantizer: str = option("ste", "rounding gradient of the training channel: straight-through "
                                   "or soft-round", choices=("ste", "soft"))


class TAR(Method):
    """TAD & TAU: jointly trained downscaling and upscaling CNNs (see the module docstring).

    Constructor options (all optional): ``config`` ("paper" — default —, "cpu", "smoke"), any
    ``TARConfig`` field to override it, ``lambda_guide`` (1.0) and ``quantizer`` ("ste" or
    "soft", the training channel's gradient). The configuration is stored with the weights
    (buffer ``arch``) and ``load_state_dict`` rebuilds the networks to it.
    """

    name = "tar"
    tasks = ("rescale", "decolorize")
    description = "Task-Aware Downscaling & Upscaling (Kim et al., ECCV 2018)"
    paper = Paper(
        citation="Kim, Choi, Lim, Lee, 'Task-Aware Image Downscaling', ECCV 2018",
        url="https://cv.snu.ac.kr/research/taid/",
        results=tuple(
            PaperResult("TAD & TAU", "rescale", f"x{s}", ds, {"psnr_y": v}, TAR_SOURCE, TAR_NOTE)
            for (s, ds), v in _TABLE1.items()
        ),
    )
    presets = {
        "paper": Preset(
            name="paper", iterations=300_000, batch_size=16, crop=96, lr=1e-4,
            betas=(0.9, 0.999), milestones=(100_000, 200_000), gamma=0.5,
            val_every=5000, checkpoint_every=5000, options={"config": "paper"},
        ),
        "cpu": Preset(
            name="cpu", iterations=4000, batch_size=8, crop=64, lr=5e-4,
            milestones=(2400, 3200), gamma=0.5, warmup=100, grad_clip=10.0,
            val_every=500, checkpoint_every=250, options={"config": "cpu"},
        ),
        "smoke": Preset(
            name="smoke", iterations=4, batch_size=2, crop=32, lr=1e-4, grad_clip=10.0,
            val_every=2, checkpoint_every=2, options={"config": "smoke"},
        ),
    }
    #: decolorize runs both networks at full resolution (a ×2 trunk sees a quarter of the pixels),
    #: so its ``cpu`` preset takes 48² crops instead of 64² to stay within about an hour on two
    #: cores: a step costs about 2.2× a rescale ×2 ``cpu`` step instead of 3.2× (one thread, this
    #: machine, both measured side by side); the other presets are shared.
    decolorize_presets = {
        **presets,
        "cpu": replace(presets["cpu"], crop=48),
    }
    # Fine-tunes tried on the decolorize weights and not shipped: docs/experiments.md.
    #: Weights shipped in ``weights/`` (irnbench ``cpu``-preset runs; see their JSON sidecars).
    pretrained_cfgs: dict[str, PretrainedCfg] = shipped_cfgs(Path(__file__).parent, "tar")

    Options = config_overrides(TARConfig, _TAROptions, "Options")

    def __init__(self, task: Task, **options: Any):
        super().__init__(task, **options)
        if not self.supports(task):
            raise InvalidSetting(f"tar supports rescale ×2 and ×4 and decolorize; got {task!r}")
        #: decolorize: scale 1, RGB → 1 grey channel → RGB (see ``model.py``).
        self.decolorize = task.name == "decolorize"
        self.scale = 1 if self.decolorize else int(task.setting["scale"])
        self.lambda_guide = self.opts.lambda_guide
        self.quantizer = self.opts.quantizer
        self._build(replace(CONFIGS[self.opts.config], **overridden(self.opts, TARConfig)))

    def _build(self, cfg: TARConfig) -> None:
        """(Re)create the networks for ``cfg`` on the current device and dtype."""
        ref = next(self.parameters(), None)
        self.cfg = cfg
        if self.decolorize:
            self.downscaler = TAD(1, cfg, channels_in=3, channels_out=1)
            self.upscaler = TAU(1, cfg, channels_in=1, channels_out=3)
        else:
            self.downscaler = TAD(self.scale, cfg)
            self.upscaler = TAU(self.scale, cfg)
        self.register_buffer("arch", cfg.as_tensor())
        if ref is not None:
            self.to(device=ref.device, dtype=ref.dtype)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        tag = state_dict.get("arch")
        if tag is not None:
            cfg = TARConfig.from_tensor(tag)
            if cfg != self.cfg:
                self._build(cfg)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    @classmethod
    def presets_for(cls, task: Task) -> dict[str, Preset]:
        """``decolorize_presets`` for decolorize (a cheaper ``cpu`` preset), else ``presets``."""
        return cls.decolorize_presets if task.name == "decolorize" else cls.presets

    @classmethod
    def supports(cls, task: Task) -> bool:
        if task.name == "decolorize":
            return True
        return task.name in cls.tasks and int(task.setting.get("scale", 0)) in SCALES

    def degrade(self, x: torch.Tensor) -> torch.Tensor:
        """HR B×3×H×W (H, W multiples of s) → float LR B×3×H/s×W/s, or grey B×1×H×W for
        decolorize (the harness quantises)."""
        h, w = x.shape[-2:]
        if h % self.scale or w % self.scale:
            raise ValueError(f"tar ×{self.scale} needs HR sizes that are multiples of "
                             f"{self.scale}, got {h}×{w}")
        return self.downscaler(x)

    def restore(self, y: torch.Tensor, **channel_info: Any) -> torch.Tensor:
        """Quantised LR (or grey) → HR via TAU (``channel_info`` is ignored)."""
        return self.upscaler(y)

    def training_loss(self, batch: dict[str, Any], task: Task) -> dict[str, torch.Tensor]:
        """rec = L1(TAU(Q(TAD(x))), x), guide = λ·L1(TAD(x), reference); total = rec + guide.

        The reference (``lr_ref``) is the task's: the bicubic LR, or the luma for decolorize.
        """
        hr = batch["hr"]
        lr = self.downscaler(hr)
        guide = self.lambda_guide * (lr - batch["lr_ref"].detach()).abs().mean()
        x_hat = self.upscaler(task.channel(lr, train=True, quantizer=self.quantizer))
        rec = (x_hat - hr).abs().mean()
        return {"total": rec + guide, "rec": rec, "guide": guide}
