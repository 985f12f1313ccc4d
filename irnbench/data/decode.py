"""One decoding path for every image source (bundled, local folder, hub).

Rules: grey → RGB (channels replicated), RGBA/LA → alpha dropped, 16-bit →
8-bit, palette → RGB, CMYK → RGB, each with a warning; unreadable files and decompression bombs
(over Pillow's pixel limit) are skipped with a warning naming the file. Pixels are taken as
stored, as the papers' loaders do: an animated file is scored on its first frame and an EXIF
orientation is not applied, each with a warning. Output: float32 ``3×H×W`` in [0, 1] holding
k/255 values.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

__all__ = ["DataWarning", "IMAGE_EXTENSIONS", "SKIPPED_EXTENSIONS", "decode_image", "load_image"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
#: Image files that are never evaluated (GIF holds at most 256 colours): skipped with a note.
SKIPPED_EXTENSIONS = (".gif",)


class DataWarning(UserWarning):
    """An input image was converted or skipped."""


def _warn(msg: str) -> None:
    warnings.warn(msg, DataWarning, stacklevel=3)


def _sixteen_to_eight(arr: np.ndarray) -> np.ndarray:
    return np.clip(np.round(arr.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)


def decode_image(im: Image.Image, name: str) -> torch.Tensor:
    """Convert an opened PIL image to float32 RGB ``3×H×W`` under the decoding rules."""
    mode = im.mode
    if mode == "P":
        has_alpha = "transparency" in im.info
        im = im.convert("RGBA" if has_alpha else "RGB")
        _warn(f"{name}: palette image converted to RGB")
        mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im)
        if arr.dtype != np.uint8:
            if mode == "I" and arr.max(initial=0) <= 255:
                arr = arr.astype(np.uint8)
            else:
                arr = _sixteen_to_eight(arr)
                _warn(f"{name}: 16-bit image converted to 8-bit")
        arr = np.repeat(arr[:, :, None], 3, axis=2)
        _warn(f"{name}: grey image converted to RGB (channels replicated)")
    elif mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        scale = 255.0 if arr.max(initial=0) <= 1.0 else 1.0
        arr = np.clip(np.round(arr * scale), 0, 255).astype(np.uint8)
        arr = np.repeat(arr[:, :, None], 3, axis=2)
        _warn(f"{name}: float grey image converted to 8-bit RGB")
    elif mode in ("L", "1"):
        arr = np.repeat(np.asarray(im.convert("L"))[:, :, None], 3, axis=2)
        _warn(f"{name}: grey image converted to RGB (channels replicated)")
    elif mode == "LA":
        arr = np.repeat(np.asarray(im.convert("L"))[:, :, None], 3, axis=2)
        _warn(f"{name}: grey+alpha image: alpha dropped, grey replicated to RGB")
    elif mode in ("RGBA", "RGBa"):
        arr = np.asarray(im.convert("RGB"))
        _warn(f"{name}: alpha channel dropped")
    elif mode == "RGB":
        arr = np.asarray(im)
    else:  # CMYK, YCbCr, LAB, HSV, ...
        arr = np.asarray(im.convert("RGB"))
        _warn(f"{name}: {mode} image converted to RGB")
    if arr.dtype == np.uint16:  # 48-bit RGB where Pillow keeps it
        arr = _sixteen_to_eight(arr)
        _warn(f"{name}: 16-bit image converted to 8-bit")
    t = torch.from_numpy(np.array(arr, dtype=np.uint8, copy=True)).permute(2, 0, 1)
    return t.to(torch.float32) / 255.0


def _reduced_by_pillow(im: Image.Image) -> bool:
    """Whether Pillow decodes a 16-bit-per-channel colour file (48/64-bit PNG…) into an 8-bit
    mode itself (keeping the high byte): the file's tiles then carry a ``;16`` raw mode."""
    if im.mode not in ("RGB", "RGBA"):
        return False
    return any(len(t) > 3 and ";16" in str(t[3]) for t in (getattr(im, "tile", None) or []))


def _note_stored_pixels(im: Image.Image, name: str) -> None:
    """Warn where the pixels as stored are not what a viewer shows: animation, EXIF rotation."""
    if getattr(im, "is_animated", False) and getattr(im, "n_frames", 1) > 1:
        _warn(f"{name}: animated image ({im.n_frames} frames): the first frame is scored")
    orientation = im.getexif().get(0x0112)  # EXIF Orientation
    if orientation not in (None, 1):
        _warn(f"{name}: EXIF orientation {orientation} not applied (pixels are scored as "
              "stored, as the papers' loaders read them)")


def load_image(path: str | Path) -> torch.Tensor | None:
    """Read one file; ``None`` (with a warning naming it) when it cannot be decoded."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # Pillow warns between its pixel limit and twice it, and raises above: skip both.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                deep = _reduced_by_pillow(im)  # must be asked before load() clears the tiles
                _note_stored_pixels(im, path.name)
                im.load()
                out = decode_image(im, path.name)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        claimed = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(claimed.group(1)):,} pixels" if claimed else "too many pixels"
        _warn(f"{path.name}: skipped, its header claims {size}, over Pillow's decompression-"
              f"bomb limit of {Image.MAX_IMAGE_PIXELS:,} pixels")
        return None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        _warn(f"{path.name}: unreadable image skipped ({type(exc).__name__}: {exc})")
        return None
    if deep:
        _warn(f"{path.name}: 16-bit image converted to 8-bit (by Pillow: high byte kept)")
    return out
