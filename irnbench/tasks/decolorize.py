"""Decolorization–colorization: turn a colour image into a grey one, send it as 8-bit, recolour.

The protocol follows IRN-Color's test code (IJCV 2022, arXiv:2210.04188): the
guide is OpenCV's BGR2GRAY of the float image (0.299R + 0.587G + 0.114B, not rounded), the
method's one-channel grey image goes through the harness's uint8 channel, and the restored colour
image is scored on RGB (and Y) with a 2-pixel border crop. Every constant lives in
``irnbench.protocol``.
"""

from __future__ import annotations

from typing import Any

import torch

from irnbench.channel import Transmission
from irnbench.metrics import psnr, ssim
from irnbench.ops.color import rgb_to_grey
from irnbench.ops.quantize import to_uint8
from irnbench.protocol import (
    DECOLORIZE_CROP,
    DECOLORIZE_GREY_CROP,
    DECOLORIZE_MODCROP,
    PROTOCOL_TEXT,
    SSIM_WINDOW,
    STOCHASTIC_DRAWS,
)
from irnbench.tasks.base import Task
from irnbench.tasks.rescale import modcrop

__all__ = ["DecolorizeTask"]


class DecolorizeTask(Task):
    """Decolorization ↔ colorization (IRN-Color protocol): RGB → uint8 grey → RGB.

    No settings. ``reference`` is the luma guide (B×1×H×W float); the channel is the harness's
    uint8 rounding of the method's one-channel grey image.
    """

    name = "decolorize"
    description = "colour → uint8 grey → colour; RGB PSNR/SSIM, crop 2; grey fidelity vs luma"
    setting_keys = ()
    metrics = ("psnr_rgb", "ssim_rgb", "psnr_y", "grey_psnr")
    #: Ranked on RGB, as IRN-Color's test reports it: Y hardly sees the colour, so the grey
    #: floor (no colour at all) would top a Y ranking.
    rank_metric = "psnr_rgb"
    #: The grey image has the HR's size: visual comparisons show it beside the restorations.
    visual_channel = "grey"
    #: Training validation on RGB, as IRN-Color's training log (Y hardly sees the colour).
    validation_metric = "psnr_rgb"
    #: IRN-Color restores with z = 0 (one draw whatever this says); a stochastic method would
    #: get the rescaling protocol's draws.
    default_draws = STOCHASTIC_DRAWS

    @property
    def setting_label(self) -> str:
        # No settings; the label names the channel (the grey image travels as uint8).
        return "uint8"

    @property
    def key(self) -> str:
        return "decolorize"

    def protocol(self) -> str:
        return PROTOCOL_TEXT["decolorize"]

    @property
    def crop_border(self) -> int:
        """Pixels cut from each side before the colour metrics (IRN-Color test: 2)."""
        return DECOLORIZE_CROP

    def min_size(self) -> int:
        # After cropping on each side the SSIM window must still fit.
        return 2 * self.crop_border + SSIM_WINDOW

    def prepare(self, hr: torch.Tensor) -> torch.Tensor:
        return modcrop(hr, DECOLORIZE_MODCROP)

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        """The luma guide 0.299R + 0.587G + 0.114B, float, not rounded (B×1×H×W)."""
        return rgb_to_grey(x)

    def score(
        self,
        hr: torch.Tensor,
        restored: torch.Tensor,
        transmission: Transmission,
        reference: torch.Tensor,
    ) -> dict[str, float]:
        """RGB PSNR/SSIM and Y-PSNR (crop 2) of the colour image; grey PSNR vs the guide."""
        c = self.crop_border
        sent = transmission.sent_u8
        if sent.shape[-3] != 1 or sent.shape[-2:] != hr.shape[-2:]:
            raise ValueError(
                f"decolorize expects a 1-channel grey image of the HR's size, got "
                f"{tuple(sent.shape)} for an HR of {tuple(hr.shape)}"
            )
        return {
            "psnr_rgb": float(psnr(hr, restored, c, y_channel=False)[0]),
            "ssim_rgb": float(ssim(hr, restored, c, y_channel=False)[0]),
            "psnr_y": float(psnr(hr, restored, c, y_channel=True)[0]),
            "grey_psnr": float(
                psnr(sent, to_uint8(reference), DECOLORIZE_GREY_CROP, y_channel=False)[0]
            ),
        }

    def normalize_setting(self, **setting: Any) -> dict[str, Any]:
        return {}
