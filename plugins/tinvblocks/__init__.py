"""T-InvBlocks plugin: T-IRN and T-SAIN, IRN and SAIN built from tri-branch invertible blocks in
YCbCr, as methods ``tirn`` and ``tsain`` (model cards: ``method``).

``model`` holds the block, the colour conversions and the networks (``model.TIRN``,
``model.TSAIN``), ``official`` the mapping of the authors' released state dicts onto them and the
importable checkpoints, ``method`` the irnbench ``Method`` classes exported here as ``TIRN`` and
``TSAIN``.
"""

from __future__ import annotations

from irnbench.plugin import hookimpl

from .method import TIRN, TSAIN
from .model import TriBranchInvBlock, TriBranchRescaleNet

__all__ = ["TIRN", "TSAIN", "TriBranchInvBlock", "TriBranchRescaleNet"]


@hookimpl
def irnbench_register_methods(register):
    register(TIRN)
    register(TSAIN)
