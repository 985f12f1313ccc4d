"""Rescaling: downscale to an LR image, send it as 8-bit (optionally JPEG/WebP), upscale back."""

from __future__ import annotations

from typing import Any

import torch

from irnbench.errors import InvalidSetting
from irnbench.metrics import fidelity, psnr
from irnbench.ops.imresize import imresize
from irnbench.ops.quantize import to_uint8
from irnbench.ops.webp import libwebp_version
from irnbench.protocol import (
    PROTOCOL_TEXT,
    SSIM_WINDOW,
    STOCHASTIC_DRAWS,
    modcrop_multiple,
    protocol_text,
    rescale_crop_border,
)
from irnbench.tasks.base import Task

SUPPORTED_SCALES = (2, 3, 4, 8)


def parse_qualities(jpeg: Any, codec: str = "JPEG") -> tuple[int, ...]:
    """Normalise a quality list of ``codec`` (``None``, int, iterable or "30,50") to a sorted
    tuple of ints in 1..100."""
    if jpeg is None or jpeg == "" or jpeg == ():
        return ()
    if isinstance(jpeg, str):
        jpeg = [p for p in jpeg.split(",") if p.strip()]
    if isinstance(jpeg, int):
        jpeg = [jpeg]
    try:
        qs = tuple(sorted({int(q) for q in jpeg}))
    except (TypeError, ValueError) as exc:
        raise InvalidSetting(f"{codec} qualities must be integers, got {jpeg!r}") from exc
    bad = [q for q in qs if not 1 <= q <= 100]
    if bad:
        raise InvalidSetting(f"{codec} qualities must be in 1..100, got {bad}")
    return qs


def modcrop(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Crop the bottom/right so that H and W are multiples of ``multiple``."""
    h, w = x.shape[-2:]
    return x[..., : h - h % multiple, : w - w % multiple]


def parse_scale(task: str, scale: Any) -> int:
    """Validate a rescaling factor for ``task`` (an int in ``SUPPORTED_SCALES``)."""
    try:
        scale = int(scale)
    except (TypeError, ValueError) as exc:
        raise InvalidSetting(f"scale must be an integer, got {scale!r}") from exc
    if scale not in SUPPORTED_SCALES:
        raise InvalidSetting(
            f"{task} supports scales {', '.join(map(str, SUPPORTED_SCALES))}; got {scale}"
        )
    return scale


class ScaledTask(Task):
    """What rescaling and compression share: a ``scale`` setting, JPEG qualities as channel
    conditions (each result row carries its ``codec`` and ``quality``), weights keyed by scale
    alone, the modcrop and the bicubic LR reference."""

    setting_keys = ("scale", "jpeg")

    @property
    def scale(self) -> int:
        return int(self.setting["scale"])

    @property
    def qualities(self) -> tuple[int, ...]:
        """The JPEG qualities of the setting."""
        return tuple(self.setting.get("jpeg", ()))

    @property
    def webp_qualities(self) -> tuple[int, ...]:
        """The WebP qualities of the setting (rescale only)."""
        return tuple(self.setting.get("webp", ()))

    @property
    def setting_label(self) -> str:
        return f"x{self.scale}"

    @property
    def key(self) -> str:
        # Weights depend on the scale only; the codec and quality are evaluation conditions.
        return f"{self.name}-x{self.scale}"

    def cli_args(self) -> str:
        return f"--scale {self.scale}"

    def prepare(self, hr: torch.Tensor) -> torch.Tensor:
        return modcrop(hr, modcrop_multiple(self.scale))

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        """The bicubic LR: the guide of learned downscalers and the LR-fidelity target."""
        return imresize(x, 1.0 / self.scale)


class RescaleTask(ScaledTask):
    """Image rescaling ×s (IRN ECCV'20 protocol; ``jpeg=[…]`` / ``webp=[…]`` add SAIN's JPEG /
    WebP robustness protocol)."""

    name = "rescale"
    description = "downscale ×s → uint8 LR (→ JPEG/WebP) → upscale; Y-PSNR/SSIM, crop s"
    setting_keys = ("scale", "jpeg", "webp")
    #: LR fidelity on RGB beside the paper's Y: an LR can hide information in a colour shift
    #: that Y barely sees (irn ×4 with colour augmentation: LR blue −0.10 while LR PSNR-Y rose).
    metrics = ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "lr_psnr_y", "lr_psnr_rgb")
    #: IRN Table 1 reports Y-PSNR first (each JPEG quality's table with ``jpeg=[…]`` too).
    rank_metric = "psnr_y"
    #: IRN Table 1: mean over 5 z draws.
    default_draws = STOCHASTIC_DRAWS

    @classmethod
    def default_settings(cls) -> list[dict[str, Any]]:
        return [{"scale": 2}, {"scale": 4}]

    def normalize_setting(self, scale: int = 4, jpeg: Any = None, webp: Any = None
                          ) -> dict[str, Any]:
        setting: dict[str, Any] = {"scale": parse_scale(self.name, scale)}
        qs = parse_qualities(jpeg)
        if qs:
            setting["jpeg"] = qs
        ws = parse_qualities(webp, "WebP")
        if ws:
            setting["webp"] = ws
        return setting

    def protocol(self) -> str:
        text = PROTOCOL_TEXT["rescale"]
        if self.qualities:
            text += " " + PROTOCOL_TEXT["rescale+jpeg"]
        if self.webp_qualities:
            text += " " + protocol_text(libwebp_version())["rescale+webp"]
        return text

    @property
    def crop_border(self) -> int:
        return rescale_crop_border(self.scale)

    def min_size(self) -> int:
        # After cropping s px on each side the SSIM window must still fit.
        return max(2 * self.crop_border + SSIM_WINDOW, 4 * self.scale)

    def conditions(self) -> list[dict[str, Any]]:
        """Each JPEG quality, then each WebP quality; neither: the plain uint8 channel."""
        return ([{"codec": "jpeg", "quality": q} for q in self.qualities]
                + [{"codec": "webp", "quality": q} for q in self.webp_qualities]) or [{}]

    def score(self, hr, restored, transmission, reference) -> dict[str, float]:
        c = self.crop_border
        ref_u8 = to_uint8(reference)
        return {
            **fidelity(hr, restored, c),
            "lr_psnr_y": float(psnr(transmission.sent_u8, ref_u8, 0, y_channel=True)[0]),
            "lr_psnr_rgb": float(psnr(transmission.sent_u8, ref_u8, 0, y_channel=False)[0]),
        }
