"""Standard datasets (issue 5): fetch → verify → extract → load, offline, through the real code.

Fixture archives (3 tiny PNGs) are served by a ``file://`` URL card and by a hub card whose file
sits in a pre-populated huggingface_hub cache (``HF_HUB_CACHE``), read by ``hf_hub_download``
in offline mode. ``HF_HUB_OFFLINE=1`` throughout (conftest), IRNBENCH_HOME is a temp dir.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import make_plugin
from PIL import Image

from irnbench.cli import cli
from irnbench.data import hub
from irnbench.data.cards import DatasetCard
from irnbench.data.decode import load_image
from irnbench.data.loading import resolve_dataset
from irnbench.errors import DatasetUnavailable

# What the environment said before conftest isolated it (for the `network` anchor test).
_REAL_HOME = os.environ.get("IRNBENCH_HOME")
_REAL_OFFLINE = os.environ.get("HF_HUB_OFFLINE")

STANDARD = ["set5", "set14", "b100", "urban100", "div2k-train", "div2k-val", "kodak"]
REPO = "irnbench-test/Tiny"
REV = "0123456789abcdef0123456789abcdef01234567"
HUB_FILE = "data/Tiny_HR.tar.gz"


# ------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture
def pngs(tmp_path) -> dict[str, np.ndarray]:
    """Three tiny RGB PNGs in ``src/Tiny_HR``; name → pixels."""
    folder = tmp_path / "src" / "Tiny_HR"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(5)
    out = {}
    for i, (h, w) in enumerate([(20, 24), (16, 16), (24, 12)]):
        arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        name = f"img{i}.png"
        Image.fromarray(arr, "RGB").save(folder / name)
        out[name] = arr
    return out


def _tarball(src: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(dest, "w:gz") as tf:
        tf.add(src, arcname=src.name)
    return dest


@pytest.fixture
def archive(tmp_path, pngs) -> Path:
    return _tarball(tmp_path / "src" / "Tiny_HR", tmp_path / "served" / "Tiny_HR.tar.gz")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _url_card(url: str, sha256: str | None = None, name: str = "tinyurl") -> DatasetCard:
    return DatasetCard(name=name, description="test", use="evaluation", source="url", images=3,
                       licence="test", extra={"url": url, "sha256": sha256})


def _hub_card(sha256: str | None = None, name: str = "tinyhub") -> DatasetCard:
    hub_info = {"repo": REPO, "repo_type": "dataset", "filename": HUB_FILE, "revision": "main"}
    return DatasetCard(name=name, description="test", use="evaluation", source="hub", images=3,
                       licence="test", extra={"hub": hub_info, "sha256": sha256})


def _register(register_plugin, *cards: DatasetCard, tag: str = "hubtest"):
    def hook(register):
        for c in cards:
            register(c)

    register_plugin(make_plugin(irnbench_register_datasets=hook), tag)


def _populate_hf_cache(root: Path, archive: Path, blob_name: str | None = None) -> Path:
    """The layout hf_hub_download reads offline: refs/main → snapshots/<rev>/<file> → blob."""
    repo_dir = root / ("datasets--" + REPO.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(REV)
    blob = repo_dir / "blobs" / (blob_name or _sha(archive))
    blob.parent.mkdir(parents=True)
    blob.write_bytes(archive.read_bytes())
    snap = repo_dir / "snapshots" / REV / HUB_FILE
    snap.parent.mkdir(parents=True)
    snap.symlink_to(os.path.relpath(blob, snap.parent))
    return snap


@pytest.fixture
def hf_cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "hf-hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    return root


def _pixels(path: Path) -> np.ndarray:
    t = load_image(path)
    assert t is not None
    return (t * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def _leftovers() -> list[str]:
    root = hub.cache_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.name.startswith((".tmp-", ".download-")))


# ------------------------------------------------------------------------------------------
# fetch → verify → extract → load


def test_url_fetch_extracts_verifies_and_loads(register_plugin, archive, pngs):
    card = _url_card(archive.as_uri(), _sha(archive))
    _register(register_plugin, card)
    ds = resolve_dataset("tinyurl")  # fetch on demand
    assert len(ds) == 3
    assert sorted(r.name for r in ds) == sorted(pngs)  # the archive's top folder is dropped
    for rec in ds:
        assert np.array_equal(_pixels(rec.path), pngs[rec.name])
        assert torch.equal(rec.load(), load_image(rec.path))  # one decoding path
    rec = hub.fetch_record("tinyurl")
    assert rec["sha256"] == _sha(archive) and rec["verified"] == "pinned"
    assert rec["images"] == 3 and rec["source"]["kind"] == "url"
    assert _leftovers() == []


def test_hub_fetch_from_prepopulated_cache(register_plugin, hf_cache, archive, pngs):
    _populate_hf_cache(hf_cache, archive)
    _register(register_plugin, _hub_card(sha256=None))
    folder = hub.fetch(_hub_card(sha256=None), progress=False)
    assert sorted(p.name for p in folder.iterdir()) == sorted(pngs)
    rec = hub.fetch_record("tinyhub")
    # unpinned card: the hub's LFS digest (the blob's name) was verified and recorded
    assert rec["verified"] == "hub-lfs" and rec["sha256"] == _sha(archive)
    assert rec["source"] == {"kind": "hub", "repo": REPO, "repo_type": "dataset",
                             "filename": HUB_FILE, "revision": "main"}
    ds = resolve_dataset("tinyhub")
    for r in ds:
        assert np.array_equal(_pixels(r.path), pngs[r.name])


def test_hub_fetch_pinned_digest(register_plugin, hf_cache, archive):
    _populate_hf_cache(hf_cache, archive)
    card = _hub_card(sha256=_sha(archive))
    _register(register_plugin, card)
    hub.fetch(card, progress=False)
    assert hub.fetch_record("tinyhub")["verified"] == "pinned"
    assert hub.is_cached(card)


def test_hub_file_not_matching_published_digest_is_refused(register_plugin, hf_cache, archive):
    _populate_hf_cache(hf_cache, archive, blob_name="0" * 64)  # hub says another digest
    card = _hub_card(sha256=None)
    with pytest.raises(DatasetUnavailable, match="checksum mismatch"):
        hub.fetch(card, progress=False)
    assert not hub.cached_dir("tinyhub").exists()
    assert _leftovers() == []


def test_checksum_mismatch_leaves_cache_untouched(register_plugin, tmp_path, archive):
    good = _url_card(archive.as_uri(), _sha(archive))
    hub.fetch(good, progress=False)
    before = hub.fetch_record("tinyurl")
    files_before = sorted(p.name for p in (hub.cached_dir("tinyurl") / "images").iterdir())
    bad = _url_card(archive.as_uri(), "f" * 64)  # card pins a digest the file does not have
    with pytest.raises(DatasetUnavailable, match="checksum mismatch") as err:
        hub.fetch(bad, force=True, progress=False)
    assert "\n" not in str(err.value)
    assert hub.fetch_record("tinyurl") == before
    assert sorted(p.name for p in (hub.cached_dir("tinyurl") / "images").iterdir()) == files_before
    assert _leftovers() == []


def test_truncated_archive_leaves_nothing_behind(tmp_path, archive):
    cut = tmp_path / "cut" / "Tiny_HR.tar.gz"
    cut.parent.mkdir()
    data = archive.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    card = _url_card(cut.as_uri(), None)  # first-use: the digest cannot catch it, extraction does
    with pytest.raises(DatasetUnavailable, match="damaged or cut short"):
        hub.fetch(card, progress=False)
    assert not hub.cached_dir("tinyurl").exists()
    assert _leftovers() == []


def test_wrong_image_count_is_refused(tmp_path, archive):
    card = _url_card(archive.as_uri(), None)
    card.images = 4
    with pytest.raises(DatasetUnavailable, match="holds 3 images"):
        hub.fetch(card, progress=False)
    assert not hub.cached_dir("tinyurl").exists()
    assert _leftovers() == []


def test_second_fetch_is_a_noop(tmp_path, archive):
    card = _url_card(archive.as_uri(), None)
    first = hub.fetch(card, progress=False)
    stamp = hub.fetch_record("tinyurl")["fetched"]
    archive.unlink()  # a second download would fail now
    assert hub.fetch(card, progress=False) == first
    assert hub.fetch_record("tinyurl")["fetched"] == stamp


def test_second_hub_fetch_is_a_noop(hf_cache, archive):
    _populate_hf_cache(hf_cache, archive)
    card = _hub_card(sha256=_sha(archive))
    first = hub.fetch(card, progress=False)
    import shutil

    shutil.rmtree(hf_cache)
    assert hub.fetch(card, progress=False) == first


def test_zip_archive(tmp_path, pngs):
    import zipfile

    z = tmp_path / "served" / "Tiny_HR.zip"
    z.parent.mkdir(exist_ok=True)
    with zipfile.ZipFile(z, "w") as zf:
        for name in pngs:
            zf.write(tmp_path / "src" / "Tiny_HR" / name, f"Tiny_HR/{name}")
    card = _url_card(z.as_uri(), _sha(z), name="tinyzip")
    folder = hub.fetch(card, progress=False)
    assert sorted(p.name for p in folder.iterdir()) == sorted(pngs)


# ------------------------------------------------------------------------------------------
# local copies: pre-downloaded archives


def test_datasets_path_to_archive_and_folder_of_archives(register_plugin, tmp_path, archive, pngs):
    _register(register_plugin, _url_card("https://example.invalid/x/Tiny_HR.tar.gz", None))
    ds = resolve_dataset(str(archive))  # the archive itself
    assert ds.name == "tinyurl" and len(ds) == 3
    assert hub.fetch_record("tinyurl")["source"]["kind"] == "local"
    import shutil

    shutil.rmtree(hub.cached_dir("tinyurl"))
    ds = resolve_dataset(str(archive.parent))  # a folder holding it
    assert ds.name == "tinyurl" and sorted(r.name for r in ds) == sorted(pngs)


def test_fetch_from_dir_and_archives_env(register_plugin, tmp_path, archive, monkeypatch):
    card = _url_card("https://example.invalid/x/Tiny_HR.tar.gz", _sha(archive))
    _register(register_plugin, card)
    res = CliRunner().invoke(cli, ["datasets", "fetch", "tinyurl", "--from", str(archive.parent)])
    assert res.exit_code == 0, res.output
    assert "3 images" in res.output
    import shutil

    shutil.rmtree(hub.cached_dir("tinyurl"))
    monkeypatch.setenv("IRNBENCH_ARCHIVES", str(archive.parent))
    assert len(resolve_dataset("tinyurl")) == 3  # run --datasets tinyurl finds it there


# ------------------------------------------------------------------------------------------
# offline: fail fast with the message


def _assert_offline_message(msg: str, name: str) -> None:
    assert f"irnbench datasets fetch {name}" in msg
    assert "connected machine" in msg
    assert "IRNBENCH_HOME" in msg and "--datasets PATH" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("name", ["set5", "kodak", "div2k-train"])
def test_offline_nothing_cached_fails_fast(name):
    t0 = time.monotonic()
    with pytest.raises(DatasetUnavailable) as err:
        resolve_dataset(name)
    assert time.monotonic() - t0 < 5
    _assert_offline_message(str(err.value), name)
    assert not hub.cached_dir(name).exists() and _leftovers() == []


@pytest.fixture
def silent_server():
    """A TCP server that accepts connections and never answers (a hub that hangs)."""
    import socket
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    conns = []

    def accept():
        while True:
            try:
                conns.append(srv.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    srv.close()
    for c in conns:
        c.close()


@pytest.mark.parametrize("endpoint", ["silent", "http://127.0.0.1:1"])
def test_unreachable_hub_fails_fast_without_offline_flag(monkeypatch, silent_server, endpoint):
    """HF_HUB_OFFLINE unset; the hub hangs or refuses: a bounded request decides, no hang."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", silent_server if endpoint == "silent" else endpoint)
    t0 = time.monotonic()
    with pytest.raises(DatasetUnavailable) as err:
        resolve_dataset("set5")
    assert time.monotonic() - t0 < 5
    _assert_offline_message(str(err.value), "set5")
    assert _leftovers() == []


def test_unreachable_hub_still_serves_the_hf_cache(monkeypatch, silent_server, hf_cache, archive):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", silent_server)
    _populate_hf_cache(hf_cache, archive)
    t0 = time.monotonic()
    folder = hub.fetch(_hub_card(sha256=_sha(archive)), progress=False)
    assert time.monotonic() - t0 < 5
    assert len(list(folder.iterdir())) == 3


def test_hanging_url_fails_fast(monkeypatch, silent_server):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    card = _url_card(silent_server + "/Tiny_HR.tar.gz", None)
    t0 = time.monotonic()
    with pytest.raises(DatasetUnavailable) as err:
        hub.fetch(card, progress=False)
    assert time.monotonic() - t0 < 5
    _assert_offline_message(str(err.value), "tinyurl")
    assert not hub.cached_dir("tinyurl").exists() and _leftovers() == []


def test_cli_run_set5_offline_fails_fast(tmp_path):
    t0 = time.monotonic()
    res = CliRunner().invoke(cli, ["run", "--datasets", "set5", "--plugins", "bicubic",
                                   "--quiet", "--out", str(tmp_path / "out")])
    assert time.monotonic() - t0 < 5
    assert res.exit_code != 0
    assert "Traceback" not in res.output
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:")
    _assert_offline_message(lines[0], "set5")


def test_cli_fetch_offline_fails_fast():
    t0 = time.monotonic()
    res = CliRunner().invoke(cli, ["datasets", "fetch", "set14"])
    assert time.monotonic() - t0 < 5
    assert res.exit_code == 1
    _assert_offline_message(res.output.strip(), "set14")


# ------------------------------------------------------------------------------------------
# cards and `datasets list`


def test_standard_cards():
    from irnbench.plugins import registered_datasets

    cards = registered_datasets()
    expected = {"set5": 5, "set14": 14, "b100": 100, "urban100": 100, "div2k-train": 800,
                "div2k-val": 100, "kodak": 24}
    for name, n in expected.items():
        card = cards[name]
        assert card.images == n
        assert card.licence and card.citation
        assert hub.source_kind(card) == "hub"
        info = card.extra["hub"]
        assert info["repo"] and info["filename"] and info["revision"]
        sha = card.extra["sha256"]
        assert sha is None or len(sha) == 64
        if sha is None:
            assert card.extra.get("verified") == "first-use" and card.extra.get("note")
    assert cards["div2k-train"].use == "training"
    assert hub.is_pinned(cards["set5"])


def test_cli_datasets_list_shows_every_card(register_plugin, archive):
    hub.fetch(_url_card(archive.as_uri(), None), progress=False)
    _register(register_plugin, _url_card(archive.as_uri(), None))
    res = CliRunner().invoke(cli, ["datasets", "list"])
    assert res.exit_code == 0, res.output
    rows = {line.split()[0]: line for line in res.output.splitlines() if line.strip()}
    for name in STANDARD + ["mini", "mini-train", "tinyurl"]:
        assert name in rows, name
    assert "pinned" in rows["set5"] and "first-use" in rows["set14"]
    assert " no " in rows["set5"]
    assert " yes " in rows["tinyurl"]
    assert "available" in rows["mini"]
    assert "852 kB" in rows["set5"]


# ------------------------------------------------------------------------------------------
# datasets.load_dataset("imagefolder")


def test_load_hf_imagefolder(register_plugin, archive, pngs):
    _register(register_plugin, _url_card(archive.as_uri(), _sha(archive)))
    ds = hub.load_hf("tinyurl")
    assert len(ds) == 3
    got = sorted(np.asarray(ex["image"].convert("RGB")).tobytes() for ex in ds)
    assert got == sorted(a.tobytes() for a in pngs.values())


def test_fetch_json_is_valid(archive):
    hub.fetch(_url_card(archive.as_uri(), None), progress=False)
    rec = json.loads((hub.cached_dir("tinyurl") / "fetch.json").read_text())
    assert {"source", "sha256", "verified", "images", "fetched"} <= rec.keys()
    assert rec["verified"] == "first-use"


# ------------------------------------------------------------------------------------------
# the protocol's end-to-end anchor (needs Set5: cached, pre-downloaded or fetchable)


@pytest.mark.network
@pytest.mark.parametrize("scale,psnr,ssim", [(2, 33.66, 0.9299), (4, 28.42, 0.8104)])
def test_bicubic_set5_anchor(monkeypatch, scale, psnr, ssim):
    if _REAL_HOME:
        monkeypatch.setenv("IRNBENCH_HOME", _REAL_HOME)
    else:
        monkeypatch.delenv("IRNBENCH_HOME", raising=False)
    if not _REAL_OFFLINE:
        from huggingface_hub import constants

        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # read at its import time
    try:
        ds = resolve_dataset("set5")
    except DatasetUnavailable as exc:
        pytest.skip(f"Set5 not available: {exc}")
    from irnbench.evaluate import evaluate
    from irnbench.registry import create_method, create_task

    task = create_task("rescale", scale=scale)
    res = evaluate([create_method("bicubic", task)], task, [ds], device="cpu", progress=False)
    df = res.df[res.df["status"] == "ok"] if "status" in res.df else res.df
    assert len(df) == 5
    assert abs(df["psnr_y"].mean() - psnr) <= 0.01, df["psnr_y"].mean()
    assert abs(df["ssim_y"].mean() - ssim) <= 0.0005, df["ssim_y"].mean()
