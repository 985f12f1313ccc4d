"""SAIN: the Self-Asymmetric Invertible Network for compression-aware rescaling (Yang et al.,
AAAI 2023, arXiv 2303.02353; official code github.com/yang-jin-hai/SAIN).

``model`` holds the network (``SAINet``) and its Gaussian-mixture latent, ``official`` the
mapping of the authors' released state dicts onto it.
"""

from __future__ import annotations

from .model import EnhancedInvBlock, GaussianMixture, SAINet, VanillaInvBlock

__all__ = ["EnhancedInvBlock", "GaussianMixture", "SAINet", "VanillaInvBlock"]
