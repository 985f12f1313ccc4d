"""Data: the decoding rules, dataset resolution and the bundled sets.

Every rule is checked twice: on ``irnbench.data.decode.load_image`` (exact values) and through a
full ``irnbench eval`` run on a folder (the run finishes, the rows and notes say what happened).
Images are tiny and written to ``tmp_path`` so that the whole file runs in a few seconds.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from irnbench.data.cards import datasets_dir, list_image_files
from irnbench.data.decode import DataWarning, load_image
from irnbench.data.loading import resolve_dataset
from irnbench.errors import DatasetUnavailable, UnknownNameError
from irnbench.plugins import registered_datasets

H, W = 48, 64


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("IRNBENCH_HOME", str(tmp_path / "home"))


def _rgb(h: int = H, w: int = W, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _grey(h: int = H, w: int = W, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def _messages(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, DataWarning)]


def _load(path: Path) -> tuple[torch.Tensor | None, list[str]]:
    with pytest.warns(DataWarning) as record:
        t = load_image(path)
    return t, _messages(record)


def _assert_rgb_equals(t: torch.Tensor, arr_hw3: np.ndarray) -> None:
    """``t`` (3×H×W float) holds exactly ``arr/255`` (arr H×W×3 uint8)."""
    assert t.dtype == torch.float32
    assert tuple(t.shape) == (3, arr_hw3.shape[0], arr_hw3.shape[1])
    expected = torch.from_numpy(arr_hw3.copy()).permute(2, 0, 1).to(torch.float32) / 255.0
    assert torch.equal(t, expected)


# ------------------------------------------------------------------------------------------
# load_image: one rule at a time, exact values


def test_rgb_png_decodes_exactly_without_warning(tmp_path, recwarn):
    arr = _rgb()
    Image.fromarray(arr, "RGB").save(tmp_path / "rgb.png")
    t = load_image(tmp_path / "rgb.png")
    _assert_rgb_equals(t, arr)
    assert not _messages(recwarn)


def test_grey_is_replicated_to_rgb(tmp_path):
    arr = _grey()
    arr[0, :4] = [0, 1, 128, 255]
    Image.fromarray(arr, "L").save(tmp_path / "grey.png")
    t, msgs = _load(tmp_path / "grey.png")
    _assert_rgb_equals(t, np.repeat(arr[:, :, None], 3, axis=2))
    assert torch.equal(t[0], t[1]) and torch.equal(t[1], t[2])
    assert t[0, 0, 2].item() == np.float32(128) / np.float32(255)  # exactly v/255 (float32)
    assert any("grey.png" in m and "grey" in m.lower() for m in msgs)


def test_rgba_alpha_is_dropped(tmp_path):
    rgb = _rgb()
    alpha = np.random.default_rng(5).integers(0, 256, (H, W, 1), dtype=np.uint8)
    alpha[0, 0] = 0  # a fully transparent pixel keeps its colour (no premultiplication)
    Image.fromarray(np.concatenate([rgb, alpha], axis=2), "RGBA").save(tmp_path / "rgba.png")
    t, msgs = _load(tmp_path / "rgba.png")
    _assert_rgb_equals(t, rgb)
    assert any("rgba.png" in m and "alpha" in m.lower() for m in msgs)


def test_la_alpha_dropped_and_grey_replicated(tmp_path):
    grey = _grey()
    alpha = np.full((H, W), 17, dtype=np.uint8)
    Image.fromarray(np.stack([grey, alpha], axis=2), "LA").save(tmp_path / "la.png")
    assert Image.open(tmp_path / "la.png").mode == "LA"
    t, msgs = _load(tmp_path / "la.png")
    _assert_rgb_equals(t, np.repeat(grey[:, :, None], 3, axis=2))
    assert any("la.png" in m and "alpha" in m.lower() for m in msgs)


def _palette_image(transparency: bool) -> tuple[Image.Image, np.ndarray]:
    palette = np.random.default_rng(7).integers(0, 256, (256, 3), dtype=np.uint8)
    idx = np.random.default_rng(8).integers(0, 256, (H, W), dtype=np.uint8)
    im = Image.frombytes("P", (W, H), idx.tobytes())
    im.putpalette(palette.flatten().tolist())
    if transparency:
        im.info["transparency"] = int(idx[0, 0])
    return im, palette[idx]


@pytest.mark.parametrize("transparency", [False, True], ids=["opaque", "transparent"])
def test_palette_becomes_rgb(tmp_path, transparency):
    im, expected = _palette_image(transparency)
    path = tmp_path / "pal.png"
    if transparency:
        im.save(path, transparency=im.info["transparency"])
    else:
        im.save(path)
    with Image.open(path) as check:
        assert check.mode == "P"
        assert ("transparency" in check.info) == transparency
    t, msgs = _load(path)
    _assert_rgb_equals(t, expected)  # palette colours, transparency ignored
    assert any("pal.png" in m and "palette" in m.lower() for m in msgs)


def test_sixteen_bit_grey_to_eight_bit(tmp_path):
    values = np.array([0, 128, 129, 257, 300, 1000, 32896, 40000, 65534, 65535], dtype=np.uint16)
    arr = np.tile(values, (20, 2))
    arr[5:, :] = np.random.default_rng(3).integers(0, 65536, (15, arr.shape[1]), dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as check:
        assert check.mode.startswith("I")  # really a 16-bit PNG
    t, msgs = _load(tmp_path / "deep.png")
    expected8 = np.round(arr.astype(np.float64) / 257.0).astype(np.uint8)
    _assert_rgb_equals(t, np.repeat(expected8[:, :, None], 3, axis=2))
    # spot values: round(v / 257)
    row = (t[0, 0, : len(values)] * 255).round().to(torch.int64).tolist()
    assert row == [0, 0, 1, 1, 1, 4, 128, 156, 255, 255]
    assert any("deep.png" in m and "16-bit" in m for m in msgs)


def _write_png48(path: Path, arr: np.ndarray) -> None:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one), written by hand."""
    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_sixteen_bit_rgb_to_eight_bit_with_warning(tmp_path):
    arr = np.random.default_rng(4).integers(0, 65536, (20, 24, 3), dtype=np.uint16)
    arr[0, :4, 0] = [0, 129, 32896, 65535]
    _write_png48(tmp_path / "rgb48.png", arr)
    t, msgs = _load(tmp_path / "rgb48.png")
    assert tuple(t.shape) == (3, 20, 24)
    got = (t * 255).round().to(torch.int64).permute(1, 2, 0).numpy()
    # Pillow itself reduces 48-bit PNGs (high byte); within one level of round(v / 257)
    assert np.abs(got - np.round(arr / 257.0)).max() <= 1
    assert got[0, 0, 0] == 0 and got[0, 2, 0] == 128 and got[0, 3, 0] == 255
    assert any("rgb48.png" in m and "16-bit" in m for m in msgs)


def test_truncated_png_is_skipped_with_warning(tmp_path):
    Image.fromarray(_rgb(), "RGB").save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    t, msgs = _load(tmp_path / "cut.png")
    assert t is None
    assert any("cut.png" in m for m in msgs)


def test_non_image_with_png_extension_is_skipped(tmp_path):
    (tmp_path / "notes.png").write_text("this is not an image\n")
    t, msgs = _load(tmp_path / "notes.png")
    assert t is None
    assert any("notes.png" in m for m in msgs)


# ------------------------------------------------------------------------------------------
# The same rules through a full `irnbench eval` run


def _make_messy_folder(root: Path) -> dict[str, np.ndarray]:
    root.mkdir(parents=True, exist_ok=True)
    good = _rgb(seed=11)
    Image.fromarray(good, "RGB").save(root / "good.png")
    grey = _grey(seed=12)
    Image.fromarray(grey, "L").save(root / "grey.png")
    rgba = np.concatenate([_rgb(seed=13), np.full((H, W, 1), 128, np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(root / "rgba.png")
    pal, _ = _palette_image(transparency=True)
    pal.save(root / "pal.png", transparency=pal.info["transparency"])
    deep = np.random.default_rng(14).integers(0, 65536, (H, W), dtype=np.uint16)
    Image.fromarray(deep).save(root / "deep.png")
    la = np.stack([_grey(seed=15), np.full((H, W), 200, np.uint8)], axis=2)
    Image.fromarray(la, "LA").save(root / "la.png")
    Image.fromarray(_rgb(50, 67, seed=16), "RGB").save(root / "odd.png")
    Image.fromarray(_rgb(10, 10, seed=17), "RGB").save(root / "tiny.png")
    data = (root / "good.png").read_bytes()
    (root / "cut.png").write_bytes(data[: len(data) // 2])
    (root / "fake.png").write_bytes(b"GIF? no. plain bytes " * 10)
    return {"good": good}


@pytest.fixture(scope="module")
def messy_run(tmp_path_factory):
    """One `irnbench eval` at x4 over a folder holding every kind of awkward file."""
    from irnbench.cli import cli

    tmp_path = tmp_path_factory.mktemp("messy")
    folder = tmp_path / "messy"
    _make_messy_folder(folder)
    out = tmp_path / "run"
    runner = CliRunner()
    with pytest.MonkeyPatch.context() as mp, pytest.warns(DataWarning) as record:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("IRNBENCH_HOME", str(tmp_path / "home"))
        result = runner.invoke(
            cli,
            ["eval", "--plugins", "bicubic", "--scale", "4", "--datasets", str(folder),
             "--quiet", "--out", str(out)],
        )
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    df = pd.read_csv(out / "results.csv")
    meta = json.loads((out / "meta.json").read_text())
    return df, meta, _messages(record), result


def test_eval_run_on_messy_folder_finishes_and_saves(messy_run):
    df, meta, _, result = messy_run
    assert "bicubic" in result.output
    ok = df[df["status"] == "ok"]
    assert sorted(ok["image"]) == sorted(
        ["good.png", "grey.png", "rgba.png", "pal.png", "deep.png", "la.png", "odd.png"]
    )
    assert set(ok["method"]) == {"bicubic"}
    assert ok["psnr_y"].notna().all()


@pytest.mark.parametrize("fname", ["cut.png", "fake.png", "tiny.png"])
def test_eval_run_skips_bad_files_naming_them(messy_run, fname):
    df, meta, msgs, _ = messy_run
    assert fname not in set(df["image"].dropna())
    assert any(fname in m and "skipped" in m for m in msgs), msgs
    assert any(fname in n and "skipped" in n for n in meta["notes"]), meta["notes"]


@pytest.mark.parametrize(
    "fname, word",
    [("grey.png", "grey"), ("rgba.png", "alpha"), ("pal.png", "palette"),
     ("deep.png", "16-bit"), ("la.png", "alpha")],
)
def test_eval_run_warns_about_conversions(messy_run, fname, word):
    _, meta, msgs, _ = messy_run
    assert any(fname in m and word in m for m in msgs), msgs
    assert any(fname in n and word in n for n in meta["notes"])


def test_eval_run_modcrops_odd_sizes(messy_run):
    df, meta, _, _ = messy_run
    odd = df[df["image"] == "odd.png"]
    assert len(odd) == 1
    row = odd.iloc[0]
    assert "modcropped" in str(row["notes"])
    assert (int(row["height"]), int(row["width"])) == (48, 64)  # 50x67 → multiples of 4
    good = df[df["image"] == "good.png"].iloc[0]
    assert (int(good["height"]), int(good["width"])) == (H, W)
    assert pd.isna(good["notes"]) or "modcropped" not in str(good["notes"])
    assert any("odd.png" in n and "modcropped" in n for n in meta["notes"])


def test_eval_run_grey_input_scores_like_its_rgb_copy(tmp_path):
    """A grey file and the same pixels saved as RGB give identical rows (one decoding path)."""
    from irnbench.cli import cli

    grey = _grey(seed=21)
    folder = tmp_path / "g"
    folder.mkdir()
    Image.fromarray(grey, "L").save(folder / "a_grey.png")
    Image.fromarray(np.repeat(grey[:, :, None], 3, axis=2), "RGB").save(folder / "b_rgb.png")
    with pytest.warns(DataWarning, match="a_grey.png"):
        result = CliRunner().invoke(
            cli, ["eval", "--plugins", "bicubic", "--scale", "2", "--datasets", str(folder),
                  "--quiet", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    df = pd.read_csv(tmp_path / "run" / "results.csv").set_index("image")
    for col in ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb"):
        assert df.loc["a_grey.png", col] == df.loc["b_rgb.png", col]


# ------------------------------------------------------------------------------------------
# resolve_dataset


def test_unknown_dataset_name_lists_known_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UnknownNameError) as err:
        resolve_dataset("no-such-dataset")
    msg = str(err.value)
    assert "no-such-dataset" in msg
    assert "mini" in msg and "mini-train" in msg


def test_empty_folder_is_unavailable(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    with pytest.raises(DatasetUnavailable):
        resolve_dataset(str(tmp_path / "empty"))


def test_nested_folders_are_found(tmp_path):
    root = tmp_path / "nested"
    (root / "a" / "b").mkdir(parents=True)
    (root / "c").mkdir()
    Image.fromarray(_rgb(seed=1), "RGB").save(root / "top.png")
    Image.fromarray(_rgb(seed=2), "RGB").save(root / "a" / "b" / "deep.PNG")
    Image.fromarray(_rgb(seed=3), "RGB").save(root / "c" / "side.jpg")
    (root / "c" / "ignore.txt").write_text("x")
    ds = resolve_dataset(str(root))
    names = [r.name for r in ds]
    assert sorted(names) == ["a/b/deep.PNG", "c/side.jpg", "top.png"]
    assert len(ds) == 3
    assert all(r.load() is not None for r in ds)


def test_file_instead_of_folder_is_unavailable(tmp_path):
    Image.fromarray(_rgb(), "RGB").save(tmp_path / "one.png")
    with pytest.raises(DatasetUnavailable):
        resolve_dataset(str(tmp_path / "one.png"))


# ------------------------------------------------------------------------------------------
# Bundled sets


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_mini_and_mini_train_cards_exist():
    cards = registered_datasets()
    assert "mini" in cards and "mini-train" in cards
    assert cards["mini"].use == "evaluation"
    assert cards["mini-train"].use == "training"
    assert cards["mini"].licence and cards["mini-train"].licence


@pytest.mark.parametrize("name", ["mini", "mini-train"])
def test_bundled_set_size_and_image_sides(name):
    ds = resolve_dataset(name)
    assert len(ds) >= 8
    for rec in ds:
        with Image.open(rec.path) as im:
            assert min(im.size) >= 256, (rec.name, im.size)


@pytest.mark.parametrize("name", ["mini", "mini-train"])
def test_bundled_files_match_card_hashes(name):
    """The card lists every bundled file with its sha256 (and the files match): a card that
    lost its hash list, or an image added without an entry, fails."""
    card = registered_datasets()[name]
    listed = card.extra.get("files")
    assert listed, f"card {name!r} lists no per-file hashes"
    folder = card.local_dir()
    assert sorted(e["file"] for e in listed) == sorted(p.name for p in list_image_files(folder))
    assert card.images == len(listed)
    for entry in listed:
        assert _sha256(folder / entry["file"]) == entry["sha256"], entry["file"]


def test_mini_and_mini_train_are_disjoint_by_content():
    mini = {_sha256(r.path) for r in resolve_dataset("mini")}
    train = {_sha256(r.path) for r in resolve_dataset("mini-train")}
    assert len(mini) >= 8 and len(train) >= 8
    assert not mini & train
    # and by decoded pixels, so that a re-encoded copy would be caught too
    assert datasets_dir().is_dir()

    def pixels(folder: Path) -> set[str]:
        out = set()
        for p in list_image_files(folder):
            with Image.open(p) as im:
                out.add(hashlib.sha256(im.convert("RGB").tobytes()).hexdigest())
        return out

    cards = registered_datasets()
    assert not pixels(cards["mini"].local_dir()) & pixels(cards["mini-train"].local_dir())
