"""Evaluation through the Python API (docs/protocol.md): draws, summaries, failure isolation,
the harness-owned channel, LR fidelity and bpp, and the factories' errors.

Test methods are registered for the duration of a test through the plugin manager, the way a
third-party plugin registers them.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import irnbench
from irnbench import create_method, create_task
from irnbench.data.decode import load_image
from irnbench.data.loading import resolve_dataset
from irnbench.errors import UnknownNameError, WeightsNotFound
from irnbench.evaluate import evaluate
from irnbench.hookspecs import hookimpl
from irnbench.methods import Method
from irnbench.ops.imresize import imresize
from irnbench.ops.jpeg import jpeg_encode
from irnbench.ops.quantize import to_uint8
from irnbench.plugins import load_plugins, pm
from irnbench.results import load_run, summarize
from irnbench.runner import run_benchmark
from irnbench.tasks.rescale import modcrop

DRAWS = 5


# ------------------------------------------------------------------------------------------
# Test methods


class _Scaled(Method):
    tasks = ("rescale",)

    @property
    def scale(self) -> int:
        return int(self.task.setting["scale"])

    def degrade(self, x):
        return imresize(x, 1.0 / self.scale)

    def restore(self, y, **channel_info):
        return imresize(y, float(self.scale))


class NoisyUp(_Scaled):
    """Stochastic: bicubic upscaling plus 0.01·temperature·N(0, 1) noise from ``generator``."""

    name = "test-noisy"
    stochastic = True

    def restore(self, y, temperature=1.0, generator=None, **channel_info):
        up = imresize(y, float(self.scale))
        noise = torch.randn(up.shape, generator=generator, device=up.device, dtype=up.dtype)
        return up + 0.01 * temperature * noise


class Broken(_Scaled):
    name = "test-broken"

    def restore(self, y, **channel_info):
        raise RuntimeError("boom in restore")


class QuantisationProbe(_Scaled):
    """Degrades to values that are far from k/255; restore insists it gets k/255 only."""

    name = "test-quant-probe"
    seen: list[torch.Tensor] = []

    def degrade(self, x):
        return imresize(x, 1.0 / self.scale) + 0.37 / 255.0  # fractional offset, not k/255

    def restore(self, y, **channel_info):
        assert y.dtype == torch.float32
        assert torch.equal(y * 255, (y * 255).round()), "y is not k/255"
        assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
        type(self).seen.append(y.clone())
        return imresize(y, float(self.scale))


class ShiftedLR(_Scaled):
    """An LR that is slightly different from bicubic's (so its LR fidelity is finite)."""

    name = "test-shifted-lr"

    def degrade(self, x):
        return imresize(x, 1.0 / self.scale) + 3.0 / 255.0


class ChromaShiftedLR(_Scaled):
    """An LR shifted along a colour direction that BT.601 luma does not see (ΔY = 0)."""

    name = "test-chroma-lr"

    def degrade(self, x):
        shift = torch.tensor([0.504, -0.257, 0.0]).view(1, 3, 1, 1) * (20.0 / 255.0)
        return imresize(x, 1.0 / self.scale) + shift


class Trainable(_Scaled):
    """Has trainable parameters and no shipped weights."""

    name = "test-trainable"

    def __init__(self, task, **options):
        super().__init__(task, **options)
        self.gain = torch.nn.Parameter(torch.ones(1))

    def restore(self, y, **channel_info):
        return imresize(y, float(self.scale)) * self.gain

    def training_loss(self, batch, task):
        return {"total": self.gain.sum()}


TEST_METHODS = (NoisyUp, Broken, QuantisationProbe, ShiftedLR, ChromaShiftedLR, Trainable)


class _TestPlugin:
    @hookimpl
    def irnbench_register_methods(self, register):
        for cls in TEST_METHODS:
            register(cls)


@pytest.fixture(autouse=True)
def test_methods(monkeypatch, tmp_path):
    """Register the test methods for one test, then unregister them."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("IRNBENCH_HOME", str(tmp_path / "home"))  # empty weights cache
    load_plugins()
    name = "irnbench-test-evaluate-methods"
    pm.register(_TestPlugin(), name=name)
    try:
        yield
    finally:
        pm.unregister(name=name)
    assert "test-noisy" not in irnbench.list_methods()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalimgs")
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:48, 0:64]
    base = np.stack([xx * 4, yy * 5, (xx * 2 + yy * 3)], axis=2)
    for i in range(2):
        img = (base + rng.integers(-30, 31, base.shape)).clip(0, 255).astype(np.uint8)
        Image.fromarray(img, "RGB").save(root / f"img{i}.png")
    return root


@pytest.fixture
def dataset(folder):
    return resolve_dataset(str(folder))


def _ok(df: pd.DataFrame, method: str) -> pd.DataFrame:
    return df[(df["method"] == method) & (df["source"] == "measured")]


def _eval(names, dataset, task=None, **kw):
    task = task or create_task("rescale", scale=2)
    methods = [create_method(n, task) for n in names]
    kw.setdefault("visual_images", 0)
    return evaluate(methods, task, [dataset], device="cpu", progress=False, **kw)


# ------------------------------------------------------------------------------------------
# draws and summaries


def test_registration_fixture_makes_methods_visible():
    assert {"test-noisy", "test-broken", "bicubic"} <= set(irnbench.list_methods("rescale"))


def test_stochastic_gives_five_draws_deterministic_one(dataset):
    df = _eval(["bicubic", "test-noisy"], dataset).df
    noisy, bic = _ok(df, "test-noisy"), _ok(df, "bicubic")
    assert len(noisy) == DRAWS * len(dataset)
    for _, g in noisy.groupby("image"):
        assert sorted(g["draw"].tolist()) == list(range(DRAWS))
    assert len(bic) == len(dataset)
    assert (bic["draw"] == 0).all()
    assert (df["status"] == "ok").all()


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_summary_mean_and_std_over_draws(dataset):
    df = _eval(["bicubic", "test-noisy"], dataset).df
    summary = summarize(df)
    noisy = _ok(df, "test-noisy")
    for metric in ("psnr_y", "ssim_y", "psnr_rgb"):
        per_draw = noisy.groupby("draw")[metric].mean()  # set mean of each draw
        assert len(per_draw) == DRAWS
        row = summary[summary["method"] == "test-noisy"].iloc[0]
        assert row[metric] == pytest.approx(per_draw.mean(), rel=1e-12)
        assert row[f"{metric}_std"] == pytest.approx(
            float(np.std(per_draw.to_numpy(), ddof=1)), rel=1e-9
        )
        assert row[f"{metric}_std"] > 0
    row = summary[summary["method"] == "test-noisy"].iloc[0]
    assert row["draws"] == DRAWS and row["images"] == len(dataset)
    # its LR does not depend on z (and equals bicubic's): fidelity inf in every draw, no spread
    assert math.isinf(row["lr_psnr_y"]) and row["lr_psnr_y_std"] == 0.0
    bic = summary[summary["method"] == "bicubic"].iloc[0]
    assert bic["psnr_y"] == pytest.approx(_ok(df, "bicubic")["psnr_y"].mean(), rel=1e-12)
    assert pd.isna(bic.get("psnr_y_std", math.nan))


def test_draws_reproducible_and_distinct(dataset):
    a = _ok(_eval(["test-noisy"], dataset).df, "test-noisy")
    b = _ok(_eval(["test-noisy"], dataset).df, "test-noisy")
    cols = ["image", "draw", "psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb"]
    a = a[cols].sort_values(["image", "draw"]).reset_index(drop=True)
    b = b[cols].sort_values(["image", "draw"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)  # same seeds → same numbers
    for _, g in a.groupby("image"):
        assert g["psnr_y"].nunique() == DRAWS  # each draw its own z
    # noise really costs something: below bicubic on every image
    bic = _ok(_eval(["bicubic"], dataset).df, "bicubic").set_index("image")["psnr_y"]
    worst = a.groupby("image")["psnr_y"].max()
    assert (worst < bic.loc[worst.index]).all()


def test_temperature_zero_equals_bicubic(dataset):
    noisy = _ok(_eval(["test-noisy"], dataset, temperature=0.0).df, "test-noisy")
    bic = _ok(_eval(["bicubic"], dataset).df, "bicubic").set_index("image")
    for _, row in noisy.iterrows():
        assert row["psnr_y"] == bic.loc[row["image"], "psnr_y"]


# ------------------------------------------------------------------------------------------
# failure isolation


def test_failing_method_is_isolated(dataset):
    res = _eval(["bicubic", "test-broken"], dataset)
    df = res.df
    broken = df[df["method"] == "test-broken"]
    assert len(broken) >= 1
    assert (broken["status"] == "failed").all()
    assert broken["error"].str.contains("boom in restore").all()
    assert broken["error"].str.contains("RuntimeError").all()
    assert broken["psnr_y"].isna().all()  # no partial numbers
    bic = _ok(df, "bicubic")
    assert len(bic) == len(dataset)
    assert (bic["status"] == "ok").all()
    assert bic["psnr_y"].notna().all()
    assert any("test-broken" in n and "boom" in n for n in res.notes)
    summary = summarize(df)
    srow = summary[summary["method"] == "test-broken"].iloc[0]
    assert srow["status"] == "failed" and "boom" in srow["error"]
    assert summary[summary["method"] == "bicubic"].iloc[0]["status"] == "ok"


def test_failing_method_order_does_not_matter(dataset):
    df = _eval(["test-broken", "bicubic"], dataset).df
    assert len(_ok(df, "bicubic").query("status == 'ok'")) == len(dataset)


def test_run_benchmark_saves_failures(folder, tmp_path):
    out = tmp_path / "run"
    res = run_benchmark("rescale", ["bicubic", "test-broken"], [{"scale": 2}], [str(folder)],
                        out, device="cpu", report=False, progress=False, command="pytest")
    assert (out / "results.csv").is_file() and (out / "meta.json").is_file()
    assert not (out / "report.html").exists()
    assert res.report is None
    df, meta = load_run(out)
    failed = df[(df["method"] == "test-broken")]
    assert (failed["status"] == "failed").all() and len(failed) >= 1
    assert failed["error"].str.contains("boom in restore").all()
    assert len(_ok(df, "bicubic").query("status == 'ok'")) == 2
    assert meta["command"] == "pytest"
    assert any("test-broken" in n for n in meta["notes"])
    csv = pd.read_csv(out / "results.csv")
    assert "failed" in set(csv["status"])
    assert json.loads((out / "results.json").read_text())["meta"]["methods"] == [
        "bicubic", "test-broken"]


# ------------------------------------------------------------------------------------------
# the channel


@pytest.mark.parametrize("jpeg", [None, [50]], ids=["uint8", "jpeg50"])
def test_channel_quantises_before_restore(dataset, jpeg):
    QuantisationProbe.seen.clear()
    setting = {"scale": 2} if jpeg is None else {"scale": 2, "jpeg": jpeg}
    df = _eval(["test-quant-probe"], dataset, task=create_task("rescale", **setting)).df
    assert (df["status"] == "ok").all(), df["error"].tolist()
    assert len(QuantisationProbe.seen) == len(dataset)
    assert all(tuple(y.shape[-2:]) == (24, 32) for y in QuantisationProbe.seen)


def test_lr_fidelity(dataset):
    df = _eval(["bicubic", "test-shifted-lr"], dataset).df
    bic, shifted = _ok(df, "bicubic"), _ok(df, "test-shifted-lr")
    assert np.isinf(bic["lr_psnr_y"]).all()  # its LR is exactly the rounded reference
    assert np.isfinite(shifted["lr_psnr_y"]).all()
    assert (shifted["lr_psnr_y"] > 20).all()
    # a 3/255 shift of R, G, B shifts Y by 3·(65.481 + 128.553 + 24.966)/255 away from clipping
    assert (shifted["lr_psnr_y"] < 20 * math.log10(255 / (3 * 219 / 255)) + 3).all()
    # on RGB: exact for bicubic, at most the 3/255 shift for the shifted one (clipping only helps)
    assert np.isinf(bic["lr_psnr_rgb"]).all()
    assert (shifted["lr_psnr_rgb"] >= 20 * math.log10(255 / 3) - 1e-6).all()


def test_lr_fidelity_on_rgb_sees_a_colour_shift_that_y_hides(dataset):
    chroma = _ok(_eval(["test-chroma-lr"], dataset).df, "test-chroma-lr")
    assert (chroma["lr_psnr_y"] > chroma["lr_psnr_rgb"] + 10).all()
    # R +10.1/255, G −5.1/255, B 0 (before rounding and clipping): RGB-PSNR ≈ 32 dB
    assert (chroma["lr_psnr_rgb"] < 36).all()


def test_bpp_matches_real_jpeg_bytes(dataset, folder):
    task = create_task("rescale", scale=2, jpeg=[30, 70])
    df = _ok(_eval(["bicubic"], dataset, task=task).df, "bicubic")
    assert sorted(df["quality"].unique().tolist()) == [30, 70]
    assert df["bpp"].notna().all()
    for _, row in df.iterrows():
        hr = modcrop(load_image(folder / row["image"]).unsqueeze(0), 2)
        lr_u8 = to_uint8(imresize(hr, 0.5))[0]
        nbytes = len(jpeg_encode(lr_u8, int(row["quality"])))
        h, w = hr.shape[-2:]
        assert (row["height"], row["width"]) == (h, w)
        assert row["bpp"] == pytest.approx(nbytes * 8 / (h * w), rel=1e-12)


def test_bpp_empty_without_jpeg(dataset):
    df = _ok(_eval(["bicubic"], dataset).df, "bicubic")
    assert df["bpp"].isna().all()
    assert df["quality"].isna().all()


# ------------------------------------------------------------------------------------------
# factories


def test_create_method_unknown_name():
    with pytest.raises(UnknownNameError) as err:
        create_method("no-such-method", scale=2)
    assert "bicubic" in str(err.value)
    assert "test-noisy" in str(err.value)


def test_create_task_unknown_name():
    with pytest.raises(UnknownNameError) as err:
        create_task("no-such-task")
    assert "rescale" in str(err.value)


def test_pretrained_without_weights_names_train_command():
    with pytest.raises(WeightsNotFound) as err:
        create_method("test-trainable", scale=2, pretrained=True)
    assert "irnbench train --plugin test-trainable" in str(err.value)
    assert "--scale 2" in str(err.value)
    assert err.value.train_command.startswith("irnbench train --plugin test-trainable")
    assert not irnbench.weights_available("test-trainable", scale=2)
    fresh = create_method("test-trainable", scale=2, pretrained=False)
    assert fresh.num_parameters() == 1


def test_weights_available_for_bicubic():
    assert irnbench.weights_available("bicubic", scale=2) is True
    assert irnbench.weights_available("bicubic", "rescale", scale=4) is True
    m = create_method("bicubic", scale=2)
    assert isinstance(m, Method) and m.name == "bicubic"
    assert not m.training


def test_api_evaluate_matches_cli_protocol_values(dataset):
    """Bicubic through evaluate: PSNR-Y recomputed by hand from the protocol (Y, crop s)."""
    from irnbench.metrics import psnr

    df = _ok(_eval(["bicubic"], dataset).df, "bicubic").set_index("image")
    for rec in dataset:
        hr = modcrop(rec.load().unsqueeze(0), 2)
        lr = to_uint8(imresize(hr, 0.5)).float() / 255
        out = to_uint8(imresize(lr, 2.0))
        expected = float(psnr(hr, out, 2, y_channel=True)[0])
        assert df.loc[rec.name, "psnr_y"] == pytest.approx(expected, abs=1e-9)


def test_visual_crop_is_where_the_methods_differ_most():
    """The zoomed crop sits where the restorations' errors disagree most, not at a fixed
    or merely detailed place."""
    from irnbench.evaluate import error_crop

    gt = torch.zeros(3, 64, 96, dtype=torch.uint8)
    a = gt.clone()
    b = gt.clone()
    b[:, 40:56, 60:76] = 200  # only method b is wrong, and only here
    top, left, h, w = error_crop(gt, [a, b], 32)
    assert (h, w) == (32, 32)
    assert top <= 40 and top + h >= 56 and left <= 60 and left + w >= 76
    # a single method: its largest error; no method: the most detailed window
    assert error_crop(gt, [b], 32)[:2] == (top, left)
    assert error_crop(gt, [], 32)[2:] == (32, 32)


# ------------------------------------------------------------------------------------------
# one degrade per image for methods that declare the same forward pass


class _CountingDown(_Scaled):
    """Bicubic down that counts its calls; ``degrade_key`` from the option ``key``."""

    @dataclasses.dataclass(frozen=True)
    class Options(irnbench.Options):
        key: str = irnbench.option("", "degrade_key; empty: None")

    calls: list[str] = []

    def degrade(self, x):
        type(self).calls.append(self.name)
        return imresize(x, 1.0 / self.scale)

    def degrade_key(self):
        return self.opts.key or None


class CountA(_CountingDown):
    name = "test-count-a"


class CountB(_CountingDown):
    name = "test-count-b"

    def restore(self, y, **channel_info):
        return imresize(y, float(self.scale)) * 0.5 + 0.25  # another restoration of one LR


@pytest.mark.parametrize(("key", "degrades_per_image"), [("same", 1), ("", 2)])
def test_methods_with_one_degrade_key_share_the_forward_pass(dataset, key, degrades_per_image):
    task = create_task("rescale", scale=2)
    methods = [CountA(task, key=key), CountB(task, key=key)]
    for m in methods:
        m.spec = m.name
    _CountingDown.calls = []
    res = evaluate(methods, task, [dataset], device="cpu", progress=False, visual_images=0)
    assert len(_CountingDown.calls) == degrades_per_image * len(dataset)
    # the shared LR gives each method the numbers it gives alone
    alone = evaluate([CountB(task)], task, [dataset], device="cpu", progress=False,
                     visual_images=0).df
    b = res.df[res.df["method"] == "test-count-b"]
    assert b["psnr_y"].tolist() == alone["psnr_y"].tolist()
    assert (res.df["seconds"] > 0).all()


def test_irn_and_irn_crm_share_a_degrade_key_only_with_equal_irn_weights():
    task = create_task("compress", scale=2)
    irn = create_method("irn", task=task, pretrained=False)
    crm = create_method("irn-crm", task=task, pretrained=False, config="smoke")
    assert irn.degrade_key() != crm.degrade_key()  # two random initialisations
    crm.irn.load_state_dict(irn.state_dict())
    assert irn.degrade_key() == crm.degrade_key()
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(irn.degrade(x), crm.degrade(x))
    with torch.no_grad():
        next(crm.irn.net.parameters()).add_(1e-3)
    assert irn.degrade_key() != crm.degrade_key()
    assert create_method("irn", task=task, pretrained=False, tile=64).degrade_key() \
        != create_method("irn", task=task, pretrained=False).degrade_key()
