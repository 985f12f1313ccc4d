"""SAIN plugin: the Self-Asymmetric Invertible Network for compression-aware rescaling as method
``sain`` (model card: ``method``).

``model`` holds the network (``SAINet``) and its Gaussian-mixture latent, ``official`` the
mapping of the authors' released state dicts onto it and the importable checkpoints, ``method``
the irnbench ``Method`` (and ``InvertibleRescaler``, which the T-InvBlocks methods share).
"""

from __future__ import annotations

from irnbench.plugin import hookimpl

from .method import SAIN
from .model import EnhancedInvBlock, GaussianMixture, SAINet, VanillaInvBlock

__all__ = ["SAIN", "EnhancedInvBlock", "GaussianMixture", "SAINet", "VanillaInvBlock"]


@hookimpl
def irnbench_register_methods(register):
    register(SAIN)
