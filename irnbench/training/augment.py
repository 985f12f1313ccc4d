"""Colour augmentation of training crops that keeps the reference exact.

``color_jitter`` is one 3×3 linear map per pixel (it commutes with the bicubic reference);
``saturate_clipped`` clips, so the reference must be recomputed from the clipped image.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from irnbench.errors import InvalidSetting
from irnbench.protocol import GREY_WEIGHTS

__all__ = ["SATURATION_GAIN", "SATURATION_GAIN_CLIPPED", "COLOR_CAST",
           "color_jitter", "saturate_clipped", "no_clip_cap"]

#: Range of the saturation gain drawn by the colour augmentation (before the no-clip cap).
SATURATION_GAIN = (0.5, 2.0)
#: The same with ``ColorAugment.clip``: the gain is not capped and HR values are clipped to [0, 1].
SATURATION_GAIN_CLIPPED = (0.5, 3.0)
#: Largest per-channel offset of ``ColorAugment.cast`` (drawn uniformly in ±this, before clipping).
COLOR_CAST = 0.4


def color_jitter(
    hr: torch.Tensor, ref: torch.Tensor, perm: Sequence[int], gain: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reorder the channels and scale the chroma about the luma: x′ = g + a·(x − g), g = luma.

    One 3×3 linear map at every pixel, so it commutes with any channel-wise linear resampling:
    applying it to the whole-image bicubic reference equals recomputing the reference from the
    transformed HR (exactly, in real arithmetic). A 1-channel reference must be the luma guide of
    ``hr`` (decolorize; checked) and is recomputed from the transformed HR. The gain a is capped
    so that no HR value leaves [0, 1] (nothing is clipped, which would break that identity);
    a ≤ 1 never needs the cap. What it gained and cost for IRN: docs/experiments.md.
    """
    w = torch.tensor(GREY_WEIGHTS, dtype=hr.dtype).view(3, 1, 1)
    grey_ref = ref.shape[0] == 1
    if grey_ref and not torch.allclose(ref, (hr * w).sum(0, keepdim=True), atol=1e-5):
        raise InvalidSetting("ColorAugment: a 1-channel reference must be the luma of the HR")
    idx = torch.as_tensor(list(perm), dtype=torch.long)
    hr = hr[idx]
    ref = ref if grey_ref else ref[idx]
    g = (hr * w).sum(0, keepdim=True)
    d = hr - g
    if gain > 1.0:
        gain = max(1.0, min(gain, no_clip_cap(hr)))  # largest a with g + a·d in [0, 1]
    out = g + gain * d
    if grey_ref:
        return out, (out * w).sum(0, keepdim=True)
    g_ref = (ref * w).sum(0, keepdim=True)
    return out, g_ref + gain * (ref - g_ref)


def saturate_clipped(hr: torch.Tensor, perm: Sequence[int], gain: float,
                     cast: Sequence[float] = ()) -> torch.Tensor:
    """``color_jitter``'s map without the cap: x′ = clip(g + a·(x − g) + b, 0, 1), reordered.

    Clipping makes the colours the muted training photos lack (saturated yellows, pure reds),
    where one HR channel sits at 0 or 1; the reference must then be recomputed from the result.
    ``cast`` b adds one offset per channel, which gains and channel orders alone cannot: they
    almost never make a bright saturated yellow (docs/experiments.md, IRN ×2).
    """
    w = torch.tensor(GREY_WEIGHTS, dtype=hr.dtype).view(3, 1, 1)
    hr = hr[torch.as_tensor(list(perm), dtype=torch.long)]
    g = (hr * w).sum(0, keepdim=True)
    out = g + gain * (hr - g)
    if len(cast):
        out = out + torch.tensor(list(cast), dtype=hr.dtype).view(3, 1, 1)
    return out.clamp(0.0, 1.0)


def no_clip_cap(hr: torch.Tensor) -> float:
    """The largest saturation gain that leaves every value of ``hr`` in [0, 1] (inf if grey)."""
    w = torch.tensor(GREY_WEIGHTS, dtype=hr.dtype).view(3, 1, 1)
    g = (hr * w).sum(0, keepdim=True)
    d = hr - g
    room = torch.where(d > 0, (1 - g) / d.clamp_min(1e-12), g / (-d).clamp_min(1e-12))
    room = room[d.abs() > 1e-6]
    return float(room.min()) if room.numel() else float("inf")
