"""Real WebP coding with Pillow (the WebP channel of the robustness protocol, as SAIN's test).

Lossy, at the given quality, every other option at Pillow's defaults
(``img.save(buf, format="WEBP", quality=q)``), decoded by Pillow back to uint8. The libwebp
version is recorded with every run.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image, features

__all__ = ["webp_encode", "webp_decode", "webp_roundtrip", "libwebp_version"]


def libwebp_version() -> str:
    """The libwebp version Pillow was built with."""
    return str(features.version("webp") or "unknown")


def webp_encode(img_u8: torch.Tensor, quality: int) -> bytes:
    """Encode one ``C×H×W`` uint8 image (C = 1 or 3) as lossy WebP; returns the file bytes."""
    if img_u8.dtype != torch.uint8 or img_u8.dim() != 3:
        raise TypeError("webp_encode expects a C×H×W uint8 tensor")
    arr = img_u8.permute(1, 2, 0).cpu().numpy()
    pil = Image.fromarray(arr[:, :, 0], mode="L") if arr.shape[2] == 1 else \
        Image.fromarray(arr, mode="RGB")
    buf = io.BytesIO()
    pil.save(buf, format="WEBP", quality=int(quality))  # Pillow's defaults otherwise
    return buf.getvalue()


def webp_decode(data: bytes, channels: int = 3) -> torch.Tensor:
    """Decode WebP bytes to a ``C×H×W`` uint8 tensor (RGB; ``channels=1``: Pillow's ``L``)."""
    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("L" if channels == 1 else "RGB")
        arr = np.asarray(im)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def webp_roundtrip(batch_u8: torch.Tensor, quality: int) -> tuple[torch.Tensor, list[int]]:
    """WebP-code every image of a ``B×C×H×W`` uint8 batch; returns decoded batch and byte counts."""
    out, sizes = [], []
    for img in batch_u8:
        data = webp_encode(img, quality)
        sizes.append(len(data))
        out.append(webp_decode(data, img.shape[0]))
    return torch.stack(out).to(batch_u8.device), sizes
