"""Plain JPEG: the codec's own rate–distortion curve, the anchor of the compression BD-rates."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from irnbench.plugin import Method, Paper, hookimpl


class PlainJPEG(Method):
    """degrade = identity (the full-resolution HR image goes to the codec), restore = identity.

    ``codec = True`` makes the ``compress`` task sweep ``JPEG_ANCHOR_QUALITIES`` as well, and the
    report draw it dashed and use it as the BD-rate anchor.
    """

    name = "jpeg"
    tasks = ("compress",)
    description = "plain full-resolution JPEG (Pillow), the codec's own curve"
    codec: ClassVar[bool] = True
    paper = Paper(citation="ITU-T T.81 | ISO/IEC 10918-1 (JPEG), coded with Pillow's libjpeg")

    def degrade(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def restore(self, y: torch.Tensor, **channel_info: Any) -> torch.Tensor:
        return y


@hookimpl
def irnbench_register_methods(register):
    register(PlainJPEG)
