"""Real JPEG coding with Pillow (the codec of the compression task and the robustness protocol).

The IRN code used OpenCV's encoder; irnbench uses Pillow (libjpeg / libjpeg-turbo) with 4:2:0
chroma subsampling and optimisation off. The library version is recorded with every run.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image, features

from irnbench.protocol import JPEG_OPTIMIZE, JPEG_SUBSAMPLING

__all__ = ["jpeg_encode", "jpeg_decode", "jpeg_roundtrip", "libjpeg_version"]


def libjpeg_version() -> str:
    """The libjpeg(-turbo) version Pillow was built with."""
    return str(features.version("jpg") or "unknown")


def jpeg_encode(img_u8: torch.Tensor, quality: int) -> bytes:
    """Encode one ``C×H×W`` uint8 image (C = 1 or 3) as baseline JPEG; returns the file bytes."""
    if img_u8.dtype != torch.uint8 or img_u8.dim() != 3:
        raise TypeError("jpeg_encode expects a C×H×W uint8 tensor")
    arr = img_u8.permute(1, 2, 0).cpu().numpy()
    mode = "L" if arr.shape[2] == 1 else "RGB"
    pil = Image.fromarray(arr[:, :, 0] if mode == "L" else arr, mode=mode)
    buf = io.BytesIO()
    kwargs = {"quality": int(quality), "optimize": JPEG_OPTIMIZE}
    if mode == "RGB":
        kwargs["subsampling"] = JPEG_SUBSAMPLING  # 4:2:0
    pil.save(buf, format="JPEG", **kwargs)
    return buf.getvalue()


def jpeg_decode(data: bytes) -> torch.Tensor:
    """Decode JPEG bytes to a ``C×H×W`` uint8 tensor."""
    with Image.open(io.BytesIO(data)) as im:
        arr = np.asarray(im)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def jpeg_roundtrip(batch_u8: torch.Tensor, quality: int) -> tuple[torch.Tensor, list[int]]:
    """JPEG-code every image of a ``B×C×H×W`` uint8 batch; returns decoded batch and byte counts."""
    out, sizes = [], []
    for img in batch_u8:
        data = jpeg_encode(img, quality)
        sizes.append(len(data))
        out.append(jpeg_decode(data))
    return torch.stack(out).to(batch_u8.device), sizes
