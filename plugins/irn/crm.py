from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from irnbench.ops.quantize import quantize
from irnbench.ops.tiling import resolve_tile, tiled
from irnbench.plugin import (
    IRN_IJCV,
    InvalidSetting,
    Method,
    ModelCard,
    Preset,
    PretrainedCfg,
    RescaleTask,
    Task,
    WeightsNotFound,
    config_overrides,
    find_weights,
    load_weights,
    module_fingerprint,
    option,
    overridden,
    sha256_file,
    shipped_cfgs,
    tile_option,
    train_command,
)
from irnbench.plugin import Options as BaseOptions

from .blocks import DenseBlock
from .method import CARD as IRN_CARD
from .method import IRN, SCALES
from .official import irn_crm_official

__all__ = ["CARD", "IRNCRM", "CRMNet", "CRMConfig", "RRDB", "CONFIGS"]

CARD = ModelCard(
    summary=f"IRN ×2 + JPEG compression restoration module ({IRN_IJCV.inline})",
    what="""
        The ``irn-crm`` method: IRN ×s with a JPEG compression restoration module (the IJCV
        paper's IRN-CRM), task ``compress``. HR → IRN forward → uint8 LR → real JPEG (the
        harness, Pillow) → CRM → uint8 → IRN inverse with z ~ N(0, I). The CRM is an RRDB
        network without upsampling (``conv_first``, RRDBs of three residual dense blocks with
        residual scale 0.2, ``trunk_conv``, long skip, ``conv_last``); training freezes the IRN
        (the ``rescale`` ×s IRN found by the usual lookup) and minimises the squared error of
        CRM(JPEG(LR)) to the clean uint8 LR, summed per sample and averaged over the batch (the
        paper's mode, official issue #42). The frozen IRN is saved with the CRM, so an
        ``irn-crm`` weights file is self-contained. Written from the IJCV 2022 paper and the
        official code (``IRN_model_CRM.py``, ``train/test_IRN-Compression_x2_q90.yml``).
        """,
    departures="""
        - One CRM conditioned on the JPEG quality (a constant q/100 plane next to the decoded
          LR), not one module per quality as the official q = 90 config; training draws each
          sample's quality uniformly between the task's lowest and highest (30–90 by default),
          so one set of weights serves the whole rate–distortion curve. The ``official``
          config is the released module exactly: unconditioned and trained at q = 90 only.
        - The ``cpu`` and ``smoke`` configs are smaller than the paper's (64 features, 8 RRDBs,
          growth 32) and add an input-to-output skip with a zero-initialised last conv, so the
          module starts as the identity (IRN-CRM ≥ IRN from step 0) for short CPU budgets.
        - The dense blocks are the IRN plugin's ``DenseBlock`` (last conv zero-initialised,
          where ESRGAN scales a Kaiming init by 0.1).
        - The JPEG of training is the task's channel: real Pillow JPEG forward with an identity
          gradient (with the IRN frozen no gradient needs to cross it).
        """,
    weights="""
        - Shipped (tag ``cpu``): compress ×2, irnbench's own ``cpu``-preset CRM on
          ``mini-train`` with the shipped ``irn`` ×2 frozen inside; not the paper's model.
        - Importable (tag ``official``): the authors' ``IRN_x2_finetune.pth`` +
          ``CRM_x2_q90.pth`` (``irnbench weights import irn-crm IRN_x2_finetune.pth
          CRM_x2_q90.pth --task compress --scale 2``; docs/weights.md).
        """,
    citation=IRN_IJCV.citation,
    url=IRN_IJCV.url,
    code=IRN_CARD.code,
    licence=IRN_CARD.licence,
)
__doc__ = CARD.docstring()

#: ESRGAN's residual scaling inside and around each RRDB.
RES_SCALE = 0.2

@dataclass(frozen=True)
class CRMConfig:
    """Size of the CRM: features, RRDB blocks, dense growth, input-to-output skip."""

    feats: int = 64
    blocks: int = 8
    growth: int = 32
    residual: int = 0  #: 1: output = input + conv_last(...) with conv_last zero-initialised
    quality_input: int = 1  #: 1: a q/100 plane is a 4th input channel; 0: unconditioned

    def as_tensor(self) -> torch.Tensor:
        return torch.tensor([self.feats, self.blocks, self.growth, self.residual,
                             self.quality_input])

    @classmethod
    def from_tensor(cls, t: torch.Tensor) -> CRMConfig:
        """The configuration stored with weights (4-entry tags predate ``quality_input``)."""
        return cls(*(int(v) for v in t.tolist()))


CONFIGS = {
    # the official CRM's size (ESRGAN RRDBNet 64 feats, 8 RRDBs, growth 32), quality-conditioned
    "paper": CRMConfig(64, 8, 32, 0),
    # the released module itself: unconditioned, one per quality (q = 90 ships)
    "official": CRMConfig(64, 8, 32, 0, quality_input=0),
    "cpu": CRMConfig(32, 2, 16, 1),  # irnbench's CPU budget
    "smoke": CRMConfig(8, 1, 8, 1),  # wiring checks
}


class RRDB(nn.Module):
    """Residual-in-residual dense block: x + 0.2·D₃(D₂(D₁(x))), Dᵢ(t) = t + 0.2·DenseBlock(t)."""

    def __init__(self, feats: int, growth: int):
        super().__init__()
        self.dense = nn.ModuleList(DenseBlock(feats, feats, growth) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for d in self.dense:
            out = out + RES_SCALE * d(out)
        return x + RES_SCALE * out


class CRMNet(nn.Module):
    """The compression restoration module: decoded LR (+ quality plane) → restored LR."""

    def __init__(self, cfg: CRMConfig, channels: int = 3):
        super().__init__()
        self.cfg = cfg
        self.conv_first = nn.Conv2d(channels + cfg.quality_input, cfg.feats, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(cfg.feats, cfg.growth) for _ in range(cfg.blocks)))
        self.trunk_conv = nn.Conv2d(cfg.feats, cfg.feats, 3, 1, 1)
        self.conv_last = nn.Conv2d(cfg.feats, channels, 3, 1, 1)
        if cfg.residual:
            nn.init.zeros_(self.conv_last.weight)
            nn.init.zeros_(self.conv_last.bias)

    @property
    def radius(self) -> int:
        """Receptive radius in pixels (tiles keep this much context)."""
        return 3 + 15 * self.cfg.blocks

    def forward(self, y: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
        """``y`` B×3×h×w decoded LR, ``quality`` B JPEG qualities / 100 (unused when the
        config is unconditioned)."""
        b, _, h, w = y.shape
        if self.cfg.quality_input:
            plane = quality.to(y).view(b, 1, 1, 1).expand(b, 1, h, w)
            y_in = torch.cat((y, plane), 1)
        else:
            y_in = y
        fea = self.conv_first(y_in)
        fea = fea + self.trunk_conv(self.body(fea))
        out = self.conv_last(fea)
        return y + out if self.cfg.residual else out


@dataclass(frozen=True)
class _CRMOptions(BaseOptions):
    """irn-crm's options: the CRM configuration (and overrides of its fields), the frozen IRN,
    tiling (IRN's, and the CRM's on LR images above ``AUTO_TILE_PIXELS``)."""

    config: str = option("paper", "CRM size", choices=CONFIGS)
    irn_weights: str = option("", "frozen IRN: '' a fresh one, 'auto' the usual lookup "
                                  "for rescale ×s, or a weights path")
    tile: int = tile_option()


def _preset(name: str, config: str, irn_weights: str, **kw: Any) -> Preset:
    return Preset(name=name, options={"config": config, "irn_weights": irn_weights}, **kw)


class IRNCRM(Method):
    """IRN ×s + CRM on the JPEG-decoded LR (the module docstring is the model card). The CRM
    configuration is stored with the weights (buffer ``arch``) and restored on load."""

    name = "irn-crm"
    tasks = ("compress",)
    card = CARD
    description = CARD.summary
    stochastic = True
    paper = CARD.paper()
    presets = {
        # official train_IRN-Compression_x2_q90.yml as run for the paper (official issue #42)
        "paper": _preset("paper", "paper", "auto", iterations=50_000, batch_size=16, crop=144,
                         lr=2e-4, milestones=(10_000, 20_000, 30_000, 40_000), gamma=0.5,
                         grad_clip=10.0, val_every=5000, checkpoint_every=5000),
        # irnbench's CPU budget, NOT the paper's (small crops: the frozen IRN costs a CRM step)
        "cpu": _preset("cpu", "cpu", "auto", iterations=1500, batch_size=16, crop=48, lr=5e-4,
                       milestones=(900, 1200), gamma=0.5, warmup=100, grad_clip=10.0,
                       val_every=500, checkpoint_every=250),
        # wiring check only (a fresh IRN: no trained weights needed)
        "smoke": _preset("smoke", "smoke", "", iterations=4, batch_size=2, crop=32, lr=2e-4,
                         grad_clip=10.0, val_every=2, checkpoint_every=2),
    }
    pretrained_cfgs: dict[str, PretrainedCfg] = shipped_cfgs(Path(__file__).parent, "irn-crm",
                                                             paper=CARD.citation)
    official_weights = irn_crm_official(CARD)

    Options = config_overrides(CRMConfig, _CRMOptions, "Options")

    def __init__(self, task: Task, **options: Any):
        super().__init__(task, **options)
        if not self.supports(task):
            raise InvalidSetting(
                f"irn-crm supports compress ×{', ×'.join(map(str, SCALES))}; got {task!r}"
            )
        self.scale = int(task.setting["scale"])
        self.irn = IRN(RescaleTask(scale=self.scale), tile=self.opts.tile)
        self.irn.requires_grad_(False)
        self._build(replace(CONFIGS[self.opts.config], **overridden(self.opts, CRMConfig)))
        self.frozen_irn: dict[str, Any] = {}
        if self.opts.irn_weights:
            self._load_irn(self.opts.irn_weights)

    @classmethod
    def supports(cls, task: Task) -> bool:
        return task.name in cls.tasks and int(task.setting.get("scale", 0)) in SCALES

    def _build(self, cfg: CRMConfig) -> None:
        """(Re)create the CRM for ``cfg`` on the current device and dtype."""
        ref = next(self.irn.parameters())
        self.cfg = cfg
        self.crm = CRMNet(cfg).to(device=ref.device, dtype=ref.dtype)
        self.register_buffer("arch", cfg.as_tensor().to(ref.device))

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        tag = state_dict.get("arch")
        if tag is not None:
            cfg = CRMConfig.from_tensor(tag)
            if cfg != self.cfg:
                self._build(cfg)
            # an older, shorter tag of the same configuration loads as the current format
            state_dict = {**state_dict, "arch": cfg.as_tensor().to(tag.device)}
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def _load_irn(self, src: str) -> None:
        """Load the frozen IRN (``src`` "auto": the usual lookup for rescale ×s; else a path)."""
        rescale = self.irn.task
        loc = find_weights(IRN, rescale, None if src == "auto" else src)
        if loc is None:
            cmd = train_command(IRN.name, rescale)
            raise WeightsNotFound(
                f"irn-crm trains its CRM on a frozen IRN ×{self.scale}, and there are no IRN "
                f"rescale ×{self.scale} weights. Train them first with:\n  {cmd}",
                train_command=cmd,
            )
        load_weights(self.irn, loc)
        self.irn.requires_grad_(False)
        self.frozen_irn = {"file": loc.path.name, "source": loc.source, "label": loc.label,
                           "sha256": sha256_file(loc.path),
                           "tensors_sha256": module_fingerprint(self.irn)}

    def training_inputs(self) -> dict[str, Any]:
        """The frozen IRN the CRM trains on: its file, sha256 and a hash of its tensors (equal
        tensors, equal hash, whatever metadata the file carries)."""
        return {"frozen_irn": self.frozen_irn} if self.frozen_irn else {}

    # -- the two halves ----------------------------------------------------------------------
    def degrade(self, x: torch.Tensor) -> torch.Tensor:
        """HR → IRN's float LR (the harness rounds it to uint8 and JPEG-codes it)."""
        return self.irn.degrade(x)

    def degrade_key(self) -> str:
        """The frozen IRN's: with the same IRN weights, ``irn`` and ``irn-crm`` send one LR."""
        return self.irn.degrade_key()

    def restore_lr(self, y: torch.Tensor, quality: int) -> torch.Tensor:
        """JPEG-decoded LR → the CRM's estimate of the clean LR (float, not rounded)."""
        q = torch.full((y.shape[0],), float(quality) / 100.0, device=y.device, dtype=y.dtype)
        tile = resolve_tile(self.opts.tile, y.shape[-2] * y.shape[-1])
        if tile:
            return tiled(lambda t: self.crm(t, q), y, tile, self.crm.radius, 1.0)
        return self.crm(y, q)

    def restore(
        self,
        y: torch.Tensor,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        quality: int | None = None,
        **channel_info: Any,
    ) -> torch.Tensor:
        """Decoded LR → CRM → uint8 → IRN inverse with z ~ N(0, I)·temperature.

        Without ``quality`` (no JPEG in the channel) the CRM is skipped: there is nothing to undo.
        """
        if quality is not None:
            y = quantize(self.restore_lr(y, quality))
        return self.irn.restore(y, temperature=temperature, generator=generator)

    # -- training ----------------------------------------------------------------------------
    def train_qualities(self, task: Task, sample_index: torch.Tensor) -> list[int]:
        """Each sample's JPEG quality: uniform over the task's [lowest, highest] quality, a pure
        function of the global sample index (resume-exact, independent of the world size)."""
        qs = tuple(task.setting.get("jpeg") or ())
        if not qs:
            raise InvalidSetting("irn-crm trains on a task with JPEG qualities (compress)")
        lo, hi = min(qs), max(qs)
        return [int(np.random.default_rng([int(i), 0xC0DEC]).integers(lo, hi + 1))
                for i in sample_index.tolist()]

    def training_loss(self, batch: dict[str, Any], task: Task) -> dict[str, torch.Tensor]:
        """l2 = mean_B Σ(CRM(JPEG(LR)) − LR)², LR the frozen IRN's uint8 LR (the paper's mode).

        ``jpeg_l2`` (logged, not optimised) is the same error of the decoded LR itself: the CRM
        is doing its job when ``l2`` falls below it.
        """
        hr = batch["hr"]
        b = hr.shape[0]
        with torch.no_grad():
            lr = quantize(self.irn.degrade(hr))
        index = batch.get("sample_index")
        if index is None:
            index = torch.arange(b)
        qs = self.train_qualities(task, index)
        coded = torch.cat([task.channel(lr[i : i + 1], train=True, quality=q)
                           for i, q in enumerate(qs)])
        qt = torch.tensor(qs, device=hr.device, dtype=hr.dtype) / 100.0
        out = self.crm(coded, qt)
        l2 = (out - lr).pow(2).sum() / b
        jpeg_l2 = (coded.detach() - lr).pow(2).sum() / b
        return {"total": l2, "l2": l2, "jpeg_l2": jpeg_l2}
