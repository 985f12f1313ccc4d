"""Tiled inference equals untiled inference (same z), within a stated tolerance."""

from __future__ import annotations

import pytest
import torch

import irnbench
from irnbench.ops.tiling import tiled

#: With 32 LR pixels of context per tile the cut-off context changes restored values by less
#: than this (measured ≤ 3e-6 on perturbed weights at ×2, 0 at ×4; pointwise functions: exact).
TOLERANCE = 2e-3


def test_tiled_pointwise_is_exact():
    x = torch.rand(1, 3, 70, 90)
    up = lambda t: torch.nn.functional.interpolate(t, scale_factor=2, mode="nearest")  # noqa: E731
    assert torch.equal(tiled(up, x, 32, 0, 2.0), up(x))
    down = lambda t: torch.nn.functional.avg_pool2d(t, 2)  # noqa: E731
    assert torch.equal(tiled(down, x, 33, 4, 0.5, align=2), down(x))


#: Image sizes: at ×2, tiles of 64 with 64 pixels of context cut some context off in the 192
#: columns; at ×4 the 128-pixel context spans the image, so a 2 × 2 grid with a partial last
#: row of tiles checks the placement at ratios 4 and 1/4 as the 3 × 3 grid of 160 × 192 did,
#: with a fifth of the pixels through the network.
@pytest.mark.parametrize("scale,size", [(2, (160, 192)), (4, (96, 128))])
def test_irn_tiled_equals_untiled(scale, size):
    torch.manual_seed(0)
    whole = irnbench.create_method("irn", scale=scale, pretrained=False)
    with torch.no_grad():  # non-trivial weights: zero-init would make every block the identity
        for p in whole.parameters():
            if p.requires_grad:
                p.add_(0.02 * torch.randn_like(p))
    tiles = irnbench.create_method("irn", scale=scale, pretrained=False, tile=64)
    tiles.load_state_dict(whole.state_dict())
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        y_whole, y_tiles = whole.degrade(x), tiles.degrade(x)
        assert (y_whole - y_tiles).abs().max() < TOLERANCE
        g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
        r_whole = whole.restore(y_whole, generator=g())
        r_tiles = tiles.restore(y_whole, generator=g())
    assert r_whole.shape == r_tiles.shape == x.shape
    assert (r_whole - r_tiles).abs().max() < TOLERANCE
