"""The compress task (issue #7): real JPEG bpp, BD-rate, determinism, irn-crm, the RD report,
and the JPEG-robustness matrix of ``rescale --jpeg``."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import irnbench
from irnbench import create_method, create_task
from irnbench.data.loading import resolve_dataset
from irnbench.errors import InvalidSetting, WeightsNotFound
from irnbench.evaluate import evaluate
from irnbench.ops.jpeg import jpeg_encode
from irnbench.ops.quantize import to_uint8
from irnbench.papers import SAIN_QUALITIES, SAIN_README_ROWS
from irnbench.protocol import COMPRESS_QUALITIES, JPEG_ANCHOR_QUALITIES
from irnbench.rd import BDRateUndefined, bd_rate
from irnbench.registry import find_weights, get_method_class, train_command
from irnbench.report import build_context, load_runs
from irnbench.report.quality import quality_matrix_tables
from irnbench.results import frame, summarize
from irnbench.runner import run_benchmark
from irnbench.tasks.compress import anchor_qualities
from irnbench.training import train_method


# -- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Two small crops of bundled photos (real content, so JPEG behaves as on photos)."""
    folder = tmp_path_factory.mktemp("cmp") / "imgs"
    folder.mkdir()
    src = sorted((Path(__file__).parents[1] / "datasets" / "mini").glob("*.png"))[:2]
    for f in src:
        with Image.open(f) as im:
            im.convert("RGB").crop((0, 0, 96, 80)).save(folder / f.name)
    return folder


@pytest.fixture(scope="module")
def run_dir(images, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "compress"
    run_benchmark(task="compress", methods=["jpeg", "bicubic"], settings=[{"scale": 2}],
                  datasets=[str(images)], out=out, device="cpu", progress=False,
                  command="irnbench run --task compress --plugins jpeg,bicubic")
    return out


# -- the task ----------------------------------------------------------------------------------
def test_task_setting_and_conditions():
    t = create_task("compress")
    assert t.setting == {"scale": 2, "jpeg": COMPRESS_QUALITIES}
    assert t.key == "compress-x2" and t.setting_label == "x2" and t.cli_args() == "--scale 2"
    assert [c["quality"] for c in t.conditions()] == list(COMPRESS_QUALITIES)
    t2 = create_task("compress", jpeg="90,30")
    assert t2.qualities == (30, 90)
    with pytest.raises(InvalidSetting):
        create_task("compress", scale=5)
    # plain JPEG (a codec) sweeps the wider range too; the others only the task's qualities
    jpeg = create_method("jpeg", task=t2)
    bic = create_method("bicubic", task=t2)
    assert [c["quality"] for c in t2.conditions_for(bic)] == [30, 90]
    swept = [c["quality"] for c in t2.conditions_for(jpeg)]
    assert swept == sorted(set(JPEG_ANCHOR_QUALITIES) | {30, 90}) == list(anchor_qualities((30,
                                                                                            90)))
    assert "OpenCV" in t.protocol() and "Pillow" in t.protocol()


def test_bpp_is_file_bytes_over_hr_pixels(images):
    """bpp = len(JPEG bytes)·8 / (H_HR·W_HR), for the full-resolution codec and a ×2 method."""
    task = create_task("compress", jpeg=[40, 85])
    methods = [create_method("jpeg", task=task), create_method("bicubic", task=task)]
    res = evaluate(methods, task, [resolve_dataset(str(images))], device="cpu", progress=False)
    df = res.df
    assert (df["status"] == "ok").all()
    ds = resolve_dataset(str(images))
    for rec in ds.records:
        hr = task.prepare(rec.load().unsqueeze(0))
        h, w = hr.shape[-2:]
        for m in methods:
            for q in (40, 85):
                nbytes = len(jpeg_encode(to_uint8(m.degrade(hr))[0], q))
                row = df[(df.method == m.name) & (df.image == rec.name) & (df.quality == q)]
                assert len(row) == 1
                assert row["bpp"].iloc[0] == pytest.approx(nbytes * 8 / (h * w), rel=0, abs=1e-12)
    # the full-resolution codec spends more bits than the ×2 LR at the same quality
    mean = df.groupby(["method", "quality"])["bpp"].mean()
    assert mean[("jpeg", 85)] > mean[("bicubic", 85)]


def test_jpeg_step_is_deterministic_and_recorded(images, run_dir, tmp_path):
    """Two runs give the same bytes and metrics; the Pillow/libjpeg versions are recorded."""
    again = tmp_path / "again"
    run_benchmark(task="compress", methods=["jpeg", "bicubic"], settings=[{"scale": 2}],
                  datasets=[str(images)], out=again, device="cpu", progress=False, report=False)
    cols = ["method", "image", "quality", "bpp", "psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb"]
    a = pd.read_csv(run_dir / "results.csv")
    b = pd.read_csv(again / "results.csv")
    a = a[a.source == "measured"][cols].reset_index(drop=True)
    b = b[b.source == "measured"][cols].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["versions"]["pillow"] == Image.__version__
    assert meta["versions"]["libjpeg"] not in ("", "unknown")
    assert meta["methods_info"]["jpeg"]["codec"] is True
    assert meta["methods_info"]["bicubic"]["codec"] is False


# -- BD-rate -----------------------------------------------------------------------------------
_RATE = np.array([0.2, 0.35, 0.55, 0.8, 1.2, 1.9])
_PSNR = np.array([28.0, 30.5, 32.6, 34.4, 36.5, 38.9])


def test_bd_rate_of_a_curve_against_itself_is_zero():
    assert bd_rate(_RATE, _PSNR, _RATE, _PSNR) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("factor", [0.7, 0.9, 1.25, 2.0])
def test_bd_rate_of_a_rate_shifted_curve_is_the_factor(factor):
    got = bd_rate(_RATE, _PSNR, _RATE * factor, _PSNR)
    assert got == pytest.approx((factor - 1) * 100, abs=0.1)


def test_bd_rate_partial_overlap_and_fewer_points():
    # the test curve covers only the upper part of the anchor's PSNR range, at 80 % of its rate
    sel = slice(2, 6)
    assert bd_rate(_RATE, _PSNR, _RATE[sel] * 0.8, _PSNR[sel]) == pytest.approx(-20.0, abs=0.1)


def test_bd_rate_undefined_cases():
    with pytest.raises(BDRateUndefined, match="do not overlap"):
        bd_rate(_RATE, _PSNR, _RATE, _PSNR + 20)
    with pytest.raises(BDRateUndefined, match="a cubic fit needs 4"):
        bd_rate(_RATE, _PSNR, _RATE[:3], _PSNR[:3])
    with pytest.raises(BDRateUndefined, match="positive"):
        bd_rate(_RATE, _PSNR, -_RATE, _PSNR)


def test_bd_rate_is_not_symmetric_by_accident():
    """A method better at every point has a negative BD-rate, the anchor against it positive."""
    better = _RATE * 0.6
    assert bd_rate(_RATE, _PSNR, better, _PSNR + 0.3) < -40
    assert bd_rate(better, _PSNR + 0.3, _RATE, _PSNR) > 60


# -- weights, IRN and irn-crm ------------------------------------------------------------------
@pytest.fixture
def no_shipped_irn(hide_shipped_weights):
    """As if IRN shipped no weights."""
    hide_shipped_weights("irn")


def test_irn_on_compress_uses_its_rescale_weights(tmp_path, no_shipped_irn):
    task = create_task("compress")
    irn = get_method_class("irn")
    assert irn.weights_task(task).key == "rescale-x2"
    assert train_command("irn", task) == "irnbench train --plugin irn --task rescale --scale 2 " \
                                         "--preset cpu"
    assert train_command("irn-crm", task) == ("irnbench train --plugin irn-crm --task compress "
                                              "--scale 2 --preset cpu")
    assert find_weights(irn, task) is None
    with pytest.raises(WeightsNotFound, match="--task rescale --scale 2"):
        create_method("irn", task=task)
    # weights for rescale ×2 in the user cache serve compress ×2
    from irnbench.training.state import save_weights
    from irnbench.weights import cache_weights_path

    m = create_method("irn", task="rescale", scale=2, pretrained=False)
    path = cache_weights_path("irn", "rescale-x2", "official")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_weights(path, m, {"kind": "irnbench-weights", "method": "irn", "task": "rescale",
                           "setting": {"scale": 2}, "task_key": "rescale-x2", "label": "test",
                           "preset": "official"})
    assert irnbench.weights_available("irn", "compress", scale=2)
    loaded = create_method("irn", task=task)
    assert loaded.weights_label == "test" and loaded.weights_tag == "official"
    # and irn-crm's "auto" finds the same IRN (the untagged resolution: official, else cpu)
    crm = create_method("irn-crm", task=task, pretrained=False, config="smoke",
                        irn_weights="auto")
    for k, v in m.state_dict().items():
        assert torch.equal(crm.irn.state_dict()[k], v)


def test_irn_crm_needs_a_trained_irn_to_train(no_shipped_irn):
    with pytest.raises(WeightsNotFound, match="frozen IRN") as err:
        create_method("irn-crm", task="compress", pretrained=False, irn_weights="auto")
    assert "irnbench train --plugin irn --task rescale --scale 2" in str(err.value)


def test_irn_crm_architecture_and_identity_start():
    task = create_task("compress")
    paper = create_method("irn-crm", task=task, pretrained=False)
    # official CRM: 64 features, 8 RRDBs, growth 32 — about 5.80M parameters (+ the q plane)
    assert paper.cfg.blocks == 8 and paper.cfg.feats == 64 and not paper.cfg.residual
    assert abs(paper.num_parameters() - 5.80e6) < 0.01e6
    # the IRN inside is frozen: only the CRM trains
    assert not any(p.requires_grad for p in paper.irn.parameters())
    cpu = create_method("irn-crm", task=task, pretrained=False, config="cpu")
    y = torch.rand(1, 3, 16, 20)
    assert torch.equal(cpu.restore_lr(y, 50), y)  # zero-initialised last conv + input skip
    # CRM output is rounded to uint8 before IRN's inverse; without a quality it is skipped
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    a = cpu.restore(y, generator=g(), quality=50)
    b = cpu.irn.restore(torch.round(y * 255) / 255, generator=g())
    assert torch.allclose(a, b, atol=1e-6)
    assert torch.equal(cpu.restore(y, generator=g()), cpu.irn.restore(y, generator=g()))
    # the stored configuration rebuilds the CRM on load (cpu weights into a default method)
    paper.load_state_dict(cpu.state_dict())
    assert paper.cfg == cpu.cfg


def test_irn_crm_quality_matters():
    task = create_task("compress")
    m = create_method("irn-crm", task=task, pretrained=False, config="smoke")
    torch.nn.init.normal_(m.crm.conv_last.weight, std=0.1)
    y = torch.rand(1, 3, 16, 16)
    assert not torch.allclose(m.restore_lr(y, 30), m.restore_lr(y, 90))
    qs = m.train_qualities(task, torch.arange(200))
    assert min(qs) >= 30 and max(qs) <= 90 and len(set(qs)) > 20
    assert qs == m.train_qualities(task, torch.arange(200))  # a pure function of the index


def test_irn_crm_smoke_training_through_the_runner(tmp_path):
    res = train_method("irn-crm", "compress", scale=2, preset="smoke", datasets="mini-train",
                       device="cpu", progress=False, install=False, out=tmp_path / "t")
    assert res.iterations == 4
    assert all(math.isfinite(h["total"]) and math.isfinite(h["jpeg_l2"]) for h in res.history)
    assert any("val_psnr_y" in h for h in res.history)
    side = json.loads(res.weights.with_suffix(".json").read_text())
    assert side["method"] == "irn-crm" and side["task_key"] == "compress-x2"
    # the weights file is self-contained (frozen IRN + CRM) and loads into a default method
    m = create_method("irn-crm", task="compress", weights=res.weights)
    assert m.cfg.blocks == 1 and "smoke preset" in m.weights_label
    hr = torch.rand(1, 3, 32, 32)
    out = m.restore(to_uint8(m.degrade(hr)).float() / 255, quality=70,
                    generator=torch.Generator().manual_seed(0))
    assert out.shape == hr.shape and torch.isfinite(out).all()


def test_run_stops_with_the_train_command_offline(images, tmp_path, hide_shipped_weights):
    from irnbench.cli import cli

    def run(out):
        return CliRunner().invoke(cli, ["run", "--task", "compress", "--plugins",
                                        "jpeg,bicubic,irn,irn-crm", "--datasets", str(images),
                                        "--device", "cpu", "--quiet", "--out", str(out)])

    # as if the CRM shipped no weights (IRN x2 does): the run names the CRM's command
    hide_shipped_weights("irn-crm")
    res = run(tmp_path / "r")
    assert res.exit_code != 0
    assert "irnbench train --plugin irn-crm --task compress --scale 2 --preset cpu" in res.output
    # without IRN weights it names IRN's first (the CRM trains on a frozen, trained IRN)
    hide_shipped_weights("irn")
    res = run(tmp_path / "r2")
    assert res.exit_code != 0
    assert "irnbench train --plugin irn --task rescale --scale 2 --preset cpu" in res.output


# -- the report --------------------------------------------------------------------------------
def _quality_section(html: str) -> str:
    start = html.index('<section id="quality">')
    return html[start: html.index("</section>", start)]


def test_report_has_rd_plot_and_bd_rate(run_dir):
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    sec = _quality_section(html)
    assert "BD-rate Y vs jpeg" in sec and "BD-rate RGB vs jpeg" in sec
    assert re.search(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]{200,}"', sec)
    assert "http://" not in sec and "https://" not in sec
    # the BD-rate shown is the one bd_rate gives on the run's own set means
    df = pd.read_csv(run_dir / "results.csv")
    s = summarize(df)
    j, b = s[s.method == "jpeg"].sort_values("quality"), s[s.method == "bicubic"]
    b = b.sort_values("quality")
    try:
        want = f"{bd_rate(j.bpp, j.psnr_y, b.bpp, b.psnr_y):+.1f} %".replace("-", "−")
    except BDRateUndefined:
        want = "n/a"
    row = re.search(r'<tr class="row-measured" data-method="bicubic">(.*?)</tr>', sec, re.S)
    assert row and want in row.group(1)
    jrow = re.search(r'<tr class="row-measured" data-method="jpeg">(.*?)</tr>', sec, re.S)
    assert "anchor" in jrow.group(1)
    # one column per task quality; the codec's extra sweep points are named below the table
    heads = re.findall(r"<th class=\"num\"[^>]*>JPEG q(\d+)</th>", sec)
    assert [int(q) for q in heads] == list(COMPRESS_QUALITIES)
    assert "also has qualities 5, 10" in sec


def _synthetic(methods: dict[str, list[tuple[int, float, float]]], task="compress",
               dataset="set5") -> pd.DataFrame:
    rows = []
    for m, pts in methods.items():
        for q, bpp, p in pts:
            rows.append({"source": "measured", "method": m, "label": m, "weights": "w",
                         "task": task, "setting": "x2", "quality": q, "dataset": dataset,
                         "image": "a", "draw": 0, "psnr_y": p, "psnr_rgb": p - 2,
                         "ssim_y": 0.9, "bpp": bpp, "status": "ok", "seconds": 0.1,
                         "params": 0})
    return frame(rows)


def test_bd_rate_na_with_reason_when_curves_do_not_overlap():
    anchor = [(q, 0.1 * i + 0.2, 30 + i) for i, q in enumerate((10, 30, 50, 70, 90))]
    far = [(q, 0.1 * i + 0.2, 50 + i) for i, q in enumerate((30, 50, 70, 80, 90))]
    near = [(q, r * 0.5, p) for q, r, p in anchor]
    df = _synthetic({"jpeg": anchor, "far": far, "near": near})
    meta = {"methods_info": {"jpeg": {"codec": True}, "far": {}, "near": {}}}
    (t,) = quality_matrix_tables(df, summarize(df), [meta], plots=False)
    rows = {r["method"]: r for r in t["rows"]}
    assert rows["far"]["bd"][0]["text"] == "n/a"
    assert "do not overlap" in rows["far"]["bd"][0]["reason"]
    assert any("do not overlap" in f for f in t["footnotes"])
    assert rows["near"]["bd"][0]["value"] == pytest.approx(-50.0, abs=0.1)
    assert rows["jpeg"]["bd"][0]["text"] == "anchor"
    assert t["rows"][0]["method"] == "near"  # lowest BD-rate first


def test_rescale_jpeg_matrix_with_paper_rows(images, tmp_path):
    """`rescale --jpeg` gets a method × quality matrix (no BD-rate: no codec curve), with SAIN's
    paper-reported rows of the same dataset under their own protocol note."""
    out = tmp_path / "rob"
    run_benchmark(task="rescale", methods=["bicubic"], settings=[{"scale": 2, "jpeg": [30, 90]}],
                  datasets=[str(images)], out=out, device="cpu", progress=False)
    html = (out / "report.html").read_text(encoding="utf-8")
    sec = _quality_section(html)
    assert "rescale · x2 · imgs: method × JPEG quality" in sec and "BD-rate" not in sec
    assert re.findall(r">JPEG q(\d+)</th>", sec) == ["30", "90"]
    # the same rows measured on "div2k-val": SAIN's numbers sit in the matrix, daggered
    df = pd.read_csv(out / "results.csv")
    df.loc[df.source == "measured", "dataset"] = "div2k-val"
    runs = load_runs([out])
    runs[0].df = df
    ctx = build_context(runs)
    (t,) = ctx["quality_tables"]
    paper = [r for r in t["rows"] if r["kind"] == "paper"]
    assert [r["label"] for r in paper] == ["Bicubic & Bicubic"]
    x2 = dict(zip(SAIN_QUALITIES, SAIN_README_ROWS["Bicubic & Bicubic"][2], strict=True))
    assert [c["text"] for c in paper[0]["cells"]] == [f"{x2[q][0]:.2f}†" for q in (30, 90)]
    assert t["dagger"] and any("SAIN" in f for f in t["footnotes"])


def test_cli_prints_bd_rates(images, tmp_path):
    from irnbench.cli import cli

    res = CliRunner().invoke(cli, ["run", "--task", "compress", "--plugins", "jpeg,bicubic",
                                   "--jpeg", "30,50,70,90", "--datasets", str(images),
                                   "--device", "cpu", "--quiet", "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert "== BD-rate vs jpeg · compress x2" in res.output
    assert re.search(r"bicubic: (−?\d+\.\d %|n/a)", res.output)


def test_irn_crm_records_the_frozen_irn_it_trains_on():
    """``irn_weights="auto"`` (the ``cpu`` preset) records which IRN the CRM is trained on, by
    file sha256 and by a hash of its tensors; the shipped compress ×2 sidecar records it too,
    and it is the IRN inside the shipped file and the shipped rescale ×2 IRN (so rebuilding
    the CRM with "auto" freezes the same network)."""
    from irnbench.methods import module_fingerprint
    from irnbench.weights import sha256_file

    m = create_method("irn-crm", task="compress", pretrained=False, config="smoke",
                      irn_weights="auto")
    rec = m.training_inputs()["frozen_irn"]
    shipped_irn = create_method("irn", task="rescale", scale=2)
    assert rec["tensors_sha256"] == module_fingerprint(shipped_irn)
    assert rec["sha256"] == sha256_file(shipped_irn.weights_path) and rec["source"] == "shipped"
    assert create_method("irn-crm", task="compress", pretrained=False,
                         config="smoke").training_inputs() == {}
    shipped = create_method("irn-crm", task="compress")
    side = json.loads(shipped.weights_path.with_suffix(".json").read_text())
    assert side["inputs"]["frozen_irn"]["tensors_sha256"] == module_fingerprint(shipped.irn) \
        == rec["tensors_sha256"]
