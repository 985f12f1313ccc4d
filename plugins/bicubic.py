"""Bicubic & Bicubic: MATLAB-bicubic downscaling and upscaling, the rescaling floor."""

from __future__ import annotations

import torch

from irnbench.hookspecs import hookimpl
from irnbench.methods import Method, Paper, PaperResult
from irnbench.ops.imresize import imresize

_T1 = "IRN (Xiao et al., ECCV 2020) Table 1"
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
_SAIN = "SAIN (Yang et al., AAAI 2023) README table"
_SAIN_PROTOCOL = (
    "SAIN test.py: LR JPEG-coded with PIL at QF; RGB or Y channel unconfirmed; its "
    "clean-equivalent bicubic numbers exceed IRN's, so the protocol differs from irnbench's"
)
_SAIN_ROWS = {
    2: [(29.38, 0.8081), (30.19, 0.8339), (30.91, 0.8560), (31.38, 0.8703), (31.96, 0.8878)],
    4: [(26.27, 0.6945), (26.81, 0.7140), (27.28, 0.7326), (27.57, 0.7456), (27.90, 0.7618)],
}


def _paper_results() -> tuple[PaperResult, ...]:
    rows = [
        PaperResult("Bicubic & Bicubic", "rescale", f"x{s}", ds, {"psnr_y": p, "ssim_y": q}, _T1)
        for (s, ds), (p, q) in _TABLE1.items()
    ]
    for s, vals in _SAIN_ROWS.items():
        for qf, (p, q) in zip((30, 50, 70, 80, 90), vals, strict=True):
            rows.append(
                PaperResult(
                    "Bicubic & Bicubic",
                    "rescale",
                    f"x{s}",
                    "div2k-val",
                    {"psnr": p, "ssim": q},
                    _SAIN,
                    _SAIN_PROTOCOL,
                    quality=qf,
                )
            )
    return tuple(rows)


class Bicubic(Method):
    """degrade = ``imresize(x, 1/s)``, restore = ``imresize(y, s)`` (MATLAB bicubic, a = −0.5)."""

    name = "bicubic"
    tasks = ("rescale",)
    description = "MATLAB-bicubic down- and upscaling (no learning)"
    paper = Paper(
        citation="Bicubic & Bicubic baseline as reported by Xiao et al., 'Invertible Image "
        "Rescaling', ECCV 2020",
        url="https://arxiv.org/abs/2005.05650",
        results=_paper_results(),
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
