"""Mixed precision for training: which autocast mode a run uses on a device, and when a
non-finite fp16 step is the GradScaler's overflow rather than a real NaN."""

from __future__ import annotations

from typing import Any

import torch

from irnbench.errors import InvalidSetting

__all__ = ["AMP_MODES", "MIN_LOSS_SCALE", "amp_dtype", "fp16_overflow", "resolve_amp"]

#: ``--amp`` choices: fp32, bf16 autocast, fp16 autocast with a GradScaler, or the best the
#: device has (``resolve_amp``).
AMP_MODES = ("off", "bf16", "fp16", "auto")


def resolve_amp(amp: str, dev: torch.device) -> str:
    """The autocast mode a run uses on ``dev``: ``auto`` → bf16 on a CUDA GPU that supports it,
    fp16 (with a GradScaler: fp16's range is too small for unscaled gradients) on an older one,
    and fp32 (``off``) elsewhere: bf16 on a CPU without bf16 instructions measured 5–12× slower
    (docs/performance.md), so a CPU run asks for ``bf16`` by name."""
    if amp not in AMP_MODES:
        raise InvalidSetting(f"amp must be one of {', '.join(AMP_MODES)}; got {amp!r}")
    if amp != "auto":
        return amp
    if dev.type != "cuda":
        return "off"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def amp_dtype(amp: str) -> torch.dtype | None:
    """The autocast dtype of a resolved mode (``None``: fp32, autocast off)."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)


#: Below this loss scale a non-finite fp16 gradient is not an overflow the scaler can fix: the
#: gradients themselves are out of fp16's range (or not finite), and the NaN guard counts it.
MIN_LOSS_SCALE = 1.0


def fp16_overflow(scaler: Any, stats: torch.Tensor) -> bool:
    """A finite loss on every rank whose scaled fp16 gradients overflowed: ``GradScaler`` has
    halved its scale and the step is skipped, as the scaler intends. IRN's per-sample sums
    overflow the initial scale (2¹⁶) for several steps in a row, which the NaN guard's
    ``max_bad_steps`` must not count. ``stats[-1]`` is 1 where the step was finite."""
    return scaler.is_enabled() and bool(stats[-1] == 0) and scaler.get_scale() >= MIN_LOSS_SCALE
