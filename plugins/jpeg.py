from __future__ import annotations

from typing import Any, ClassVar

import torch

from irnbench.plugin import Method, ModelCard, hookimpl

__all__ = ["CARD", "PlainJPEG"]

CARD = ModelCard(
    summary="plain full-resolution JPEG (Pillow), the codec's own curve",
    what="""
        Plain JPEG, the anchor of the compression BD-rates: degrade and restore are the
        identity, so the full-resolution HR image goes to the harness's codec (Pillow's libjpeg,
        4:2:0, the ``compress`` task's channel) and comes back decoded. ``codec = True`` makes
        the ``compress`` task sweep ``JPEG_ANCHOR_QUALITIES`` as well, and the report draw it
        dashed and use it as the BD-rate anchor.
        """,
    departures="""
        The IRN compression code used OpenCV's encoder; irnbench codes with Pillow and records
        the libjpeg version (docs/protocol.md).
        """,
    weights="None needed.",
    citation="ITU-T T.81 | ISO/IEC 10918-1 (JPEG), coded with Pillow's libjpeg",
)
__doc__ = CARD.docstring()


class PlainJPEG(Method):
    """degrade = identity (the full-resolution HR image goes to the codec), restore = identity."""

    name = "jpeg"
    tasks = ("compress",)
    card = CARD
    description = CARD.summary
    codec: ClassVar[bool] = True
    paper = CARD.paper()

    def degrade(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def restore(self, y: torch.Tensor, **channel_info: Any) -> torch.Tensor:
        return y


@hookimpl
def irnbench_register_methods(register):
    register(PlainJPEG)
