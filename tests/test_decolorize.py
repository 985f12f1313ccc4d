"""Decolorization task (guide, protocol, metrics), IRN-Color, the ``grey`` floor and TAR's
decolorization variant: invertibility, parameter count, losses, smoke training, CLI, report."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import load_file

import irnbench
from irnbench import create_task
from irnbench.channel import transmit
from irnbench.errors import InvalidSetting
from irnbench.ops.quantize import to_uint8
from irnbench.protocol import DECOLORIZE_CROP, GREY_WEIGHTS, PROTOCOL_TEXT
from irnbench.tasks.decolorize import DecolorizeTask
from irnbench.training import train_method
from irnbench_plugins.grey import Grey
from irnbench_plugins.irn_color import RGB_TO_YUV, InvertibleConv1x1, InvGreyNet, IRNColor
from irnbench_plugins.tar import TAR


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _image(b: int = 1, h: int = 20, w: int = 24, seed: int = 2) -> torch.Tensor:
    return torch.rand(b, 3, h, w, generator=_gen(seed))


@torch.no_grad()
def _randomise(module: torch.nn.Module, std: float = 0.02, seed: int = 1) -> None:
    """Perturb every trainable weight (zero-init conv5 would make every coupling the identity)."""
    g = _gen(seed)
    for p in module.parameters():
        if p.requires_grad:
            p.add_(torch.randn(p.shape, generator=g) * std)


def _folder(tmp_path, n: int = 3, size: tuple[int, int] = (36, 28), name: str = "imgs"):
    """A folder of small random RGB PNGs (width, height = ``size``)."""
    folder = tmp_path / name
    folder.mkdir()
    rng = np.random.default_rng(7)
    for i in range(n):
        arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"img{i}.png")
    return folder


# -- the task ---------------------------------------------------------------------------------
def test_guide_is_the_luma_formula():
    task = create_task("decolorize")
    x = torch.tensor([[[[1.0, 0.0]], [[0.0, 0.5]], [[0.0, 0.25]]]])  # 1×3×1×2
    ref = task.reference(x)
    assert ref.shape == (1, 1, 1, 2) and ref.dtype == torch.float32
    expected = [0.299 * 1.0, 0.587 * 0.5 + 0.114 * 0.25]
    torch.testing.assert_close(ref.flatten(), torch.tensor(expected), rtol=0, atol=1e-7)
    assert GREY_WEIGHTS == (0.299, 0.587, 0.114)
    # float, not rounded to 1/255
    assert not torch.allclose(ref * 255, (ref * 255).round())


def test_task_setting_and_protocol():
    task = create_task("decolorize")
    assert isinstance(task, DecolorizeTask)
    assert task.setting == {} and task.key == "decolorize" and task.cli_args() == ""
    assert task.crop_border == DECOLORIZE_CROP == 2
    assert task.metrics[0] == "psnr_rgb" and "grey_psnr" in task.metrics
    assert task.protocol() == PROTOCOL_TEXT["decolorize"]
    assert "crop 2 px" in task.protocol() and "0.299R + 0.587G + 0.114B" in task.protocol()
    with pytest.raises(InvalidSetting):
        create_task("decolorize", scale=2)
    assert task.prepare(torch.rand(1, 3, 21, 17)).shape == (1, 3, 20, 16)  # modcrop 2
    assert task.min_size() == 2 * 2 + 11
    assert "decolorize" in irnbench.list_tasks()
    assert set(irnbench.list_methods("decolorize")) >= {"grey", "irn-color", "tar"}


def _hand_psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 20 * math.log10(255.0 / math.sqrt(mse))


def test_grey_floor_metrics_equal_a_hand_computation():
    """The grey floor's RGB PSNR, Y-PSNR and grey PSNR, recomputed with NumPy from scratch."""
    task = create_task("decolorize")
    hr = task.prepare(_image(1, 18, 20, seed=3))
    method = Grey(task)
    y = method.degrade(hr)
    tr = task.transmit(y)
    restored = to_uint8(method.restore(tr.y))
    scores = task.score(hr, restored, tr, task.reference(hr))

    rgb = np.rint(np.clip(hr[0].numpy().astype(np.float32), 0, 1) * 255).astype(np.float64)
    luma = 0.299 * hr[0, 0] + 0.587 * hr[0, 1] + 0.114 * hr[0, 2]
    grey = np.rint(np.clip(luma.numpy(), 0, 1) * 255).astype(np.float64)
    out = np.stack([grey, grey, grey])
    c = 2
    assert scores["psnr_rgb"] == pytest.approx(
        _hand_psnr(rgb[:, c:-c, c:-c], out[:, c:-c, c:-c]), abs=1e-9)

    def y601(v):
        return 16 + (65.481 * v[0] + 128.553 * v[1] + 24.966 * v[2]) / 255

    assert scores["psnr_y"] == pytest.approx(
        _hand_psnr(y601(rgb)[c:-c, c:-c], y601(out)[c:-c, c:-c]), abs=1e-9)
    # the floor sends the guide itself: grey fidelity is exact
    assert scores["grey_psnr"] == math.inf
    assert 0 < scores["ssim_rgb"] < 1


def test_grey_psnr_is_against_the_guide_without_crop():
    task = create_task("decolorize")
    hr = _image(1, 16, 16, seed=4) * 0.5 + 0.25  # away from the clamp
    ref = task.reference(hr)
    shifted = to_uint8(ref).to(torch.int16) + 2  # every grey pixel 2 levels off
    tr = transmit(shifted.to(torch.float32) / 255)
    scores = task.score(hr, to_uint8(hr), tr, ref)
    assert scores["grey_psnr"] == pytest.approx(20 * math.log10(255 / 2), abs=1e-9)
    assert scores["psnr_rgb"] == math.inf  # the colour image itself came back exactly
    with pytest.raises(ValueError, match="1-channel"):
        task.score(hr, to_uint8(hr), transmit(hr), ref)


# -- IRN-Color --------------------------------------------------------------------------------
def _dense_params(cin: int, cout: int, gc: int = 32) -> int:
    """Weights + biases of a DenseBlock's five 3×3 convs (input and all earlier outputs in)."""
    ins = [cin + k * gc for k in range(5)]
    outs = [gc, gc, gc, gc, cout]
    return sum(i * o * 9 + o for i, o in zip(ins, outs, strict=True))


def test_irn_color_parameter_count_from_layer_shapes():
    m = IRNColor(create_task("decolorize"))
    # couplings with C = 3, split 1: F maps 2 → 1, G and H map 1 → 2; plus the 3×3 matrix
    per_block = _dense_params(2, 1) + 2 * _dense_params(1, 2)
    expected = 8 * per_block + 3 * 3
    assert m.num_parameters() == expected
    assert m.num_parameters(trainable_only=False) == expected
    assert round(expected / 1e6, 2) == 1.41  # "≈ 1.41M"
    assert len(m.net.blocks) == 8
    assert all(b.split_len1 == 1 and b.split_len2 == 2 for b in m.net.blocks)


def test_irn_color_inverse_exact_with_random_weights():
    torch.manual_seed(0)
    net = InvGreyNet()
    _randomise(net, std=0.02)
    with torch.no_grad():
        net.conv.weight.add_(torch.randn(3, 3, generator=_gen(5)) * 0.1)
        x = _image(2, 16, 20)
        t = net(x)
        assert t.shape == x.shape
        assert not torch.allclose(t[:, :1], x.mean(1, keepdim=True), atol=1e-2)  # perturbed
        torch.testing.assert_close(net.inverse(t), x, rtol=0, atol=1e-5)
        torch.testing.assert_close(net(net.inverse(t)), t, rtol=0, atol=1e-5)


def test_one_by_one_transform_init_and_logdet():
    conv = InvertibleConv1x1()
    torch.testing.assert_close(conv.weight.detach(), torch.tensor(RGB_TO_YUV))
    x = _image(1, 4, 5)
    y = conv(x)
    torch.testing.assert_close(y[:, 0], 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])
    torch.testing.assert_close(y[:, 1], -0.147 * x[:, 0] - 0.289 * x[:, 1] + 0.436 * x[:, 2])
    det = float(np.linalg.det(np.array(RGB_TO_YUV, dtype=np.float64)))
    assert float(conv.determinant()) == pytest.approx(det, rel=1e-5)
    assert float(conv.last_logdet) == pytest.approx(4 * 5 * math.log(abs(det)), rel=1e-5)
    torch.testing.assert_close(conv(y, rev=True), x, rtol=0, atol=1e-6)
    assert float(conv.last_logdet) == pytest.approx(-4 * 5 * math.log(abs(det)), rel=1e-5)
    with pytest.raises(ValueError):
        InvertibleConv1x1(torch.ones(2, 3))


def test_irn_color_at_init_sends_the_guide_and_restores_grey():
    task = create_task("decolorize")
    m = IRNColor(task).eval()
    x = _image()
    with torch.no_grad():
        y = m.degrade(x)
        torch.testing.assert_close(y, task.reference(x), rtol=0, atol=1e-6)
        out = m.restore(task.channel(y))
    assert out.shape == x.shape
    # z = 0 and identity couplings: YUV⁻¹ of [Y, 0, 0] is Y in R, G and B (to the rounding of
    # the published coefficients)
    grey = task.channel(y).expand_as(out)
    torch.testing.assert_close(out, grey, rtol=0, atol=2e-3)


def test_irn_color_z_is_zero_by_default_and_temperature_option():
    task = create_task("decolorize")
    m = IRNColor(task).eval()
    _randomise(m)
    assert not IRNColor.stochastic
    with torch.no_grad():
        y = task.channel(m.degrade(_image()))
        a, b = m.restore(y), m.restore(y)
        assert torch.equal(a, b)
        torch.testing.assert_close(a, m.restore_with_z(y, torch.zeros(1, 2, *y.shape[-2:])))
        hot = m.restore(y, temperature=1.0, generator=_gen(3))
        assert not torch.allclose(hot, a)
        warm = IRNColor(task, temperature=1.0)
        warm.load_state_dict(m.state_dict())
        torch.testing.assert_close(warm.restore(y, generator=_gen(3)), hot)
    with pytest.raises(InvalidSetting):
        IRNColor(task, bogus=1)
    with pytest.raises(InvalidSetting):
        IRNColor(create_task("rescale", scale=2))


def test_irn_color_tiled_equals_untiled_within_context():
    task = create_task("decolorize")
    m = IRNColor(task, blocks=2).eval()
    _randomise(m, std=0.01)
    x = _image(1, 40, 40, seed=6)
    tiled_m = IRNColor(task, blocks=2, tile=16).eval()
    tiled_m.load_state_dict(m.state_dict())
    with torch.no_grad():
        y = m.degrade(x)
        torch.testing.assert_close(tiled_m.degrade(x), y, rtol=0, atol=1e-4)
        torch.testing.assert_close(tiled_m.restore(y), m.restore(y), rtol=0, atol=1e-4)


def test_irn_color_training_loss_terms():
    task = create_task("decolorize")
    m = IRNColor(task)
    _randomise(m)
    hr = _image(2, 16, 16, seed=8)
    batch = {"hr": hr, "lr_ref": task.reference(hr)}
    losses = m.training_loss(batch, task)
    assert set(losses) == {"total", "fit", "ce", "rec"}
    with torch.no_grad():
        out = m.net(hr)
        fit = 3.0 * ((out[:, :1] - batch["lr_ref"]) ** 2).sum() / 2
        ce = (out[:, 1:] ** 2).sum() / 2
        x_hat = m.net.inverse(torch.cat((task.channel(out[:, :1]), torch.zeros_like(out[:, 1:])),
                                        1))
        rec = torch.sqrt((x_hat - hr) ** 2 + 1e-6).sum() / 2
    torch.testing.assert_close(losses["fit"].detach(), fit)
    torch.testing.assert_close(losses["ce"].detach(), ce)
    torch.testing.assert_close(losses["rec"].detach(), rec, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(losses["total"].detach(), fit + ce + losses["rec"].detach())
    losses["total"].backward()
    assert m.net.conv.weight.grad.abs().sum() > 0
    assert m.net.blocks[0].F.conv5.weight.grad.abs().sum() > 0


def test_irn_color_presets():
    p = IRNColor.presets
    assert set(p) >= {"paper", "cpu", "smoke"}
    assert (p["paper"].batch_size, p["paper"].crop, p["paper"].iterations) == (8, 144, 500_000)
    assert p["paper"].grad_clip == 10.0 and p["paper"].weight_decay == 1e-5
    assert p["smoke"].iterations <= 10
    # the shipped weights are the cpu preset's (tests/test_weights.py checks the file itself)
    assert IRNColor.pretrained_cfgs["decolorize"].preset == "cpu"


# -- TAR's decolorization variant --------------------------------------------------------------
@pytest.mark.parametrize("config", ["smoke", "cpu", "paper"])
def test_tar_decolorize_shapes(config):
    task = create_task("decolorize")
    m = TAR(task, config=config).eval()
    assert TAR.supports(task) and m.scale == 1
    x = _image(2, 18, 22)
    with torch.no_grad():
        y = m.degrade(x)
        out = m.restore(task.channel(y))
    assert y.shape == (2, 1, 18, 22) and out.shape == x.shape
    hr = _image(2, 16, 16)
    losses = m.train().training_loss({"hr": hr, "lr_ref": task.reference(hr)}, task)
    assert set(losses) == {"total", "rec", "guide"} and torch.isfinite(losses["total"])


def test_tar_rescale_networks_unchanged_by_the_decolorize_variant():
    """The rescale state dict has the same keys and shapes as before (3-channel head/tail)."""
    sd = TAR(create_task("rescale", scale=2), config="cpu").state_dict()
    assert sd["downscaler.head.0.weight"].shape[1] == 3
    assert sd["downscaler.tail.weight"].shape[0] == 3
    assert sd["upscaler.head.weight"].shape[1] == 3 and sd["upscaler.tail.weight"].shape[0] == 3
    dec = TAR(create_task("decolorize"), config="cpu").state_dict()
    assert dec["downscaler.tail.weight"].shape[0] == 1 and dec["upscaler.head.weight"].shape[1] == 1
    assert "upscaler.upsample.0.weight" in sd and "upscaler.upsample.0.weight" not in dec


# -- training through the generic runner --------------------------------------------------------
def test_irn_color_smoke_training_keeps_the_transform_invertible(tmp_path):
    folder = _folder(tmp_path, n=3, size=(40, 36))
    res = train_method("irn-color", "decolorize", preset="smoke", datasets=str(folder),
                       out=tmp_path / "run", device="cpu", progress=False, install=False)
    assert res.iterations == IRNColor.presets["smoke"].iterations
    assert all(math.isfinite(h["total"]) for h in res.history)
    # validation on RGB (the task's validation_metric), as IRN-Color's training log
    assert any("val_psnr_rgb" in h for h in res.history)
    assert not any("val_psnr_y" in h for h in res.history)
    side = json.loads(res.weights.with_suffix(".json").read_text())
    assert math.isfinite(side["final_val_psnr_rgb"]) and "final_val_psnr_y" not in side
    w = load_file(str(res.weights))["net.conv.weight"]
    init = torch.tensor(RGB_TO_YUV)
    assert not torch.equal(w, init)  # training moved the transform
    det = float(torch.linalg.det(w.double()))
    det0 = float(torch.linalg.det(init.double()))
    assert abs(det) > 0.5 * abs(det0) and math.copysign(1, det) == math.copysign(1, det0)
    assert torch.linalg.cond(w.double()) < 1e3
    m = irnbench.create_method("irn-color", task="decolorize", weights=res.weights)
    assert "smoke preset" in m.weights_label
    torch.testing.assert_close(m.net.conv.determinant(), torch.linalg.det(w), rtol=1e-5, atol=0)


def test_tar_decolorize_presets_come_through_presets_for(tmp_path, monkeypatch):
    """decolorize has its own cheaper ``cpu`` preset; the runner asks ``presets_for(task)``."""
    dec, resc = create_task("decolorize"), create_task("rescale", scale=2)
    assert TAR.presets_for(resc) is TAR.presets and TAR.presets["cpu"].crop == 64
    assert TAR.presets_for(dec)["cpu"].crop == 48
    # decolorize's own cpu; the rest are shared (its tried fine-tunes are text in the docs)
    assert {k: v for k, v in TAR.presets_for(dec).items() if k != "cpu"} == {
        k: v for k, v in TAR.presets.items() if k != "cpu"}
    assert IRNColor.presets_for(dec) is IRNColor.presets
    one = replace(TAR.presets["smoke"], name="one", iterations=1, val_every=0,
                  checkpoint_every=0)
    monkeypatch.setattr(TAR, "decolorize_presets", {**TAR.decolorize_presets, "one": one})
    folder = _folder(tmp_path, n=2, size=(32, 32))
    kw = dict(datasets=str(folder), device="cpu", progress=False, install=False)
    res = train_method("tar", "decolorize", preset="one", out=tmp_path / "a", **kw)
    assert res.iterations == 1
    with pytest.raises(InvalidSetting, match="no preset 'one'"):
        train_method("tar", "rescale", scale=2, preset="one", out=tmp_path / "b", **kw)


def test_tar_decolorize_smoke_training(tmp_path):
    folder = _folder(tmp_path, n=3, size=(40, 36))
    res = train_method("tar", "decolorize", preset="smoke", datasets=str(folder),
                       out=tmp_path / "run", device="cpu", progress=False, install=False)
    assert all(math.isfinite(h["total"]) for h in res.history)
    m = irnbench.create_method("tar", task="decolorize", weights=res.weights)
    assert m.cfg == TAR(create_task("decolorize"), config="smoke").cfg  # rebuilt from "arch"
    with torch.no_grad():
        assert m.degrade(_image()).shape == (1, 1, 20, 24)


# -- CLI and report -------------------------------------------------------------------------------
def test_grey_runs_end_to_end_through_the_cli(tmp_path):
    from irnbench.cli import cli

    folder = _folder(tmp_path, n=2, size=(36, 28))
    out = tmp_path / "run"
    res = CliRunner().invoke(cli, ["run", "--task", "decolorize", "--plugins", "grey",
                                   "--datasets", str(folder), "--quiet", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "grey [measured]" in res.output
    df = irnbench.results.load_run(out)[0]
    assert len(df) == 2 and (df["status"] == "ok").all()
    # each row equals the task's own scoring of the image
    task = create_task("decolorize")
    for row in df.itertuples():
        img = torch.from_numpy(np.array(Image.open(folder / row.image))).permute(2, 0, 1)
        hr = task.prepare(img.float().div(255).unsqueeze(0))
        m = Grey(task)
        tr = task.transmit(m.degrade(hr))
        s = task.score(hr, to_uint8(m.restore(tr.y)), tr, task.reference(hr))
        assert row.psnr_rgb == pytest.approx(s["psnr_rgb"], abs=1e-9)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["protocol"]["uint8"] == PROTOCOL_TEXT["decolorize"]
    index = json.loads((out / "visuals" / "index.json").read_text())
    assert index and index[0]["channel_label"] == "grey"
    assert set(index[0]["channel_crops"]) == {"guide", "grey"}
    grey_png = Image.open(out / "visuals" / index[0]["channel_crops"]["grey"])
    assert grey_png.mode == "L"
    assert Image.open(out / "visuals" / index[0]["crops"]["grey"]).mode == "RGB"
    html = (out / "report.html").read_text()
    assert 'class="crops channel-crops"' in html and "grey of grey" in html
    assert "grey guide (uint8)" in html


def test_learned_methods_without_weights_stop_with_the_train_command(tmp_path,
                                                                     hide_shipped_weights):
    from irnbench.cli import cli

    folder = _folder(tmp_path, n=2)
    hide_shipped_weights("irn-color", "tar")
    for name in ("irn-color", "tar"):
        res = CliRunner().invoke(cli, ["run", "--task", "decolorize", "--plugins",
                                       f"{name},grey", "--datasets", str(folder), "--quiet",
                                       "--out", str(tmp_path / name)])
        assert res.exit_code != 0
        assert (f"irnbench train --plugin {name} --task decolorize --preset cpu"
                in res.output), res.output


def test_run_with_the_shipped_weights(tmp_path):
    """`run --task decolorize --plugins irn-color,tar,grey` works offline with shipped weights."""
    from irnbench.cli import cli

    folder = _folder(tmp_path, n=2)
    out = tmp_path / "run"
    res = CliRunner().invoke(cli, ["run", "--task", "decolorize", "--plugins", "irn-color,tar,grey",
                                   "--datasets", str(folder), "--device", "cpu", "--quiet",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = json.loads((out / "results.json").read_text())["rows"]
    by = {r["method"]: r for r in rows if r["status"] == "ok"}
    assert set(by) == {"irn-color", "tar", "grey"}
    for name in ("irn-color", "tar"):
        label = by[name]["weights"]
        assert "cpu preset" in label and "not the paper's model" in label
        assert math.isfinite(by[name]["psnr_rgb"]) and math.isfinite(by[name]["grey_psnr"])


def test_hidden_colour_script_tells_a_hiding_method_from_a_colouriser(tmp_path, capsys,
                                                                      monkeypatch):
    """scripts/decolorize_hidden_colour.py: the grey floor hides nothing (both restorations are
    the same image); a method whose grey carries the colour loses it given the plain luma."""
    from conftest import load_script

    mod = load_script("decolorize_hidden_colour")
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(
            tmp_path / f"{name}.png")
    means = mod.hidden_colour(["grey"], str(tmp_path), None, None)
    own, plain = means["grey"]
    assert own == plain and 0 < own < 30
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| a.png")]
    assert len(rows) == 1 and rows[0].split("|")[5].strip() == "+0.00"

    # A toy method whose grey "carries" the whole colour image: handed its own grey, restore
    # returns the HR it degraded; handed anything else, the grey replicated. A large gain.
    class Hider(Grey):
        name = "test-hider"

        def degrade(self, x):
            self.last = (x, super().degrade(x))
            return self.last[1]

        def restore(self, y, **info):
            hr, grey = self.last
            if torch.equal(y, to_uint8(grey).float() / 255):
                return hr
            return super().restore(y, **info)

    monkeypatch.setattr(irnbench, "create_method", lambda name, task, weights=None: Hider(task))
    means = mod.hidden_colour(["test-hider"], str(tmp_path), None, None)
    own, plain = means["test-hider"]
    assert own == math.inf or own > plain + 20
