from __future__ import annotations

from typing import Any

import torch

from irnbench.ops.imresize import imresize
from irnbench.plugin import (
    IRN_ECCV,
    Method,
    ModelCard,
    hookimpl,
    irn_table1_rows,
    sain_readme_rows,
)

__all__ = ["CARD", "Bicubic"]

CARD = ModelCard(
    summary="MATLAB-bicubic down- and upscaling (no learning)",
    what="""
        Bicubic & Bicubic, the rescaling floor: degrade = MATLAB-bicubic ``imresize(x, 1/s)``,
        restore = ``imresize(y, s)`` (Keys cubic, a = −0.5, stretched by 1/s when shrinking, as
        MATLAB's; ``irnbench.ops.imresize``). On ``compress``: ×s bicubic down → JPEG →
        bicubic up (the IJCV paper's "Bicubic" baseline).
        """,
    departures="""
        None: the same MATLAB ``imresize`` the IRN papers' Bicubic & Bicubic rows and reference
        LR use.
        """,
    weights="None needed.",
    citation=f"Bicubic & Bicubic baseline as reported by {IRN_ECCV.short}",
    url=IRN_ECCV.url,
)
__doc__ = CARD.docstring()


class Bicubic(Method):
    """degrade = ``imresize(x, 1/s)``, restore = ``imresize(y, s)`` (MATLAB bicubic, a = −0.5)."""

    name = "bicubic"
    tasks = ("rescale", "compress")
    card = CARD
    description = CARD.summary
    paper = CARD.paper(*irn_table1_rows("Bicubic & Bicubic"),
                       *sain_readme_rows("Bicubic & Bicubic"))

    @property
    def scale(self) -> int:
        return int(self.task.setting["scale"])

    def degrade(self, x: torch.Tensor) -> torch.Tensor:
        return imresize(x, 1.0 / self.scale)

    def restore(self, y: torch.Tensor, **channel_info: Any) -> torch.Tensor:
        return imresize(y, float(self.scale))


@hookimpl
def irnbench_register_methods(register):
    register(Bicubic)
