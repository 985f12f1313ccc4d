"""The ``tirn`` and ``tsain`` methods: T-IRN and T-SAIN, rescale ×2 and ×4.

What it is
    The tri-branch invertible block (Bao et al., AAAI 2025) splits each coupling into three
    branches after converting the Haar LL subband to YCbCr: chroma (Cb, Cr), the high
    frequencies and luma (Y), each updated from the others. T-IRN is IRN built from these blocks
    (×2: 3 blocks; ×4: 3 + 4 blocks over two Haar stages); T-SAIN is SAIN built from them
    (×2: 3 blocks + 1 comp block; ×4: 3 + 3 + 2), trained with JPEG at QF 75 in the loop. Both
    transmit the clamped RGB of the last stage's output (T-SAIN: before its comp blocks, which
    only training reads) and upscale deterministically: the inverse of [LR | z] with z = 0, the
    paper's all-zero high-frequency mapping. ``degrade`` returns that float LR (the harness
    quantises it and, with ``--jpeg``, JPEG-codes it); ``restore`` returns the inverse's HR.

Where irnbench departs from the official code, and why
    - The harness owns the channel. T-IRN's official test never codes the LR and T-SAIN's always
      does (Pillow JPEG or WebP at ``-qf``); in irnbench either runs clean or under
      ``--jpeg`` (Pillow JPEG 4:2:0, optimise off, as the official codec wrapper).
    - ``degrade`` skips T-SAIN's comp blocks (training only), which leaves the LR unchanged;
      the HR is not clamped here (the harness clamps and rounds it, as the official metric
      code does).
    - Images above ``irnbench.ops.tiling.AUTO_TILE_PIXELS`` HR pixels (DIV2K's included) run
      tiled with 32 LR pixels of context: the result differs slightly from an untiled run near
      tile borders. ``--option tile=-1`` never tiles.
    - No training: ``irnbench train --plugin tirn`` (or ``tsain``) refuses and points to the
      official code.

Weights
    No weights ship with irnbench. ``irnbench weights import tirn|tsain FILE --task rescale
    --scale S`` imports the authors' files, committed in github.com/Jingwei-Bao/T-InvBlocks at
    commit 3590f069420ae2e88d4e2804a4b93c4e3dc5530d (each pinned by URL and git blob SHA-1 in
    ``TIRN_OFFICIAL`` / ``TSAIN_OFFICIAL``), after checking every tensor's name and shape and
    that the Haar weights are the Haar constants: ``experiments/pretrained_TIRN/TIRNx2.pth``,
    ``TIRNx4.pth`` → ``tirn.official`` ×2, ×4; ``experiments/pretrained_TSAIN/TSAINx2.pth``,
    ``TSAINx4.pth`` → ``tsain.official`` ×2, ×4. They should reproduce the paper's results,
    which irnbench does not quote: the repository publishes no numbers (its badges name clean
    ×2/×4 rescaling on Set5, Set14, B100, Urban100 and DIV2K val, and DIV2K val at JPEG QF 30,
    50, 70), and the paper's tables are not quoted here. An untagged ``tirn`` / ``tsain``
    resolves to ``.official`` once imported.

Citation
    Bao, Hao, Xu, Sun, Zhou, Zhu, "Plug-and-Play Tri-Branch Invertible Block for Image
    Rescaling", AAAI 2025 (arXiv 2412.13508). Code and weights:
    https://github.com/Jingwei-Bao/T-InvBlocks @ 3590f069420ae2e88d4e2804a4b93c4e3dc5530d
    (Apache-2.0).
"""

from __future__ import annotations

from typing import Any

import torch

from irnbench.plugin import Paper
from irnbench_plugins.sain.method import InvertibleRescaler

from .model import TIRN as TIRNet
from .model import TSAIN as TSAINet
from .official import PAPER, TIRN_OFFICIAL, TSAIN_OFFICIAL

__all__ = ["TIRN", "TSAIN"]

_PAPER = Paper(citation=PAPER, url="https://arxiv.org/abs/2412.13508")  # no numbers quoted
_TRAINING_NOTE = ("training is out of scope here; train it with the official code at "
                  "https://github.com/Jingwei-Bao/T-InvBlocks and import its checkpoint with "
                  "`irnbench weights import`")


class _TriBranchMethod(InvertibleRescaler):
    """A tri-branch rescaler: restore = the inverse of [y | 0], deterministic."""

    stochastic = False
    paper = _PAPER
    training_note = _TRAINING_NOTE

    def restore(self, y: torch.Tensor, **channel_info: Any) -> torch.Tensor:
        """What came through the channel → HR, z = 0 (``channel_info`` is ignored)."""
        return self.restore_with_z(y, y.new_zeros(self.latent_shape(y)))


class TIRN(_TriBranchMethod):
    """T-IRN: IRN with tri-branch invertible blocks in YCbCr; z = 0 at upscaling."""

    name = "tirn"
    description = "T-IRN: IRN with tri-branch invertible blocks (AAAI 2025)"
    #: The authors' ×2 and ×4 releases.
    official_weights = TIRN_OFFICIAL

    def build_net(self, scale: int) -> TIRNet:
        return TIRNet(scale)


class TSAIN(_TriBranchMethod):
    """T-SAIN: SAIN with tri-branch invertible blocks, trained with JPEG; z = 0 at upscaling."""

    name = "tsain"
    description = "T-SAIN: SAIN with tri-branch invertible blocks, compression-aware (AAAI 2025)"
    #: The authors' ×2 and ×4 releases.
    official_weights = TSAIN_OFFICIAL

    def build_net(self, scale: int) -> TSAINet:
        return TSAINet(scale)
