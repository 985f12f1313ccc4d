"""``SAINet``: SAIN's asymmetric invertible network and its Gaussian-mixture latent.

Written from the AAAI 2023 paper (Yang et al., arXiv 2303.02353) and checked against the
official code (``inv_arch.py`` and ``guassian_mixture.py`` in ``codes/models/modules/`` of
github.com/yang-jin-hai/SAIN). Module and parameter names follow the official state dict
(``haar_operations``, ``down_operations``, ``comp_operations``, ``gmm.gmm_para``), so a released
checkpoint loads under its own key names.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from irnbench_plugins.irn.blocks import (
    DenseBlock,
    HaarDownsampling,
    InvBlockExp,
    SubnetConstructor,
    inference_layout,
)

__all__ = ["EnhancedInvBlock", "VanillaInvBlock", "GaussianMixture", "SAINet", "DEFAULT_BLOCKS"]

#: Official (Enhanced, Vanilla) block counts per scale (the test ymls: ``e_blocks``, ``v_blocks``).
DEFAULT_BLOCKS: dict[int, tuple[int, int]] = {2: (5, 3), 4: (10, 6)}


class VanillaInvBlock(InvBlockExp):
    """SAIN's Vanilla coupling: IRN's ``InvBlockExp``, inverted by dividing by exp(s) as the
    official code does."""

    divide_inverse = True


class EnhancedInvBlock(InvBlockExp):
    """SAIN's Enhanced coupling: IRN's ``InvBlockExp`` plus a subnet E that forms the LR.

    x = [x1 | x2]: LR = x1 + E(x2); y1 = LR − F(x2); s = clamp·(2·sigmoid(H(y1)) − 1);
    y2 = x2·exp(s) + G(y1). The inverse divides by exp(s), as the official code does.
    """

    def __init__(
        self,
        channels: int,
        split: int = 3,
        clamp: float = 1.0,
        subnet: SubnetConstructor = DenseBlock,
    ):
        super().__init__(channels, split, clamp, subnet)
        self.E = subnet(self.split_len2, self.split_len1)

    def forward_lr(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The forward pass and the block's LR (x1 + E(x2)), which SAIN transmits."""
        x = inference_layout(x)
        x1, x2 = x.split((self.split_len1, self.split_len2), dim=1)
        lr = x1 + self.E(x2)
        y1 = lr - self.F(x2)
        s = self._scale(y1)
        y2 = x2 * torch.exp(s) + self.G(y1)
        self.last_logdet = s.detach().sum() / s.shape[0]
        return torch.cat((y1, y2), 1), lr

    def forward(self, x: torch.Tensor, rev: bool = False) -> torch.Tensor:
        if not rev:
            return self.forward_lr(x)[0]
        x = inference_layout(x)
        y1, y2 = x.split((self.split_len1, self.split_len2), dim=1)
        s = self._scale(y1)
        x2 = (y2 - self.G(y1)) / torch.exp(s)
        lr = y1 + self.F(x2)
        x1 = lr - self.E(x2)
        self.last_logdet = -s.detach().sum() / s.shape[0]
        return torch.cat((x1, x2), 1)


class GaussianMixture(nn.Module):
    """SAIN's learnable scalar Gaussian mixture for the high-frequency latent z.

    ``gmm_para`` (3×K) holds the mixture logits, the means and the log-variances; every latent
    element is drawn independently from Σ_k π_k N(μ_k, σ_k²) with σ_k = exp(½·clamp(logvar,
    −20, 20)).
    """

    def __init__(self, components: int = 5):
        super().__init__()
        self.gmm_para = nn.Parameter(1e-4 * torch.randn(3, components))  # official init

    def mixture(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(π, μ, σ), each of shape (K,)."""
        logits, means, logvars = self.gmm_para
        return logits.softmax(dim=0), means, torch.exp(0.5 * torch.clamp(logvars, -20, 20))

    def moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The mixture's mean Σπμ and variance Σπ(σ² + μ²) − mean²."""
        pi, mu, std = self.mixture()
        mean = (pi * mu).sum()
        return mean, (pi * (std * std + mu * mu)).sum() - mean * mean

    def sample(self, shape: tuple[int, ...] | torch.Size,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """z of ``shape``, each element from the mixture, drawn as the official code does.

        A hard straight-through Gumbel-softmax (τ = 1) on the log-weights picks a component per
        element, and each component's Normal is reparameterised; the draws come in the official
        order (Gumbel exponentials on (*shape, K), then standard normals on (*shape, K)) from
        ``generator`` (the global RNG when ``None``), so a seed reproduces the official z.
        """
        pi, mu, std = self.mixture()
        k = pi.shape[0]
        full = (*shape, k)
        # torch.distributions.Categorical renormalises its probabilities; the official code
        # takes the log of those.
        logits = (pi / pi.sum(-1, keepdim=True)).log().expand(full)
        gumbels = -torch.empty(full, dtype=pi.dtype, device=pi.device).exponential_(
            generator=generator).log()
        soft = (logits + gumbels).softmax(dim=-1)
        index = soft.max(dim=-1, keepdim=True).indices
        hard = torch.zeros_like(soft).scatter_(-1, index, 1.0)
        onehot = hard - soft.detach() + soft  # straight-through, as F.gumbel_softmax(hard=True)
        eps = torch.empty(full, dtype=mu.dtype, device=mu.device).normal_(generator=generator)
        return (onehot * (mu + eps * std)).sum(dim=-1)


class SAINet(nn.Module):
    """SAIN's network: every Haar stage first, then Enhanced blocks, then Vanilla blocks.

    ``forward(x)`` maps B×3×H×W to (the B×3s²×H/s×W/s output, the transmitted LR); the LR is
    the last Enhanced block's ``x1 + E(x2)``, not the first 3 channels of the output (those,
    after the Vanilla blocks, estimate the compressed LR for the training losses).
    ``inverse(t)`` runs ``t = [LR | z]`` back through the Vanilla blocks, the Enhanced blocks
    and the Haar stages, each reversed, and returns the B×3×H×W reconstruction (not clamped).
    """

    def __init__(
        self,
        scale: int,
        e_blocks: int | None = None,
        v_blocks: int | None = None,
        gmm_components: int = 5,
        channels: int = 3,
        clamp: float = 1.0,
        subnet: SubnetConstructor = DenseBlock,
    ):
        super().__init__()
        stages = round(math.log2(scale)) if scale > 1 else 0
        if scale < 2 or 2**stages != scale:
            raise ValueError(f"SAINet supports power-of-two scales ≥ 2, got {scale}")
        if (e_blocks is None or v_blocks is None) and scale not in DEFAULT_BLOCKS:
            raise ValueError(f"SAIN has no official ×{scale} model: give e_blocks and v_blocks")
        default_e, default_v = DEFAULT_BLOCKS.get(scale, (0, 0))
        e_blocks = default_e if e_blocks is None else e_blocks
        v_blocks = default_v if v_blocks is None else v_blocks
        if e_blocks < 1 or v_blocks < 0:
            raise ValueError(f"SAINet needs e_blocks ≥ 1 and v_blocks ≥ 0, got {e_blocks}, "
                             f"{v_blocks}")
        self.scale = scale
        self.channels = channels
        self.haar_operations = nn.ModuleList(
            HaarDownsampling(channels * 4**i) for i in range(stages))
        c = channels * 4**stages
        self.down_operations = nn.ModuleList(
            EnhancedInvBlock(c, channels, clamp, subnet) for _ in range(e_blocks))
        self.comp_operations = nn.ModuleList(
            VanillaInvBlock(c, channels, clamp, subnet) for _ in range(v_blocks))
        self.gmm = GaussianMixture(gmm_components)
        self.out_channels = c
        #: Channels of z in ``inverse``'s input [LR | z]: 3·(s² − 1).
        self.latent_channels = c - channels

    def _down(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The Haar stages and the Enhanced blocks: (their output, the transmitted LR)."""
        for op in self.haar_operations:
            x = op(x)
        lr = x  # replaced by the last Enhanced block (there is at least one)
        for op in self.down_operations:
            x, lr = op.forward_lr(x)
        return x, lr

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, lr = self._down(x)
        for op in self.comp_operations:
            x = op(x)
        return x, lr

    def downscale(self, x: torch.Tensor) -> torch.Tensor:
        """The transmitted LR alone: ``forward(x)[1]`` without the Vanilla blocks, whose output
        only the training losses read."""
        return self._down(x)[1]

    def inverse(self, t: torch.Tensor) -> torch.Tensor:
        for op in reversed(self.comp_operations):
            t = op(t, rev=True)
        for op in reversed(self.down_operations):
            t = op(t, rev=True)
        for op in reversed(self.haar_operations):
            t = op(t, rev=True)
        return t

    def sample_latent(self, lr: torch.Tensor,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """A GMM latent for ``lr`` (B×3×h×w): shape B×3(s²−1)×h×w, as the official upscale."""
        b, _, h, w = lr.shape
        return self.gmm.sample((b, self.latent_channels, h, w), generator)
