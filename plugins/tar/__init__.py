"""TAR plugin: Task-Aware Downscaling & Upscaling as method ``tar`` (model card: ``method``).

``model`` holds the downscaler (TAD) and upscaler (TAU) networks, ``method`` the irnbench
``Method`` (joint loss, presets, paper-reported numbers as quoted by IRN).
"""

from __future__ import annotations

from irnbench.plugin import hookimpl

from .method import TAR
from .model import CONFIGS, TAD, TAU, TARConfig

__all__ = ["TAR", "TAD", "TAU", "TARConfig", "CONFIGS"]


@hookimpl
def irnbench_register_methods(register):
    register(TAR)
