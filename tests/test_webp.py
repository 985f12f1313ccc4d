"""The WebP channel (``rescale --webp``, SAIN's WebP test) beside JPEG: codec, schema, reports."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from PIL import Image, features

import irnbench
from irnbench.channel import transmit
from irnbench.cli import cli
from irnbench.errors import InvalidSetting
from irnbench.leaderboard import TABLE_KEYS, compare, leaderboards
from irnbench.ops.webp import libwebp_version, webp_roundtrip
from irnbench.report import export_report
from irnbench.report.context import build_context
from irnbench.report.render import render_context
from irnbench.report.runs import load_runs
from irnbench.results import ID_COLUMNS, load_run

ROOT = Path(__file__).resolve().parents[1]


def _image(h: int = 40, w: int = 56, seed: int = 0) -> np.ndarray:
    """A smooth gradient with noise: WebP has to throw something away at every quality."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 4, yy * 5, (xx + yy) * 2], axis=2) + rng.integers(-30, 31, (h, w, 3))
    return img.clip(0, 255).astype(np.uint8)


def _pillow_webp(arr: np.ndarray, quality: int) -> tuple[np.ndarray, int]:
    """SAIN's WebP test, in Pillow alone: lossy at ``quality``, other options default."""
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="WEBP", quality=quality)
    n = buf.tell()
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB")).copy(), n


# -- the codec ---------------------------------------------------------------------------------
@pytest.mark.parametrize("quality", [1, 30, 75, 100])
def test_webp_channel_is_pillows_encode_decode_byte_for_byte(quality):
    arr = _image()
    want, nbytes = _pillow_webp(arr, quality)
    y = torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 255
    tr = transmit(y, quality, "webp")
    got = tr.y_u8[0].permute(1, 2, 0).numpy()
    assert got.dtype == np.uint8 and np.array_equal(got, want)
    assert tr.nbytes == [nbytes] and tr.info == {"quality": quality, "codec": "webp"}
    assert torch.equal(tr.sent_u8, torch.from_numpy(arr).permute(2, 0, 1)[None])
    # the task's channel is the same codec, and it differs from JPEG's at the same quality
    task = irnbench.create_task("rescale", scale=2, webp=[quality])
    assert task.conditions() == [{"codec": "webp", "quality": quality}]
    assert torch.equal(task.transmit(y, **task.conditions()[0]).y_u8, tr.y_u8)
    assert not torch.equal(transmit(y, quality, "jpeg").y_u8, tr.y_u8)
    if quality < 100:
        assert not np.array_equal(got, arr)  # lossy


def test_webp_roundtrip_batch_and_version():
    batch = torch.stack([torch.from_numpy(_image(seed=s)).permute(2, 0, 1) for s in (1, 2)])
    out, sizes = webp_roundtrip(batch, 50)
    for i in range(2):
        want, n = _pillow_webp(batch[i].permute(1, 2, 0).numpy(), 50)
        assert np.array_equal(out[i].permute(1, 2, 0).numpy(), want) and sizes[i] == n
    assert libwebp_version() == str(features.version("webp"))


def test_training_channel_is_the_codec_forward_with_identity_gradient():
    task = irnbench.create_task("rescale", scale=2, webp=[40])
    y = (torch.from_numpy(_image()).permute(2, 0, 1)[None].float() / 255).requires_grad_()
    out = task.channel(y, train=True, codec="webp", quality=40)
    assert torch.equal(out.detach(), task.transmit(y.detach(), codec="webp", quality=40).y)
    (out * torch.arange(out.numel()).reshape(out.shape)).sum().backward()
    assert torch.equal(y.grad, torch.arange(out.numel(), dtype=y.dtype).reshape(out.shape))


def test_settings_protocol_and_compress_stays_jpeg():
    t = irnbench.create_task("rescale", scale=2, jpeg="75", webp="75,30")
    assert t.setting == {"scale": 2, "jpeg": (75,), "webp": (30, 75)}
    assert t.conditions() == [{"codec": "jpeg", "quality": 75}, {"codec": "webp", "quality": 30},
                              {"codec": "webp", "quality": 75}]
    assert t.key == "rescale-x2"  # the weights do not depend on the channel
    text = t.protocol()
    assert (f"WebP-coded with Pillow (lossy, quality Q, other options default, libwebp "
            f"{features.version('webp')})") in text
    assert "JPEG-coded with Pillow" in text
    assert "WebP" not in irnbench.create_task("rescale", scale=2, jpeg=[75]).protocol()
    for bad in (0, 101, "x"):
        with pytest.raises(InvalidSetting, match="WebP qualities"):
            irnbench.create_task("rescale", scale=2, webp=[bad])
    with pytest.raises(InvalidSetting):
        irnbench.create_task("compress", webp=[75])


# -- runs: --webp 75, and --jpeg 75 --webp 75, on two tiny images -------------------------------
def _images(folder: Path) -> Path:
    folder.mkdir(parents=True)
    Image.fromarray(_image(48, 64, 0)).save(folder / "smooth.png")
    Image.fromarray(_image(48, 64, 1)).save(folder / "texture.png")
    return folder


def _run(images: Path, out: Path, *flags: str, plugins: str = "bicubic,irn"):
    args = ["run", "--task", "rescale", "--scale", "2", "--plugins", plugins, "--draws", "1",
            "--datasets", str(images), "--out", str(out), "--quiet", *flags]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out, result.output


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    root = tmp_path_factory.mktemp("webp")
    images = _images(root / "imgs")
    with pytest.MonkeyPatch.context() as mp:  # module scope: before conftest's isolation
        mp.setenv("IRNBENCH_HOME", str(root / "home"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        return {"webp": _run(images, root / "webp", "--webp", "75"),
                "both": _run(images, root / "both", "--jpeg", "75", "--webp", "75"),
                "jpeg": _run(images, root / "jpeg", "--jpeg", "30,75", plugins="bicubic")}


CHANNELS = {"webp": [("webp", 75)], "both": [("jpeg", 75), ("webp", 75)]}


def _channels(df: pd.DataFrame) -> list[tuple[str, int]]:
    """The (codec, quality) pairs of a frame's rows, sorted."""
    return sorted({(str(c), int(q)) for c, q in zip(df.codec, df.quality, strict=True)})
TITLES = {"webp": ["WebP q75"], "both": ["JPEG q75", "WebP q75"]}


@pytest.mark.parametrize("name", ["webp", "both"])
def test_results_carry_codec_and_quality(runs, name):
    out, printed = runs[name]
    df = pd.read_csv(out / "results.csv")
    assert list(df.columns[:len(ID_COLUMNS)]) == ID_COLUMNS
    m = df[df.source == "measured"]
    assert (m.status == "ok").all() and set(m.method) == {"bicubic", "irn"}
    assert _channels(m) == CHANNELS[name]
    assert len(m) == 2 * 2 * len(CHANNELS[name])  # methods × images × channels (one draw)
    for label in TITLES[name]:
        assert f"rescale x2 {label} · imgs" in printed
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {r["codec"] for r in rows if r["source"] == "measured"} == {c for c, _ in
                                                                        CHANNELS[name]}
    # WebP rows are coded by WebP: their bytes are those of Pillow's file of the LR
    webp = m[m.codec == "webp"]
    assert webp.bpp.notna().all() and (webp.bpp > 0).all()
    if name == "both":
        j = m[m.codec == "jpeg"].set_index(["method", "image"])
        w = webp.set_index(["method", "image"])
        assert not np.allclose(j.bpp.loc[w.index], w.bpp)


def test_webp_bpp_is_the_pillow_file_of_the_lr(runs):
    out, _ = runs["webp"]
    df = pd.read_csv(out / "results.csv")
    row = df[(df.method == "bicubic") & (df.image == "texture.png")].iloc[0]
    hr = torch.from_numpy(_image(48, 64, 1)).permute(2, 0, 1)[None].float() / 255
    lr = irnbench.create_task("rescale", scale=2).reference(hr)
    lr_u8 = (lr.clamp(0, 1) * 255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
    _, n = _pillow_webp(lr_u8, 75)
    assert row.bpp == pytest.approx(n * 8 / (48 * 64))


@pytest.mark.parametrize("name", ["webp", "both"])
def test_meta_records_libwebp_and_the_protocol(runs, name):
    out, _ = runs[name]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["versions"]["libwebp"] == str(features.version("webp"))
    assert meta["versions"]["libjpeg"]
    assert f"libwebp {features.version('webp')}" in meta["protocol"]["x2"]
    assert ("JPEG-coded" in meta["protocol"]["x2"]) == (name == "both")


@pytest.mark.parametrize("name", ["webp", "both"])
def test_html_has_a_table_per_codec_and_quality_and_a_matrix_per_codec(runs, name):
    out, _ = runs[name]
    ctx = build_context(load_runs([out]))
    boards = ctx["leaderboards"]
    assert [t["title"] for t in boards] == [f"rescale · x2 · {t} · imgs" for t in TITLES[name]]
    assert [(t["codec"], t["quality"]) for t in boards] == CHANNELS[name]
    for t in boards:
        assert {r["method"] for r in t["rows"] if r["kind"] == "measured"} == {"bicubic", "irn"}
        bpp = next(c for c in t["columns"] if c["key"] == "bpp")
        assert ("WebP file" in bpp["title"]) == (t["codec"] == "webp")
    # the robustness matrix, method × quality, one per codec
    mats = ctx["quality_tables"]
    assert [(t["codec"], t["qualities"]) for t in mats] == [(c, [q]) for c, q in CHANNELS[name]]
    label = {"jpeg": "JPEG", "webp": "WebP"}
    for t in mats:
        assert t["title"] == f"rescale · x2 · imgs: method × {label[t['codec']]} quality"
        assert {r["method"] for r in t["rows"]} == {"bicubic", "irn"}
    assert [t["title"] for t in ctx["per_image"]] == [f"rescale · x2 · {t} · imgs"
                                                      for t in TITLES[name]]
    # one visual group per codec and quality (the same quality of two codecs does not collide)
    assert [g["title"] for g in ctx["visuals"]] == [f"x2 · {t}" for t in TITLES[name]]
    html = (out / "report.html").read_text(encoding="utf-8")
    for t in TITLES[name]:
        assert f"<h3>rescale · x2 · {t} · imgs</h3>" in html
    assert ">WebP q75</th>" in html
    assert "Protocol (rescale x2, WebP quality 75)" in html
    index = json.loads((out / "visuals" / "index.json").read_text())
    assert sorted({(e["codec"], e["quality"]) for e in index}) == CHANNELS[name]


@pytest.mark.parametrize("name", ["webp", "both"])
def test_exports_have_a_table_per_codec_and_quality(runs, name):
    out, _ = runs[name]
    md = export_report([out], "md")
    assert re.findall(r"^### (.*)$", md, re.M) == [f"rescale x2 · {t} · imgs"
                                                   for t in TITLES[name]]
    assert "Protocol (rescale x2, WebP quality 75)" in md
    latex = export_report([out], "latex")
    assert re.findall(r"\\caption\[\{(.*?)\}\]", latex) == [
        f"rescale x2 $\\cdot$ {t} $\\cdot$ imgs" for t in TITLES[name]]
    assert "label{tab:irnbench-rescale-x2-webp-q75-imgs}" in latex
    csv = pd.read_csv(io.StringIO(export_report([out], "csv")))
    measured = csv[csv.source == "measured"]
    assert _channels(measured) == CHANNELS[name]
    assert (measured.groupby(["codec", "quality"])["rank"].apply(sorted)
            .map(lambda r: r == [1, 2])).all()
    # the leaderboard model and compare() key the tables by codec too
    df, _ = load_run(out)
    assert TABLE_KEYS == ["task", "setting", "codec", "quality", "dataset"]
    assert [b.key for b in leaderboards(df)] == [("rescale", "x2", c, q, "imgs")
                                                 for c, q in CHANNELS[name]]
    assert _channels(compare(df)) == CHANNELS[name]


# -- bad qualities: one line, exit 2 ------------------------------------------------------------
@pytest.mark.parametrize("flag", ["--webp", "--jpeg"])
@pytest.mark.parametrize("value", ["0", "101", "x", "75,x"])
def test_bad_quality_is_one_line_exit_2(tmp_path, flag, value):
    out = tmp_path / "r"
    res = CliRunner().invoke(cli, ["eval", "--task", "rescale", "--plugins", "bicubic",
                                   "--scale", "2", flag, value, "--datasets", "mini", "--quiet",
                                   "--out", str(out)])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and flag in lines[0], res.output
    assert "Traceback" not in res.output and not out.exists()


def test_compress_takes_no_webp(tmp_path):
    res = CliRunner().invoke(cli, ["eval", "--task", "compress", "--plugins", "bicubic",
                                   "--webp", "75", "--datasets", "mini", "--quiet",
                                   "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "takes no --webp" in res.output


# -- results written before the codec column ----------------------------------------------------
def _strip_codec(src: Path, dst: Path) -> Path:
    """A copy of a run folder as irnbench wrote it before WebP: no ``codec`` anywhere."""
    shutil.copytree(src, dst)
    payload = json.loads((dst / "results.json").read_text())
    for r in payload["rows"]:
        r.pop("codec")
    (dst / "results.json").write_text(json.dumps(payload))
    pd.read_csv(src / "results.csv").drop(columns="codec").to_csv(dst / "results.csv",
                                                                  index=False)
    index = json.loads((dst / "visuals" / "index.json").read_text())
    for e in index:
        e.pop("codec")
    (dst / "visuals" / "index.json").write_text(json.dumps(index))
    return dst


def test_old_results_without_codec_load_as_jpeg_and_render_the_same(runs, tmp_path):
    new, _ = runs["jpeg"]
    old = _strip_codec(new, tmp_path / "old" / new.name)
    assert "codec" not in json.loads((old / "results.json").read_text())["rows"][0]
    df, _ = load_run(old)
    measured = df[df.source == "measured"]
    assert set(measured.codec) == {"jpeg"}
    assert df[df.quality.isna()].codec.isna().all()
    html_old = render_context(build_context(load_runs([old]), generated="now"))
    html_new = render_context(build_context(load_runs([new]), generated="now"))
    assert html_old == html_new and "JPEG q30" in html_old and "WebP" not in html_old
    for fmt in ("md", "latex", "csv"):
        assert export_report([old], fmt) == export_report([new], fmt)


@pytest.mark.parametrize("folder", sorted(p.name for p in (ROOT / "reports").iterdir()
                                          if (p / "results.json").is_file()))
def test_published_reports_without_codec_still_render(folder):
    run = ROOT / "reports" / folder
    rows = json.loads((run / "results.json").read_text())["rows"]
    assert all("codec" not in r for r in rows)  # written before the column existed
    ctx = build_context(load_runs([run]), generated="now")
    html = render_context(ctx)
    assert "WebP" not in html
    df, _ = load_run(run)
    assert set(df[df.quality.notna()].codec) <= {"jpeg"}
    titles = [t["title"] for key in ("leaderboards", "pivots", "published") for t in ctx[key]]
    assert any("JPEG q" in t for t in titles) == df.quality.notna().any()
