"""The authors' released IRN-Color checkpoint (``IRN_color.pth``) and its tensor mapping.

The release stores InvGreyNet as ``operations.0.conv_weights`` (the invertible 1×1 colour
transform, 3×3) followed by ``operations.1..8`` couplings; irnbench names them ``net.conv.weight``
and ``net.blocks.0..7``.
"""

from __future__ import annotations

import re

from irnbench.plugin import ModelCard, OfficialCheckpoint, OfficialFile, task_key
from irnbench_plugins.irn.official import DOWNLOAD

__all__ = ["irn_color_official"]

_BLOCK = re.compile(r"^operations\.(\d+)\.(.+)$")


def _rename(_file: str, key: str) -> str | None:
    if key == "operations.0.conv_weights":
        return "net.conv.weight"
    m = _BLOCK.match(key)
    if m and int(m.group(1)) >= 1:
        return f"net.blocks.{int(m.group(1)) - 1}.{m.group(2)}"
    return None


def irn_color_official(card: ModelCard) -> dict[str, OfficialCheckpoint]:
    """The released ``IRN_color.pth``; repository, licence and paper from the method's card."""
    return {
        task_key("decolorize"): OfficialCheckpoint(
            task="decolorize", setting={},
            files=(OfficialFile("IRN_color.pth", "net.", "IRN-Color InvGreyNet"),),
            rename=_rename, repository=card.code, download=DOWNLOAD, licence=card.licence,
            paper=card.citation,
        )
    }
