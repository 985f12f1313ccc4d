"""IRN ×3: the learnable ConvDownsampling, the 12-coupling network and its official tensor layout,
and ×3 runs end to end (evaluation through the CLI, the missing-weights message, smoke training).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image
from test_irn import _randomise  # perturbs every trainable tensor (conv_weights too)

import irnbench
from irnbench import create_task
from irnbench.cli import cli
from irnbench_plugins.irn import IRN, InvRescaleNet
from irnbench_plugins.irn.blocks import ConvDownsampling, nchw_inference
from irnbench_plugins.irn.method import SCALES
from irnbench_plugins.irn.model import DEFAULT_BLOCKS

#: Trainable parameters of the official IRN_x3 (IJCV ``Inv_arch.py``).
X3_TRAINABLE = 3_139_029


def _image(c: int = 3, h: int = 48, w: int = 48, seed: int = 2) -> torch.Tensor:
    return torch.rand(1, c, h, w, generator=torch.Generator().manual_seed(seed))


def _dense_shapes(cin: int, cout: int, gc: int = 32) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of one official DenseBlock (five 3×3 convs with bias), by name."""
    shapes: dict[str, tuple[int, ...]] = {}
    for i in range(5):
        out = cout if i == 4 else gc
        shapes[f"conv{i + 1}.weight"] = (out, cin + i * gc, 3, 3)
        shapes[f"conv{i + 1}.bias"] = (out,)
    return shapes


def _official_x3_shapes() -> dict[str, tuple[int, ...]]:
    """The keys and shapes of the official IRN_x3 state dict, in forward order."""
    shapes: dict[str, tuple[int, ...]] = {"operations.0.conv_weights": (9, 9)}
    for op in range(1, 13):
        for sub, (cin, cout) in (("F", (24, 3)), ("G", (3, 24)), ("H", (3, 24))):
            for name, shape in _dense_shapes(cin, cout).items():
                shapes[f"operations.{op}.{sub}.{name}"] = shape
    return shapes


# -- the network -------------------------------------------------------------------------------
def test_scales_and_block_numbers():
    assert SCALES == (2, 3, 4, 8)
    assert DEFAULT_BLOCKS[3] == (12,)
    assert IRN.supports(create_task("rescale", scale=3))
    assert IRN.supports(create_task("compress", scale=3))
    with pytest.raises(ValueError, match="×3 and power-of-two"):
        InvRescaleNet(5)
    with pytest.raises(ValueError, match="×3 and power-of-two"):
        InvRescaleNet(6)
    with pytest.raises(ValueError, match="block_num"):
        InvRescaleNet(3, block_num=(8, 8))


def test_parameter_counts_match_the_official_x3():
    m = irnbench.create_method("irn", scale=3, pretrained=False)
    by_hand = 81 + 12 * sum(math.prod(s) for k, s in _official_x3_shapes().items()
                            if k.startswith("operations.1."))
    assert by_hand == X3_TRAINABLE
    assert m.num_parameters() == X3_TRAINABLE
    # no Haar stage at ×3 and W is learnable: nothing is frozen
    assert m.num_parameters(trainable_only=False) - X3_TRAINABLE == 0
    assert m.net.operations[0].conv_weights.requires_grad
    assert m.net.out_channels == 27 and len(m.net.operations) == 13
    assert m.lambda_fit == 9.0


def test_state_dict_maps_to_the_official_checkpoint():
    net = irnbench.create_method("irn", scale=3, pretrained=False).net
    state = net.state_dict()
    expected = _official_x3_shapes()
    assert len(state) == len(expected) == 361
    assert {k: tuple(v.shape) for k, v in state.items()} == expected
    assert list(state) == list(expected)  # forward order, F, G, H inside each coupling
    for key, shape in {"operations.1.F.conv1.weight": (32, 24, 3, 3),
                       "operations.12.F.conv5.weight": (3, 152, 3, 3),
                       "operations.5.G.conv1.weight": (32, 3, 3, 3),
                       "operations.7.G.conv5.weight": (24, 131, 3, 3),
                       "operations.9.H.conv5.weight": (24, 131, 3, 3)}.items():
        assert tuple(state[key].shape) == shape


def test_network_inverse_exact_with_random_weights():
    """fp32 round trip within 1e-5; W⁻¹ (entries up to ≈9) amplifies the couplings' fp32 error,
    so the perturbation is std 0.01 (it still moves the LR by > 0.1); float64 is exact."""
    torch.manual_seed(0)
    net = InvRescaleNet(3)
    _randomise(net, std=0.01)
    x = _image()
    with torch.no_grad():
        t = net(x)
        assert t.shape == (1, 27, 16, 16)
        assert (t[:, :3] - F.avg_pool2d(x, 3)).abs().max() > 0.1  # really perturbed
        torch.testing.assert_close(net.inverse(t), x, rtol=0, atol=1e-5)
        with nchw_inference():  # the CPU channels_last path above equals the NCHW one
            torch.testing.assert_close(net(x), t, rtol=0, atol=1e-5)
        net64, x64 = net.double(), x[..., :24, :24].double()
        torch.testing.assert_close(net64.inverse(net64(x64)), x64, rtol=0, atol=1e-10)


def test_degrade_at_init_is_the_box_mean():
    m = irnbench.create_method("irn", scale=3, pretrained=False)
    x = _image(h=48, w=39)
    with torch.no_grad():
        y = m.degrade(x)
    assert y.shape == (1, 3, 16, 13)
    torch.testing.assert_close(y, F.avg_pool2d(x, 3), rtol=0, atol=1e-6)


# -- ConvDownsampling ----------------------------------------------------------------------------
def test_conv_downsampling_init():
    down = ConvDownsampling(3)
    w = down.conv_weights.detach()
    expected = torch.eye(9)
    expected[0] = 1 / 9
    assert w.shape == (9, 9)
    torch.testing.assert_close(w, expected, rtol=0, atol=0)
    x = _image()
    with torch.no_grad():
        out = down(x)
    assert out.shape == (1, 27, 16, 16)
    torch.testing.assert_close(out[:, :3], F.avg_pool2d(x, 3), rtol=0, atol=1e-6)
    # the rest is the identity up to the order: subband k of colour c is pixel k of its block
    blocks = F.pixel_unshuffle(x, 3)
    for k in range(1, 9):
        for c in range(3):
            torch.testing.assert_close(out[:, k * 3 + c], blocks[:, c * 9 + k], rtol=0, atol=0)


def test_conv_downsampling_hand_computed_order():
    down = ConvDownsampling(3)
    v = torch.arange(9.0)
    with torch.no_grad():
        out = down(v.view(1, 1, 3, 3))
    assert out.shape == (1, 9, 1, 1)
    assert out.flatten().tolist() == pytest.approx([4.0, 1, 2, 3, 4, 5, 6, 7, 8])
    _randomise(down, std=0.3, seed=3)
    w = down.conv_weights.detach()
    x = torch.stack((v, 10 + v)).view(1, 2, 3, 3)  # two colour channels: 0..8 and 10..18
    with torch.no_grad():
        out = down(x).flatten()
    for k in range(9):  # channel k·C + c = row k of W applied to colour c's block
        assert float(out[2 * k]) == pytest.approx(float(w[k] @ v), abs=1e-5)
        assert float(out[2 * k + 1]) == pytest.approx(float(w[k] @ (10 + v)), abs=1e-5)


def test_conv_downsampling_inverse_exact_and_logdet():
    down = ConvDownsampling(3)
    _randomise(down, std=0.05, seed=4)
    w = down.conv_weights.detach()
    assert not torch.allclose(w, ConvDownsampling(3).conv_weights.detach())
    x = _image(h=48, w=45)
    with torch.no_grad():
        t = down(x)
        fwd_logdet = down.last_logdet
        back = down(t, rev=True)
    assert t.shape == (1, 27, 16, 15)
    torch.testing.assert_close(back, x, rtol=0, atol=1e-5)
    per_sample = 3 * 48 * 45 / 9 * torch.linalg.slogdet(w)[1]
    torch.testing.assert_close(fwd_logdet, per_sample, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(down.last_logdet, -per_sample, rtol=1e-5, atol=1e-4)
    at_init = ConvDownsampling(3)
    at_init(x)
    assert float(at_init.last_logdet) == pytest.approx(3 * 48 * 45 / 9 * math.log(1 / 9), rel=1e-5)


# -- runs end to end -----------------------------------------------------------------------------
@pytest.fixture
def odd_folder(tmp_path) -> Path:
    """Two small noisy PNGs whose sides are not multiples of 3."""
    root = tmp_path / "odd"
    root.mkdir()
    rng = np.random.default_rng(0)
    for name, (w, h) in {"a.png": (50, 47), "b.png": (64, 61)}.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3)).astype(np.uint8)).save(root / name)
    return root


def test_cli_run_bicubic_x3_modcrops_and_reports(odd_folder, tmp_path):
    import pandas as pd

    out = tmp_path / "run"
    res = CliRunner().invoke(cli, ["run", "--task", "rescale", "--scale", "3", "--plugins",
                                   "bicubic", "--datasets", str(odd_folder), "--quiet",
                                   "--device", "cpu", "--out", str(out)])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out / "results.csv")
    rows = df[df["source"] == "measured"].set_index("image")
    assert set(rows["setting"]) == {"x3"}
    assert (rows.loc["a.png", "width"], rows.loc["a.png", "height"]) == (48, 45)
    assert (rows.loc["b.png", "width"], rows.loc["b.png", "height"]) == (63, 60)
    assert "modcropped 50x47 → 48x45" in rows.loc["a.png", "notes"]
    assert rows["psnr_y"].notna().all() and np.isfinite(rows["psnr_y"]).all()
    html = (out / "report.html").read_text(encoding="utf-8")
    assert re.search(r"rescale · x3 · ", html), "the report has no ×3 leaderboard"


def test_cli_run_irn_x3_without_weights_names_the_train_command(odd_folder, tmp_path,
                                                                 hide_shipped_weights):
    hide_shipped_weights("irn")  # as if ×3 weights were shipped some day
    out = tmp_path / "run"
    res = CliRunner().invoke(cli, ["run", "--task", "rescale", "--scale", "3", "--plugins",
                                   "irn", "--datasets", str(odd_folder), "--quiet",
                                   "--device", "cpu", "--out", str(out)])
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    first = res.output.strip().splitlines()[0]
    assert first.startswith("Error: no weights for 'irn' on rescale x3"), res.output
    assert "irnbench train --plugin irn --task rescale --scale 3 --preset cpu" in res.output
    assert not (out / "results.csv").exists()


@pytest.fixture
def train_folder(tmp_path) -> Path:
    """Two training images ≥ 96 px (the second is the held-out one), sides not multiples of 3."""
    root = tmp_path / "train"
    root.mkdir()
    rng = np.random.default_rng(1)
    for i, (w, h) in enumerate([(100, 97), (112, 101)]):
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([xx * 2, yy * 2, xx + yy], 2) + rng.integers(0, 30, (h, w, 3))
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(root / f"{i}.png")
    return root


def test_paper_and_smoke_presets_fit_x3():
    presets = IRN.presets_for(create_task("rescale", scale=3))
    paper = presets["paper"]
    assert (paper.batch_size, paper.crop, paper.iterations) == (16, 144, 500_000)
    assert paper.crop % 3 == 0
    assert presets["smoke"].crop == 32  # the trainer rounds it down to 30 at ×3 (see below)


def test_train_smoke_x3_end_to_end(train_folder, tmp_path):
    from irnbench.data import resolve_dataset
    from irnbench.training.data import TrainingData
    from irnbench.training.loop import train_method

    task = create_task("rescale", scale=3)
    data = TrainingData(resolve_dataset(str(train_folder)), task)
    hr, ref = data.sample(0, seed=0, crop=32, augment=True)
    assert hr.shape == (3, 30, 30) and ref.shape == (3, 10, 10)  # crop 32 → 30 at ×3

    # 3 of the preset's 6 steps (time): one checkpoint (every 2) and one validation (every 3)
    res = train_method("irn", "rescale", scale=3, preset="smoke", datasets=str(train_folder),
                       out=tmp_path / "out", install=False, progress=False, iterations=3)
    assert res.iterations == 3 and res.weights.is_file()
    assert all(math.isfinite(h["total"]) for h in res.history)
    assert any("val_psnr_y" in h for h in res.history)
    trained = irnbench.create_method("irn", scale=3, weights=res.weights)
    fresh = ConvDownsampling(3).conv_weights.detach()
    assert not torch.equal(trained.net.operations[0].conv_weights.detach(), fresh)  # W learns
    with torch.no_grad():
        y = trained.degrade(_image(h=30, w=30))
        x_hat = trained.restore(y, generator=torch.Generator().manual_seed(0))
    assert y.shape == (1, 3, 10, 10) and x_hat.shape == (1, 3, 30, 30)
    assert torch.isfinite(x_hat).all()
