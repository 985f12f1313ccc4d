"""Bicubic & Bicubic: MATLAB-bicubic downscaling and upscaling, the rescaling floor."""

from __future__ import annotations

import torch

from irnbench.ops.imresize import imresize
from irnbench.plugin import IRN_TABLE1, Method, Paper, hookimpl, sain_rows, table_rows

# (scale, dataset) → (PSNR-Y, SSIM-Y), "Bicubic & Bicubic" rows of IRN's Table 1.
_TABLE1 = {
    (2, "set5"): (33.66, 0.9299),
    (2, "set14"): (30.24, 0.8688),
    (2, "b100"): (29.56, 0.8431),
    (2, "urban100"): (26.88, 0.8403),
    (2, "div2k-val"): (31.01, 0.9393),
    (4, "set5"): (28.42, 0.8104),
    (4, "set14"): (26.00, 0.7027),
    (4, "b100"): (25.96, 0.6675),
    (4, "urban100"): (23.14, 0.6577),
    (4, "div2k-val"): (26.66, 0.8521),
}
# "Bicubic & Bicubic" rows of SAIN's README JPEG table (DIV2K val, QF 30/50/70/80/90).
_SAIN_ROWS = {
    2: [(29.38, 0.8081), (30.19, 0.8339), (30.91, 0.8560), (31.38, 0.8703), (31.96, 0.8878)],
    4: [(26.27, 0.6945), (26.81, 0.7140), (27.28, 0.7326), (27.57, 0.7456), (27.90, 0.7618)],
}


class Bicubic(Method):
    """degrade = ``imresize(x, 1/s)``, restore = ``imresize(y, s)`` (MATLAB bicubic, a = −0.5)."""

    name = "bicubic"
    # compress: ×s bicubic down → JPEG → bicubic up (the IJCV figure's "Bicubic" baseline).
    tasks = ("rescale", "compress")
    description = "MATLAB-bicubic down- and upscaling (no learning)"
    paper = Paper(
        citation="Bicubic & Bicubic baseline as reported by Xiao et al., 'Invertible Image "
        "Rescaling', ECCV 2020",
        url="https://arxiv.org/abs/2005.05650",
        results=(*table_rows("Bicubic & Bicubic", IRN_TABLE1, _TABLE1),
                 *sain_rows("Bicubic & Bicubic", _SAIN_ROWS)),
    )

    @property
    def scale(self) -> int:
        return int(self.task.setting["scale"])

    def degrade(self, x: torch.Tensor) -> torch.Tensor:
        return imresize(x, 1.0 / self.scale)

    def restore(self, y: torch.Tensor, **channel_info) -> torch.Tensor:
        return imresize(y, float(self.scale))


@hookimpl
def irnbench_register_methods(register):
    register(Bicubic)
