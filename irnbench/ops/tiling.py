"""Tiled application of a fully convolutional function, for bounded memory on large images.

The input is cut into tiles with ``overlap`` pixels of context on every side; each tile goes
through ``fn`` and only its centre (the part without context) is kept, scaled by the function's
size ratio. A stochastic method makes its noise for the whole image first and tiles the
concatenated input, so tiled and untiled runs see the same noise. Results equal the untiled ones
up to the context the overlap cuts off (the tests state the tolerance).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["AUTO_TILE_PIXELS", "AUTO_TILE_SIDE", "resolve_tile", "tiled"]

#: Images with more pixels than this run tiled unless the ``tile`` option says otherwise
#: (bounded memory on large images; each method says which pixels it counts, HR or LR).
AUTO_TILE_PIXELS = 1024 * 1024
#: The tile side chosen automatically above ``AUTO_TILE_PIXELS``.
AUTO_TILE_SIDE = 512


def resolve_tile(tile: int, pixels: int, auto_side: int = AUTO_TILE_SIDE) -> int:
    """The tile side to use for an image of ``pixels`` pixels under option ``tile``: ``0``
    (untiled) for ``tile < 0``; ``auto_side`` for ``tile == 0`` above ``AUTO_TILE_PIXELS``
    (else ``0``); ``tile`` itself when positive. One rule for every tiling method."""
    if tile < 0:
        return 0
    if tile == 0 and pixels > AUTO_TILE_PIXELS:
        return auto_side
    return tile


def tiled(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    tile: int,
    overlap: int,
    ratio: float,
    align: int = 1,
) -> torch.Tensor:
    """Apply ``fn`` (output size = input size × ``ratio``) over tiles of ``x`` (B×C×H×W).

    ``tile`` and ``overlap`` are in input pixels and are rounded down to multiples of ``align``
    (e.g. the scale for a downscaling function) so that tile borders map to whole output pixels.
    """
    h, w = x.shape[-2:]
    tile = max(align, tile - tile % align)
    overlap = overlap - overlap % align
    if h <= tile and w <= tile:
        return fn(x)
    out = None
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            bottom, right = min(top + tile, h), min(left + tile, w)
            t0, l0 = max(top - overlap, 0), max(left - overlap, 0)
            t1, l1 = min(bottom + overlap, h), min(right + overlap, w)
            y = fn(x[..., t0:t1, l0:l1])
            if out is None:
                out = y.new_empty(*y.shape[:-2], round(h * ratio), round(w * ratio))
            ct, cl = round((top - t0) * ratio), round((left - l0) * ratio)
            ch, cw = round((bottom - top) * ratio), round((right - left) * ratio)
            out[..., round(top * ratio) : round(top * ratio) + ch,
                round(left * ratio) : round(left * ratio) + cw] = y[..., ct : ct + ch, cl : cl + cw]
    return out
