from __future__ import annotations

import inspect
from typing import Any

import torch

from irnbench.plugin import TINVBLOCKS_AAAI, ModelCard
from irnbench_plugins.sain.method import InvertibleRescaler

from .model import TIRN as TIRNet
from .model import TSAIN as TSAINet
from .official import COMMIT, tinvblocks_official

__all__ = ["TIRN", "TIRN_CARD", "TSAIN", "TSAIN_CARD"]

#: What T-IRN and T-SAIN share: the block, the upscaling, irnbench's departures, the release.
_BLOCK = inspect.cleandoc("""
    The tri-branch invertible block splits each coupling into three branches after converting
    the Haar LL subband to YCbCr: chroma (Cb, Cr), the high frequencies and luma (Y), each
    updated from the others. The method transmits the clamped RGB of the last stage's output
    and upscales deterministically: the inverse of [LR | z] with z = 0, the paper's all-zero
    high-frequency mapping. ``degrade`` returns that float LR (the harness quantises it and,
    with ``--jpeg``, JPEG-codes it); ``restore`` returns the inverse's HR.
    """)
_DEPARTURES = inspect.cleandoc("""
    - The harness owns the channel. T-IRN's official test never codes the LR and T-SAIN's
      always does (Pillow JPEG or WebP at ``-qf``); in irnbench either runs clean or under
      ``--jpeg`` (Pillow JPEG 4:2:0, optimise off, as the official codec wrapper).
    - The HR is not clamped here (the harness clamps and rounds it, as the official metric code
      does).
    - Images above ``irnbench.ops.tiling.AUTO_TILE_PIXELS`` HR pixels (DIV2K's included) run
      tiled with 32 LR pixels of context: the result differs slightly from an untiled run near
      tile borders. ``--option tile=-1`` never tiles.
    - No training: ``irnbench train --plugin tirn`` (or ``tsain``) refuses and points to the
      official code.
    """)
_WEIGHTS = inspect.cleandoc("""
    No weights ship with irnbench. ``irnbench weights import tirn|tsain FILE --task rescale
    --scale S`` (or ``irnbench weights fetch``) installs the authors' files, committed in the
    repository at commit COMMIT (each pinned by URL and git blob SHA-1 in the method's
    ``official_weights``), after checking every tensor's name and shape and that the Haar
    weights are the Haar constants: ``experiments/pretrained_TIRN/TIRNx2.pth``, ``TIRNx4.pth``
    → ``tirn.official`` ×2, ×4; ``experiments/pretrained_TSAIN/TSAINx2.pth``, ``TSAINx4.pth``
    → ``tsain.official`` ×2, ×4. They should reproduce the paper's results, which irnbench does
    not quote: the repository publishes no numbers (its badges name clean ×2/×4 rescaling on
    Set5, Set14, B100, Urban100 and DIV2K val, and DIV2K val at JPEG QF 30, 50, 70), and the
    paper's tables are not quoted here. An untagged ``tirn`` / ``tsain`` resolves to
    ``.official`` once imported.
    """).replace("COMMIT", COMMIT)
_CARD = dict(citation=TINVBLOCKS_AAAI.citation, url=TINVBLOCKS_AAAI.url,
             code="github.com/Jingwei-Bao/T-InvBlocks",
             licence="Apache-2.0 (Jingwei-Bao/T-InvBlocks: code and weights, which are committed "
                     "in the repository)")

TIRN_CARD = ModelCard(
    summary=f"T-IRN: IRN with tri-branch invertible blocks ({TINVBLOCKS_AAAI.inline})",
    what="The ``tirn`` method: T-IRN, rescale ×2 and ×4, IRN built from tri-branch invertible "
         "blocks (×2: 3 blocks; ×4: 3 + 4 blocks over two Haar stages).\n\n" + _BLOCK,
    departures=_DEPARTURES,
    weights=_WEIGHTS,
    **_CARD,
)
TSAIN_CARD = ModelCard(
    summary=f"T-SAIN: SAIN with tri-branch invertible blocks, compression-aware "
            f"({TINVBLOCKS_AAAI.inline})",
    what="The ``tsain`` method: T-SAIN, rescale ×2 and ×4, SAIN built from tri-branch "
         "invertible blocks (×2: 3 blocks + 1 comp block; ×4: 3 + 3 + 2), trained with JPEG at "
         "QF 75 in the loop; it transmits the LR before its comp blocks, which only training "
         "reads.\n\n" + _BLOCK,
    departures=_DEPARTURES + "\n- ``degrade`` skips the comp blocks (training only), which "
                             "leaves the LR unchanged.",
    weights=_WEIGHTS,
    **_CARD,
)
#: The module's two methods, one card each.
__doc__ = TIRN_CARD.docstring() + "\n" + TSAIN_CARD.docstring()

_TRAINING_NOTE = ("training is out of scope here; train it with the official code at "
                  "https://github.com/Jingwei-Bao/T-InvBlocks and import its checkpoint with "
                  "`irnbench weights import`")


class _TriBranchMethod(InvertibleRescaler):
    """A tri-branch rescaler: restore = the inverse of [y | 0], deterministic."""

    stochastic = False
    training_note = _TRAINING_NOTE

    def restore(self, y: torch.Tensor, **channel_info: Any) -> torch.Tensor:
        """What came through the channel → HR, z = 0 (``channel_info`` is ignored)."""
        return self.restore_with_z(y, y.new_zeros(self.latent_shape(y)))


class TIRN(_TriBranchMethod):
    """T-IRN: IRN with tri-branch invertible blocks in YCbCr; z = 0 at upscaling."""

    name = "tirn"
    card = TIRN_CARD
    description = TIRN_CARD.summary
    paper = TIRN_CARD.paper()  # no numbers quoted
    official_weights = tinvblocks_official(TIRN_CARD, "TIRN")

    def build_net(self, scale: int) -> TIRNet:
        return TIRNet(scale)


class TSAIN(_TriBranchMethod):
    """T-SAIN: SAIN with tri-branch invertible blocks, trained with JPEG; z = 0 at upscaling."""

    name = "tsain"
    card = TSAIN_CARD
    description = TSAIN_CARD.summary
    paper = TSAIN_CARD.paper()  # no numbers quoted
    official_weights = tinvblocks_official(TSAIN_CARD, "TSAIN")

    def build_net(self, scale: int) -> TSAINet:
        return TSAINet(scale)
