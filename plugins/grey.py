from __future__ import annotations

from typing import Any

import torch

from irnbench.ops.color import grey_to_rgb, rgb_to_grey
from irnbench.plugin import Method, ModelCard, hookimpl

__all__ = ["CARD", "Grey"]

CARD = ModelCard(
    summary="luma grey, restored by replicating it to RGB (the no-colour floor)",
    what="""
        Grey & replicate, the decolorization task's no-colour floor (no learning): degrade is
        the task's own luma guide (0.299R + 0.587G + 0.114B), so its grey fidelity is the best
        any method can reach after 8-bit rounding; restore replicates the grey to R, G and B,
        so its colour PSNR is what a method scores without recovering any colour.
        """,
    departures="None: irnbench's own baseline, with no official code.",
    weights="None needed.",
    citation="",
)
__doc__ = CARD.docstring()


class Grey(Method):
    """degrade = luma guide, restore = the grey replicated to R, G and B."""

    name = "grey"
    tasks = ("decolorize",)
    card = CARD
    description = CARD.summary

    def degrade(self, x: torch.Tensor) -> torch.Tensor:
        """RGB B×3×H×W → grey B×1×H×W (float; the harness rounds it to uint8)."""
        return rgb_to_grey(x)

    def restore(self, y: torch.Tensor, **channel_info: Any) -> torch.Tensor:
        """Grey B×1×H×W → B×3×H×W with R = G = B = grey."""
        return grey_to_rgb(y).contiguous()


@hookimpl
def irnbench_register_methods(register):
    register(Grey)
