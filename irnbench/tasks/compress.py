"""Compression: degrade (e.g. ×2 down), really JPEG-code the uint8 result, restore; RD curves.

The IRN extension for compression (IJCV 2022): rescaling first, then JPEG on the
LR image. The harness rounds the method's degraded image to uint8 and JPEG-codes it with Pillow
at every quality of the setting (the IRN code used OpenCV's encoder; irnbench uses Pillow, 4:2:0,
optimise off, and records the libjpeg version). bpp counts the whole JPEG file over the *HR*
pixels, so a method that sends a ×2 LR and plain full-resolution JPEG are on one axis.
"""

from __future__ import annotations

from typing import Any

from irnbench.metrics import fidelity
from irnbench.protocol import (
    COMPRESS_CROP,
    COMPRESS_DRAWS,
    COMPRESS_QUALITIES,
    COMPRESS_SCALE,
    JPEG_ANCHOR_QUALITIES,
    PROTOCOL_TEXT,
    SSIM_WINDOW,
)
from irnbench.tasks.rescale import ScaledTask, parse_qualities, parse_scale

__all__ = ["CompressTask", "anchor_qualities"]


def anchor_qualities(task_qualities: tuple[int, ...]) -> tuple[int, ...]:
    """The plain-JPEG sweep: the task's qualities plus ``JPEG_ANCHOR_QUALITIES``, sorted."""
    return tuple(sorted(set(task_qualities) | set(JPEG_ANCHOR_QUALITIES)))


class CompressTask(ScaledTask):
    """Rescaling + real JPEG (IJCV IRN-CRM protocol): Y/RGB PSNR/SSIM (crop 2) and bpp.

    Settings: ``scale`` (default 2) and ``jpeg`` (qualities, default 30, 50, 70, 80, 90; every
    one is evaluated, each row carries its ``quality``). A method whose class sets ``codec =
    True`` (plain JPEG: no degrade, no restore) is the codec's own curve and the BD-rate anchor;
    it also sweeps ``JPEG_ANCHOR_QUALITIES`` so that its curve overlaps the others.
    """

    name = "compress"
    description = "degrade → uint8 → real JPEG (Pillow) → restore; Y/RGB PSNR/SSIM vs bpp"
    metrics = ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "bpp")
    #: Each quality's table by Y-PSNR; the RD summary by BD-rate on Y-PSNR (Bjøntegaard,
    #: VCEG-M33) against plain JPEG, the codec's own curve.
    rank_metric = "psnr_y"
    summary_rank = "bd_rate"
    #: The official IRN compression test samples z once per image.
    default_draws = COMPRESS_DRAWS

    @classmethod
    def default_settings(cls) -> list[dict[str, Any]]:
        return [{"scale": COMPRESS_SCALE}]

    def normalize_setting(self, scale: int = COMPRESS_SCALE, jpeg: Any = None) -> dict[str, Any]:
        qs = parse_qualities(jpeg) or COMPRESS_QUALITIES
        return {"scale": parse_scale(self.name, scale), "jpeg": tuple(qs)}

    def protocol(self) -> str:
        return PROTOCOL_TEXT["compress"]

    @property
    def crop_border(self) -> int:
        return COMPRESS_CROP

    def min_size(self) -> int:
        # The SSIM window must fit after the crop, and the LR must be at least 8 px.
        return max(2 * self.crop_border + SSIM_WINDOW, 8 * self.scale)

    def conditions(self) -> list[dict[str, Any]]:
        return [{"quality": q} for q in self.qualities]

    def conditions_for(self, method: Any) -> list[dict[str, Any]]:
        if getattr(method, "codec", False):
            return [{"quality": q} for q in anchor_qualities(self.qualities)]
        return self.conditions()

    def score(self, hr, restored, transmission, reference) -> dict[str, float]:
        # bpp is added by the harness from the JPEG byte count and the HR size.
        c = self.crop_border
        return fidelity(hr, restored, c)
