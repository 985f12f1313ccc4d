"""HTML report: built from real (tiny) runs of the pipeline; no browser needed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from markupsafe import escape
from PIL import Image

from irnbench.hookspecs import hookimpl
from irnbench.methods import Method
from irnbench.ops.imresize import imresize
from irnbench.plugins import load_plugins, pm
from irnbench.protocol import PROTOCOL_TEXT
from irnbench.report import (
    best_flags,
    build_context,
    format_params,
    leaderboard_tables,
    load_runs,
    render_report,
)
from irnbench.results import frame
from irnbench.runner import run_benchmark

EVIL_NAME = "<script>alert(1)</script>.png"
PAPER_REF = "IRN (Xiao et al., ECCV 2020) Table 1"


# -- two test-only methods, registered through the plugin manager like any plugin ------------
class NoisyBicubic(Method):
    """Bicubic plus a little seeded noise: a stochastic method (std over draws)."""

    name = "noisy-bicubic-test"
    tasks = ("rescale",)
    stochastic = True
    description = "test-only stochastic method"

    def degrade(self, x):
        return imresize(x, 1.0 / self.task.setting["scale"])

    def restore(self, y, temperature=1.0, generator=None, **channel_info):
        up = imresize(y, float(self.task.setting["scale"]))
        noise = torch.randn(up.shape, generator=generator, device=up.device)
        return up + 0.02 * temperature * noise


class Broken(Method):
    """Fails on every image, with markup in its error text."""

    name = "broken-test"
    tasks = ("rescale",)
    description = "test-only failing method"

    def degrade(self, x):
        return imresize(x, 0.5)

    def restore(self, y, **channel_info):
        raise ValueError("<b>boom</b> & <i>more</i>")


class _TestPlugin:
    @hookimpl
    def irnbench_register_methods(self, register):
        register(NoisyBicubic)
        register(Broken)


@pytest.fixture(scope="module", autouse=True)
def test_methods():
    load_plugins()
    plugin = _TestPlugin()
    pm.register(plugin, name="irnbench-report-tests")
    yield
    pm.unregister(plugin)


# -- synthetic data and runs -----------------------------------------------------------------
def _write_images(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    # a smooth-ish image so that PSNRs are not all alike
    yy, xx = np.mgrid[0:64, 0:80]
    smooth = np.stack([(xx * 3) % 256, (yy * 4) % 256, (xx + yy) % 256], -1).astype(np.uint8)
    Image.fromarray(smooth).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(folder / "b.png")
    # odd size → modcrop; "/" cannot be in a file name, so the name spans a sub-folder
    evil = folder / EVIL_NAME
    evil.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (67, 81, 3), dtype=np.uint8)).save(evil)
    return folder


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return _write_images(tmp_path_factory.mktemp("data") / "imgs")


@pytest.fixture(scope="module")
def run_dir(images, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run"
    run_benchmark(task="rescale", methods=["bicubic"], settings=[{"scale": 2}, {"scale": 4}],
                  datasets=[str(images)], out=out, device="cpu", progress=False,
                  command="irnbench run --plugins bicubic --note '<i>cmd</i>'")
    return out


@pytest.fixture(scope="module")
def html(run_dir) -> str:
    return (run_dir / "report.html").read_text(encoding="utf-8")


def _section(html: str, sid: str) -> str:
    start = html.index(f'<section id="{sid}">')
    return html[start: html.index("</section>", start)]


# -- the report of one run -------------------------------------------------------------------
def test_runner_writes_report(run_dir):
    assert (run_dir / "report.html").is_file()
    # re-rendering gives the same page structure
    again = render_report([run_dir], run_dir / "again.html")
    assert again.is_file() and again.stat().st_size > 10_000


def test_self_contained(html):
    attrs = re.findall(r"""\b(?:src|href|action|data)\s*=\s*["']?([^"'\s>]*)""", html,
                       flags=re.I)
    assert attrs, "expected some src/href attributes"
    for a in attrs:
        assert not re.match(r"(?i)(https?:)?//", a), a
    assert not re.search(r"(?i)<script[^>]*\bsrc=", html)
    assert not re.search(r"(?i)<link\b", html)
    assert not re.search(r"(?i)@import|url\(\s*['\"]?(https?:)?//", html)
    assert "data:image/png;base64," in html
    assert html.count("<style>") == 1 and "<script>" in html


def test_header_and_environment(html, run_dir):
    meta = load_runs([run_dir])[0].meta
    assert "0.1.0" in html and "Git commit" in html
    assert str(escape(meta["date"])) in html
    # the command is shown, escaped
    assert "&lt;i&gt;cmd&lt;/i&gt;" in html and "<i>cmd</i>" not in html
    env = _section(html, "environment")
    assert str(escape(meta["device"])) in env
    assert str(escape(meta["platform"])) in env
    assert "torch threads" in env and meta["versions"]["torch"] in env


def test_leaderboard_and_protocol(html):
    lb = _section(html, "leaderboards")
    assert 'class="leaderboard sortable"' in lb
    assert 'badge-measured">measured<' in lb
    assert "bicubic" in lb
    protocol = str(escape(PROTOCOL_TEXT["rescale"]))
    assert lb.count(protocol) == lb.count('<table class="leaderboard') == 2
    # the protocol is stated above every leaderboard table
    for m in re.finditer(r'<table class="leaderboard', lb):
        before = lb[: m.start()]
        assert before.rfind('<div class="protocol">') > before.rfind("</table>")
    for label in ("PSNR-Y", "SSIM-Y", "PSNR-RGB", "SSIM-RGB", "LR PSNR-Y", "Params", "s/image"):
        assert f">{label}</th>" in lb
    # no JPEG in this run: no bpp column, and the paper's unconfirmed-channel columns are absent
    assert ">bpp</th>" not in lb and "PSNR†" not in lb


def test_malicious_names_escaped(html):
    assert "<script>alert(1)</script>" not in html
    assert str(escape(EVIL_NAME)) in html
    assert html.count("<script>") == 1  # only the report's own script


def test_published_section_for_unmeasured_datasets(html, run_dir):
    ctx = build_context(load_runs([run_dir]))
    assert ctx["leaderboards"] and ctx["published"]
    for t in ctx["leaderboards"]:
        assert {r["kind"] for r in t["rows"]} == {"measured"}
    pub_rows = [r for t in ctx["published"] for r in t["rows"]]
    assert pub_rows and {r["kind"] for r in pub_rows} == {"paper"}
    # a compact methods × datasets matrix: one row per paper row label and setting (x2, x4),
    # one column per unmeasured dataset
    assert len([r for r in pub_rows if r["values"].get("psnr_y") is not None]) == 2
    assert all(len(t["datasets"]) == 5 for t in ctx["published"] if t["quality"] is None)
    pub = _section(html, "published")
    assert "Published results (not measured in this run)" in pub
    assert "33.66" in pub and PAPER_REF in pub and "set5" in pub
    lb = _section(html, "leaderboards")
    assert 'class="row-paper"' not in lb and PAPER_REF not in lb


def test_per_image_visuals_and_notes(html):
    per = _section(html, "per-image")
    assert "<details>" in per and "a.png" in per and "b.png" in per
    assert str(escape(EVIL_NAME)) in per and "modcropped 81x67" in per
    vis = _section(html, "visuals")
    assert vis.count("<figure>") >= 4 and "GT (HR)" in vis and 'width="192"' in vis
    assert "image-rendering: pixelated" in html
    notes = _section(html, "notes")
    assert "<details>" in notes and "Modcrop:" in notes and "1 image was cropped" in notes


def test_paper_rows_beside_same_dataset(tmp_path):
    # a folder called Set5 is matched (case-insensitively) with the paper's "set5" rows
    folder = _write_images(tmp_path / "Set5")
    out = run_benchmark(task="rescale", methods=["bicubic"], settings=[{"scale": 2}],
                        datasets=[str(folder)], out=tmp_path / "run", device="cpu",
                        progress=False)
    ctx = build_context(load_runs([out.run_dir]))
    (table,) = ctx["leaderboards"]
    assert table["dataset"] == "Set5" and table["setting"] == "x2"
    kinds = [r["kind"] for r in table["rows"]]
    assert kinds == ["measured", "paper"]  # paper rows come after the measured ones
    assert table["rows"][1]["values"]["psnr_y"] == pytest.approx(33.66)
    pub_datasets = {d for t in ctx["published"] if t["setting"] == "x2" for d in t["datasets"]}
    assert "set5" not in pub_datasets and "set14" in pub_datasets
    # the methods × datasets pivot: measured, the method's own paper value, the difference
    psnr = next(t for t in ctx["pivots"] if t["metric"] == "psnr_y")
    assert psnr["datasets"] == ["Set5"] and psnr["sub"] == ["measured", "paper", "Δ"]
    (row,) = psnr["rows"]
    measured = table["rows"][0]["values"]["psnr_y"]
    assert row[0]["text"] == "bicubic" and row[2]["text"] == "33.66"
    assert row[3]["text"] == f"{measured - 33.66:+.2f}"
    html = out.report.read_text()
    lb = _section(html, "leaderboards")
    assert "33.66" in lb and PAPER_REF in lb and "badge-paper" in lb


def test_merge_two_runs(images, tmp_path, run_dir):
    other = run_benchmark(task="rescale", methods=["noisy-bicubic-test"],
                          settings=[{"scale": 2}], datasets=[str(images)],
                          out=tmp_path / "noisy", device="cpu", progress=False, draws=3,
                          report=False)
    out = render_report([run_dir, other.run_dir], tmp_path / "merged.html")
    html = out.read_text()
    ctx = build_context(load_runs([run_dir, other.run_dir]))
    x2 = [t for t in ctx["leaderboards"] if t["setting"] == "x2"]
    assert len(x2) == 1
    assert sorted(r["method"] for r in x2[0]["rows"]) == ["bicubic", "noisy-bicubic-test"]
    noisy = next(r for r in x2[0]["rows"] if r["method"] == "noisy-bicubic-test")
    draws_col = [c["key"] for c in x2[0]["columns"]].index("draws")
    assert noisy["cells"][draws_col]["text"] == "3"
    assert any(c.get("std") for c in noisy["cells"])  # ± std over draws
    assert "± " in html and "noisy-bicubic-test" in html
    # the run's metadata names the draws it used, and the protocol text says it departs
    meta = json.loads((other.run_dir / "meta.json").read_text())
    assert meta["draws"] == 3 and meta["seeds"]["z_draws"] == [0, 1, 2]
    assert "This run used 3 z draws, not the protocol's 5." in meta["protocol"]["x2"]
    # paper rows are not duplicated by the merge
    single = build_context(load_runs([run_dir]))
    n_paper = sum(len(t["rows"]) for t in single["published"])
    assert sum(len(t["rows"]) for t in ctx["published"]) == n_paper
    # both runs in the header
    assert html.count("<td>run</td>") == 1 and "<td>noisy</td>" in html
    # merging a run with itself keeps one copy of each measured row
    same = build_context(load_runs([run_dir, run_dir]))
    assert [len(t["rows"]) for t in same["leaderboards"]] == [
        len(t["rows"]) for t in single["leaderboards"]]
    assert any("more than one run folder" in n for n in same["notes"])


def test_failed_method_row(images, tmp_path):
    out = run_benchmark(task="rescale", methods=["bicubic", "broken-test"],
                        settings=[{"scale": 2}], datasets=[str(images)], out=tmp_path / "run",
                        device="cpu", progress=False)
    html = out.report.read_text()
    lb = _section(html, "leaderboards")
    assert 'class="row-failed" data-method="broken-test"' in lb
    assert "&lt;b&gt;boom&lt;/b&gt; &amp; &lt;i&gt;more&lt;/i&gt;" in lb
    assert "<b>boom</b>" not in html and "<i>more</i>" not in html
    ctx = build_context(load_runs([out.run_dir]))
    rows = ctx["leaderboards"][0]["rows"]
    assert [r["kind"] for r in rows] == ["measured", "failed"]
    assert rows[1]["error"] == "ValueError: <b>boom</b> & <i>more</i>"


def test_best_flags():
    assert best_flags([1.0, 3.0, 2.0]) == [False, True, False]
    assert best_flags([1.0, 3.0, 2.0], "lower") == [True, False, False]
    assert best_flags([3.0, None, 3.0, float("nan")]) == [True, False, True, False]
    assert best_flags([2.0, float("inf")]) == [False, True]
    assert best_flags([5.0]) == [False]  # a lone row is not "best"
    assert best_flags([1.0, 2.0], None) == [False, False]


def _measured(method, psnr_y, ssim_y, image="x.png", **kw):
    return {"source": "measured", "method": method, "label": method, "weights": "none needed",
            "task": "rescale", "setting": "x4", "quality": None, "dataset": "toy",
            "image": image, "draw": 0, "psnr_y": psnr_y, "ssim_y": ssim_y, "seconds": 0.1,
            "params": 1_670_000, "status": "ok", **kw}


def test_leaderboard_bold_picks_max():
    df = frame([
        _measured("low", 20.0, 0.90),
        _measured("high", 30.0, 0.80),
        _measured("mid", 25.0, 0.70),
        {"source": "paper-reported", "method": "high", "label": "High (paper)",
         "weights": "as published", "task": "rescale", "setting": "x4", "dataset": "toy",
         "psnr_y": 99.0, "ssim_y": 0.99, "reference": "Some paper Table 2"},
    ])
    (t,) = leaderboard_tables(df)
    keys = [c["key"] for c in t["columns"]]
    assert "psnr_rgb" not in keys and "bpp" not in keys  # columns without values are hidden
    ip, iss = keys.index("psnr_y"), keys.index("ssim_y")
    by = {(r["method"], r["kind"]): r for r in t["rows"]}
    assert [r["method"] for r in t["rows"]] == ["high", "mid", "low", "high"]  # by PSNR-Y
    assert by["high", "measured"]["cells"][ip]["bold"]
    assert not by["low", "measured"]["cells"][ip]["bold"]
    assert by["low", "measured"]["cells"][iss]["bold"]  # best SSIM-Y is another method
    assert not by["high", "paper"]["cells"][ip].get("bold")  # paper numbers never compete
    assert by["high", "measured"]["cells"][keys.index("params")]["text"] == "1.67M"


def test_format_params():
    assert format_params(1_670_000) == "1.67M"
    assert format_params(4_370_000) == "4.37M"
    assert format_params(12_345) == "12.3K"
    assert format_params(0) == "0"
    assert format_params(None) == "" and format_params(float("nan")) == ""


def test_render_from_dataframe_only(tmp_path):
    """A run folder whose measured rows all failed still renders (no metric columns at all)."""
    from irnbench.results import save_run

    df = frame([{"source": "measured", "method": "m<x>", "label": "m<x>", "task": "rescale",
                 "setting": "x2", "dataset": "d", "status": "failed", "error": "E"}])
    save_run(tmp_path / "r", df, {"task": "rescale", "protocol": {"x2": "P-TEXT"},
                                  "notes": ["n <1>"]})
    html = render_report(tmp_path / "r", tmp_path / "r" / "report.html").read_text()
    assert "m&lt;x&gt;" in html and "P-TEXT" in html and "n &lt;1&gt;" in html
    assert isinstance(pd.read_csv(tmp_path / "r" / "results.csv"), pd.DataFrame)
