"""Pure tensor operations: MATLAB bicubic resize, colour conversions, quantisation, JPEG, WebP."""

from irnbench.ops.color import grey_to_rgb, rgb_to_grey, rgb_to_y
from irnbench.ops.imresize import imresize, resize_matrix
from irnbench.ops.jpeg import jpeg_roundtrip, libjpeg_version
from irnbench.ops.quantize import (
    from_uint8,
    quantize,
    soft_round_quantize,
    straight_through_quantize,
    to_uint8,
)
from irnbench.ops.webp import libwebp_version, webp_roundtrip

__all__ = [
    "imresize",
    "resize_matrix",
    "rgb_to_y",
    "rgb_to_grey",
    "grey_to_rgb",
    "quantize",
    "to_uint8",
    "from_uint8",
    "straight_through_quantize",
    "soft_round_quantize",
    "jpeg_roundtrip",
    "libjpeg_version",
    "webp_roundtrip",
    "libwebp_version",
]
