"""TAR plugin: TAD/TAU in every configuration, the joint loss and its gradients,
configuration, presets and parameter counts (what every method must do is
tests/test_method_contract.py)."""

from __future__ import annotations

import pytest
import torch

from irnbench import create_task
from irnbench.errors import InvalidSetting
from irnbench_plugins.tar import TAD, TAR, TAU, TARConfig


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _tar(scale: int, config: str = "smoke", **kw) -> TAR:
    torch.manual_seed(0)
    return TAR(create_task("rescale", scale=scale), config=config, **kw)


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("config", ["cpu", "paper"])
def test_every_config_degrades_and_restores(scale, config):
    """The contract runs the ``smoke`` configuration; the others here, and the size check."""
    m = _tar(scale, config).eval()
    hw = (36, 44)
    x = torch.rand(2, 3, *hw, generator=_gen(1))
    with torch.no_grad():
        y = m.degrade(x)
        out = m.restore(m.task.channel(y))
    assert y.shape == (2, 3, hw[0] // scale, hw[1] // scale)
    assert out.shape == x.shape
    with pytest.raises(ValueError):
        m.degrade(torch.rand(1, 3, 32 + scale // 2, 32))


def test_tad_is_the_port_at_x2():
    """×2 with 64 features: conv 3→8, conv 8→16, space-to-depth → 64 channels, no projection."""
    tad = TAD(2, TARConfig())
    assert isinstance(tad.proj, torch.nn.Identity)
    assert [m.out_channels for m in tad.head if isinstance(m, torch.nn.Conv2d)] == [8, 16]
    assert isinstance(TAD(4, TARConfig()).proj, torch.nn.Conv2d)  # 256 → 64 at ×4
    tau = TAU(4, TARConfig())
    assert sum(isinstance(m, torch.nn.PixelShuffle) for m in tau.upsample) == 2


class _SpyTask:
    def __init__(self, task):
        self.task, self.calls = task, []

    def channel(self, y, **kw):
        self.calls.append(kw)
        return self.task.channel(y, **kw)


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("config", ["smoke", "cpu"])
def test_training_loss_and_backward(scale, config):
    m = _tar(scale, config).train()
    task = _SpyTask(m.task)
    hr = torch.rand(2, 3, 32, 32, generator=_gen(2))
    lr_ref = m.task.reference(hr)
    losses = m.training_loss({"hr": hr, "lr_ref": lr_ref, "generator": _gen(0)}, task)
    assert set(losses) == {"total", "rec", "guide"}
    assert all(torch.isfinite(v) for v in losses.values())
    assert task.calls == [{"train": True, "quantizer": "ste"}]
    with torch.no_grad():
        lr = m.downscaler(hr)
        assert losses["guide"] == pytest.approx(float((lr - lr_ref).abs().mean()), rel=1e-5)
        x_hat = m.upscaler(m.task.channel(lr))
        assert losses["rec"] == pytest.approx(float((x_hat - hr).abs().mean()), rel=1e-5)
    losses["total"].backward()
    for part in (m.downscaler, m.upscaler):
        grads = [p.grad for p in part.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)


def test_reconstruction_gradient_reaches_the_downscaler():
    """With λ = 0 only the rec term remains; it must still train TAD (straight-through Q)."""
    m = _tar(2, lambda_guide=0.0, quantizer="soft").train()
    task = _SpyTask(m.task)
    hr = torch.rand(1, 3, 16, 16, generator=_gen(3))
    losses = m.training_loss({"hr": hr, "lr_ref": m.task.reference(hr)}, task)
    assert float(losses["guide"].detach()) == 0 and task.calls[0]["quantizer"] == "soft"
    losses["total"].backward()
    assert m.downscaler.tail.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "scale, config, total",
    [(2, "paper", 671_350), (4, "paper", 835_510), (2, "cpu", 191_062), (4, "cpu", 234_198)],
)
def test_parameter_counts(scale, config, total):
    assert _tar(scale, config).num_parameters() == total


def test_options_and_supported_scales():
    assert not TAR.supports(create_task("rescale", scale=3))
    with pytest.raises(InvalidSetting):
        TAR(create_task("rescale", scale=3))
    with pytest.raises(InvalidSetting):
        _tar(2, bogus=1)
    with pytest.raises(InvalidSetting):
        _tar(2, quantizer="hard")
    m = _tar(4, "smoke", tau_blocks=3, lambda_guide=0.5)
    assert m.cfg.tau_blocks == 3 and m.lambda_guide == 0.5


def test_state_dict_carries_the_configuration():
    src = _tar(2, "smoke")
    dst = _tar(2, "paper")
    dst.load_state_dict(src.state_dict())
    assert dst.cfg == src.cfg == TARConfig.from_tensor(src.state_dict()["arch"])
    assert dst.num_parameters() == src.num_parameters()
    x = torch.rand(1, 3, 16, 16, generator=_gen(4))
    with torch.no_grad():
        assert torch.equal(dst.restore(dst.degrade(x)), src.restore(src.degrade(x)))


def test_presets():
    p = TAR.presets
    assert set(p) >= {"paper", "cpu", "smoke"}
    for pre in p.values():
        assert pre.crop % 4 == 0
    assert p["cpu"].options == {"config": "cpu"} and p["smoke"].iterations <= 10
