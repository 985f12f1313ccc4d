"""T-InvBlocks: T-IRN and T-SAIN, IRN and SAIN built from tri-branch invertible blocks in YCbCr
(Bao et al., AAAI 2025, arXiv 2412.13508; official code github.com/Jingwei-Bao/T-InvBlocks).

``model`` holds the block, the colour conversions and the networks, ``official`` the mapping of
the authors' released state dicts onto them.
"""

from __future__ import annotations

from .model import TIRN, TSAIN, TriBranchInvBlock, TriBranchRescaleNet

__all__ = ["TIRN", "TSAIN", "TriBranchInvBlock", "TriBranchRescaleNet"]
