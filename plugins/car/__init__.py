"""CAR plugin: Content Adaptive Resampler + EDSR as method ``car`` (model card: ``method``).

``sampler`` holds the pure-PyTorch adaptive grid sampler, ``model`` the resampler network and
the EDSR upscaler, ``method`` the irnbench ``Method`` (losses, presets, paper-reported numbers).
"""

from __future__ import annotations

from irnbench.plugin import hookimpl

from .method import CAR, offset_loss, tv_loss
from .model import CONFIGS, EDSR, CARConfig, ResamplerNet, kernel_size
from .sampler import adaptive_grid_sample

__all__ = [
    "CAR", "CARConfig", "CONFIGS", "EDSR", "ResamplerNet", "adaptive_grid_sample",
    "kernel_size", "offset_loss", "tv_loss",
]


@hookimpl
def irnbench_register_methods(register):
    register(CAR)
