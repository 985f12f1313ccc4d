"""Hostile or odd images are skipped or noted in one line, never a traceback: decompression
bombs, animated files, EXIF rotation, GIFs."""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from irnbench.data.cards import list_image_files
from irnbench.data.decode import DataWarning, load_image


def _png_header_claiming(path: Path, width: int, height: int) -> None:
    """A tiny PNG whose IHDR claims ``width×height`` (the pixels are never there)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 16)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
                     + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [12_000, 50_000])  # over the limit, and over twice it
def test_a_decompression_bomb_is_skipped_with_its_claimed_size(tmp_path, side):
    path = tmp_path / "bomb.png"
    _png_header_claiming(path, side, side)
    with pytest.warns(DataWarning) as rec:
        assert load_image(path) is None
    msg = str(rec[-1].message)
    assert "bomb.png" in msg and f"{side * side:,} pixels" in msg and "decompression" in msg


def test_animated_png_is_scored_on_its_first_frame_with_a_warning(tmp_path):
    frames = [Image.fromarray(np.full((8, 8, 3), v, np.uint8)) for v in (10, 200)]
    path = tmp_path / "anim.png"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.warns(DataWarning, match="anim.png: animated image \\(2 frames\\)"):
        img = load_image(path)
    assert img is not None and float(img.max()) == pytest.approx(10 / 255)


def test_exif_orientation_is_not_applied_and_says_so(tmp_path):
    im = Image.fromarray(np.arange(8 * 6 * 3, dtype=np.uint8).reshape(8, 6, 3))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    im.save(path, exif=exif.tobytes())
    with pytest.warns(DataWarning, match="EXIF orientation 6 not applied"):
        img = load_image(path)
    assert img is not None and tuple(img.shape) == (3, 8, 6)  # as stored, not rotated


def test_plain_images_load_without_a_warning(tmp_path):
    path = tmp_path / "plain.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_image(path) is not None


def test_gif_files_are_skipped_with_a_note(tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "b.gif")
    with pytest.warns(DataWarning, match="1 GIF file\\(s\\) skipped.*b.gif"):
        files = list_image_files(tmp_path)
    assert [f.name for f in files] == ["a.png"]
