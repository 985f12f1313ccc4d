"""IRN plugin: architecture facts, exact invertibility, initial behaviour, losses and gradients
(what every method must do is tests/test_method_contract.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from irnbench import create_task
from irnbench.errors import InvalidSetting
from irnbench.ops.quantize import quantize
from irnbench_plugins.irn import IRN, DenseBlock, HaarDownsampling, InvBlockExp, InvRescaleNet


def _method(scale: int) -> IRN:
    torch.manual_seed(0)
    return IRN(create_task("rescale", scale=scale))


@torch.no_grad()
def _randomise(module: torch.nn.Module, std: float = 0.02, seed: int = 1) -> None:
    """Perturb every trainable weight (zero-init conv5 would make every coupling the identity)."""
    g = torch.Generator().manual_seed(seed)
    for p in module.parameters():
        if p.requires_grad:
            p.add_(torch.randn(p.shape, generator=g) * std)


def _image(b: int = 1, h: int = 32, w: int = 32, seed: int = 2) -> torch.Tensor:
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


# -- architecture ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "scale, trainable, frozen", [(2, 1_667_952, 48), (4, 4_355_136, 240), (8, 11_119_248, 1008)]
)
def test_parameter_counts(scale, trainable, frozen):
    m = _method(scale)
    assert m.num_parameters() == trainable
    assert m.num_parameters(trainable_only=False) - trainable == frozen
    assert all(not p.requires_grad for n, p in m.named_parameters() if "haar" in n)
    assert m.net.out_channels == 3 * scale**2


def test_unsupported_scale():
    assert IRN.supports(create_task("rescale", scale=3))  # ×3: tests/test_irn_x3.py
    assert IRN.supports(create_task("rescale", scale=4))
    assert not IRN.supports(create_task("decolorize"))
    with pytest.raises(InvalidSetting):
        IRN(create_task("decolorize"))
    with pytest.raises(ValueError):
        InvRescaleNet(5)
    with pytest.raises(InvalidSetting):
        IRN(create_task("rescale", scale=2), bogus=1)


# -- Haar -----------------------------------------------------------------------------------
def test_haar_values_and_subband_major_order():
    haar = HaarDownsampling(2)
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[5.0, 7.0], [11.0, 13.0]]]])  # 1×2×2×2
    out = haar(x).flatten()
    # channel k·C + c: LL of both input channels, then each detail band for both channels.
    expected = torch.tensor([2.5, 9.0, -0.5, -1.0, -1.0, -3.0, 0.0, 0.0])
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(haar(haar(x), rev=True), x)


def test_haar_inverse_exact():
    haar = HaarDownsampling(3)
    x = _image(2, 8, 12)
    y = haar(x)
    assert y.shape == (2, 12, 4, 6)
    torch.testing.assert_close(haar(y, rev=True), x, rtol=0, atol=1e-6)
    assert haar.haar_weights.numel() == 48 and not haar.haar_weights.requires_grad


# -- couplings --------------------------------------------------------------------------------
def test_dense_block_init():
    torch.manual_seed(0)
    db = DenseBlock(9, 3)
    assert torch.count_nonzero(db.conv5.weight) == 0 and torch.count_nonzero(db.conv5.bias) == 0
    assert torch.count_nonzero(db.conv1.bias) == 0
    assert db(torch.rand(1, 9, 6, 6)).abs().max() == 0
    # Xavier-normal ×0.1: std ≈ 0.1·sqrt(2 / (fan_in + fan_out)).
    fan_in, fan_out = 9 * 9, 32 * 9
    std = 0.1 * (2.0 / (fan_in + fan_out)) ** 0.5
    assert db.conv1.weight.std().item() == pytest.approx(std, rel=0.1)


def test_inv_block_inverse_exact():
    torch.manual_seed(0)
    block = InvBlockExp(12, 3)
    _randomise(block, std=0.05)
    x = torch.randn(2, 12, 8, 8)
    y = block(x)
    assert not torch.allclose(y, x)
    torch.testing.assert_close(block(y, rev=True), x, rtol=0, atol=1e-5)


def test_inv_block_custom_subnet_and_split():
    calls = []

    def subnet(cin, cout):
        calls.append((cin, cout))
        return torch.nn.Conv2d(cin, cout, 3, padding=1)

    block = InvBlockExp(3, 1, subnet=subnet)  # IRN-Color's coupling
    assert calls == [(2, 1), (1, 2), (1, 2)]  # F, G, H
    x = torch.randn(1, 3, 5, 5)
    torch.testing.assert_close(block(block(x), rev=True), x, rtol=0, atol=1e-5)


@pytest.mark.parametrize("scale", [2, 4])
def test_network_inverse_exact_with_random_weights(scale):
    torch.manual_seed(0)
    net = InvRescaleNet(scale)
    _randomise(net)
    x = _image()
    with torch.no_grad():
        t = net(x)
        assert t.shape == (1, 3 * scale**2, 32 // scale, 32 // scale)
        assert not torch.allclose(t[:, :3], F.avg_pool2d(x, scale), atol=1e-3)  # really perturbed
        torch.testing.assert_close(net.inverse(t), x, rtol=0, atol=1e-5)


@pytest.mark.parametrize("scale", [2, 4])
def test_cpu_inference_layout_matches_nchw(scale):
    """CPU inference runs the couplings in channels_last; the result equals the NCHW path."""
    from irnbench_plugins.irn.blocks import inference_layout, nchw_inference

    torch.manual_seed(0)
    net = InvRescaleNet(scale)
    _randomise(net)
    x = _image(h=48, w=40)
    with torch.no_grad():
        assert inference_layout(x).is_contiguous(memory_format=torch.channels_last)
        t, back = net(x), net.inverse(net(x))
        with nchw_inference():
            assert inference_layout(x) is x
            t_ref, back_ref = net(x), net.inverse(net(x))
    assert inference_layout(x.requires_grad_()) is x  # training keeps the default layout
    torch.testing.assert_close(t, t_ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(back, back_ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(back, x.detach(), rtol=0, atol=1e-5)


# -- method behaviour -------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [2, 4])
def test_degrade_at_init_is_box_average(scale):
    m = _method(scale)
    x = _image()
    with torch.no_grad():
        y = m.degrade(x)
    torch.testing.assert_close(y, F.avg_pool2d(x, scale), rtol=0, atol=1e-6)


def test_restore_at_temperature_zero_is_z_zero():
    m = _method(2)
    _randomise(m)
    y = quantize(m.degrade(_image()).detach())
    with torch.no_grad():
        t0 = m.restore(y, temperature=0.0, generator=torch.Generator().manual_seed(7))
        t0b = m.restore(y, temperature=0.0, quality=90)  # channel info is ignored
        zero = m.restore_with_z(y, torch.zeros(1, 9, 16, 16))
    torch.testing.assert_close(t0, t0b, rtol=0, atol=0)
    torch.testing.assert_close(t0, zero, rtol=0, atol=0)
    assert m.latent_shape(y) == (1, 9, 16, 16)


def test_training_loss_matches_hand_computation():
    task = create_task("rescale", scale=2)
    m = _method(2)
    _randomise(m)
    hr = _image(b=2)
    lr_ref = task.reference(hr)
    losses = m.training_loss(
        {"hr": hr, "lr_ref": lr_ref, "generator": torch.Generator().manual_seed(11)}, task
    )
    with torch.no_grad():
        out = m.net(hr)
        y, z = out[:, :3], out[:, 3:]
        fit = 4.0 * ((y - lr_ref) ** 2).sum() / 2
        ce = (z**2).sum() / 2
        z2 = torch.randn(z.shape, generator=torch.Generator().manual_seed(11))
        x_hat = m.net.inverse(torch.cat([quantize(y), z2], 1))[:, :3]
        rec = torch.sqrt((x_hat - hr) ** 2 + 1e-6).sum() / 2
    assert set(losses) == {"total", "fit", "ce", "rec"}
    torch.testing.assert_close(losses["fit"], fit)
    torch.testing.assert_close(losses["ce"], ce)
    torch.testing.assert_close(losses["rec"], rec)
    torch.testing.assert_close(losses["total"], fit + ce + rec)


def test_gradients_flow_through_straight_through_channel():
    task = create_task("rescale", scale=2)
    m = _method(2)
    hr = _image(b=2, h=16, w=16)
    batch = {"hr": hr, "lr_ref": task.reference(hr), "generator": torch.Generator().manual_seed(3)}

    captured = {}

    class SpyTask(type(task)):
        def channel(self, y, train=False, **kw):
            y.register_hook(lambda g: captured.setdefault("y", g))
            return super().channel(y, train=train, **kw)

    spy = SpyTask(scale=2)
    m.training_loss(batch, spy)["rec"].backward()
    assert torch.isfinite(captured["y"]).all() and captured["y"].abs().sum() > 0
    f_grads = [p.grad for p in m.net.operations[1].F.parameters() if p.grad is not None]
    assert f_grads and sum(g.abs().sum() for g in f_grads) > 0

    m.zero_grad()
    m.training_loss(batch, task)["total"].backward()
    norm = torch.nn.utils.clip_grad_norm_(m.parameters(), 10.0)
    assert torch.isfinite(norm) and norm > 0


# -- presets -------------------------------------------------------------------------------------
def test_paper_preset_is_the_official_schedule():
    p = IRN.presets["paper"]
    assert (p.iterations, p.batch_size, p.crop, p.lr, p.weight_decay, p.grad_clip) == (
        500_000,
        16,
        144,
        2e-4,
        1e-5,
        10.0,
    )
    assert p.milestones == (100_000, 200_000, 300_000, 400_000) and p.gamma == 0.5
    for preset in IRN.presets.values():
        for s in (2, 4):
            assert preset.crop % (2 * s) == 0


def test_latent_probe_script_reports_each_temperature(tmp_path, capsys):
    """scripts/irn_latent_probe.py: one row per image and temperature, numbers that parse."""
    import numpy as np
    from conftest import load_script
    from PIL import Image

    mod = load_script("irn_latent_probe")
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{name}.png")
    mod.probe(2, None, str(tmp_path), [0.0, 0.5, 1.0], {"b.png"})
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| b.png")]
    assert [r.split("|")[4].strip() for r in rows] == ["0", "0.5", "1"]
    for r in rows:
        cells = r.split("|")
        assert float(cells[2]) > 0  # z std
        assert len([float(v) for v in cells[5].split(",")]) == 3  # bias per channel
        assert all(0 < float(v) < 100 for v in cells[6].split("/"))  # PSNR per channel
