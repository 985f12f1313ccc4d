"""CAR plugin: the adaptive grid sampler against a per-pixel loop, gradients, chunking, the
resampler's kernels, output sizes off the ×8 grid, losses, presets and parameter counts (what
every method must do is tests/test_method_contract.py)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

import irnbench_plugins.car as car_plugin
from irnbench import create_task
from irnbench.errors import InvalidSetting
from irnbench.training.loop import lr_factor
from irnbench_plugins.car import (
    CAR,
    EDSR,
    CARConfig,
    ResamplerNet,
    adaptive_grid_sample,
    offset_loss,
    tv_loss,
)
from irnbench_plugins.car.model import RGB_MEAN


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _sampler_inputs(b, c, h_lr, w_lr, s, k, dtype=torch.float64, seed=0):
    """Random image, normalised non-negative kernels, offsets uniform in (−1, 1)."""
    g = _gen(seed)
    img = torch.rand(b, c, h_lr * s, w_lr * s, generator=g, dtype=dtype)
    kernels = torch.rand(b, k * k, h_lr, w_lr, generator=g, dtype=dtype)
    kernels = kernels / kernels.sum(1, keepdim=True)
    dx = torch.rand(b, k * k, h_lr, w_lr, generator=g, dtype=dtype) * 2 - 1
    dy = torch.rand(b, k * k, h_lr, w_lr, generator=g, dtype=dtype) * 2 - 1
    return img, kernels, dx, dy


def _loop_sampler(img, kernels, dx, dy, s):
    """Direct per-pixel, per-tap implementation of CAR's adaptive grid sampler (numpy, float64)."""
    img, kernels, dx, dy = (t.detach().double().numpy() for t in (img, kernels, dx, dy))
    b, c, _, _ = img.shape
    k2, h, w = kernels.shape[1:]
    k = math.isqrt(k2)
    p = k // 2
    pad = np.pad(img, ((0, 0), (0, 0), (p, p), (p, p)), mode="reflect")  # edge not repeated
    hp, wp = pad.shape[-2:]
    out = np.zeros((b, c, h, w))
    hits = 0
    for n in range(b):
        for i in range(h):
            for j in range(w):
                acc = np.zeros(c)
                for t in range(k2):
                    a, bb = divmod(t, k)
                    x = (j + 0.5) * s - 0.5 + bb + s * dx[n, t, i, j]
                    y = (i + 0.5) * s - 0.5 + a + s * dy[n, t, i, j]
                    hits += x < 0 or y < 0 or x > wp - 1 or y > hp - 1
                    x0, y0 = math.floor(x), math.floor(y)
                    al, be = x - x0, y - y0
                    xl = min(max(x0, 0), wp - 1)
                    xr = min(max(xl + 1, 0), wp - 1)
                    yt = min(max(y0, 0), hp - 1)
                    yb = min(max(yt + 1, 0), hp - 1)
                    v = ((1 - al) * (1 - be) * pad[n, :, yt, xl] + al * (1 - be) * pad[n, :, yt, xr]
                         + (1 - al) * be * pad[n, :, yb, xl] + al * be * pad[n, :, yb, xr])
                    acc += kernels[n, t, i, j] * v
                out[n, :, i, j] = acc
    return torch.from_numpy(out), hits


# -- the sampler ----------------------------------------------------------------------------
@pytest.mark.parametrize("s, h_lr, w_lr", [(2, 5, 6), (4, 4, 3)])
def test_sampler_matches_per_pixel_loop(s, h_lr, w_lr):
    k = 3 * s + 1  # 7 and 13
    img, kernels, dx, dy = _sampler_inputs(2, 3, h_lr, w_lr, s, k, seed=s)
    ref, hits = _loop_sampler(img, kernels, dx, dy, s)
    assert hits > 0  # some taps leave the padded image: the edge rule is exercised
    out = adaptive_grid_sample(img, kernels, dx, dy, s)
    assert out.shape == (2, 3, h_lr, w_lr)
    assert (out - ref).abs().max() < 1e-10
    out32 = adaptive_grid_sample(*(t.float() for t in (img, kernels, dx, dy)), s)
    assert (out32.double() - ref).abs().max() < 1e-5


def test_sampler_edge_rule_by_hand():
    """α from the unclamped coordinate, indices clamped: x = −0.3 blends I[0]·0.3 + I[1]·0.7."""
    img = torch.tensor([[[[1.0, 2.0], [3.0, 5.0]]]])
    kernels = torch.ones(1, 1, 1, 1)  # k = 1: no padding, one tap
    dx = torch.full((1, 1, 1, 1), -0.4)  # x = 0.5 + 2·(−0.4) = −0.3
    dy = torch.zeros(1, 1, 1, 1)  # y = 0.5
    out = adaptive_grid_sample(img, kernels, dx, dy, 2)
    expected = 0.5 * (0.3 * 1 + 0.7 * 2) + 0.5 * (0.3 * 3 + 0.7 * 5)
    assert out.item() == pytest.approx(expected, abs=1e-6)
    # grid_sample's border rule would give I[0] only along x: the two rules differ here.
    assert abs(out.item() - 0.5 * (1 + 3)) > 0.5


def test_sampler_zero_offsets_is_a_plain_filter():
    """With zero offsets a one-hot kernel on the centre-ish tap picks HR pixels."""
    s, k = 2, 7
    img, kernels, dx, dy = _sampler_inputs(1, 3, 4, 4, s, k, dtype=torch.float32)
    one_hot = torch.zeros_like(kernels)
    t = (k // 2) * k + k // 2  # tap (p, p) sits at HR (i·s + s/2 − 0.5): between two pixels
    one_hot[:, t] = 1
    out = adaptive_grid_sample(img, one_hot, dx * 0, dy * 0, s)
    expected = img.unfold(2, 2, 2).unfold(3, 2, 2).mean((-1, -2))  # bilinear at the 2×2 centre
    assert torch.allclose(out, expected, atol=1e-6)


def test_sampler_gradcheck():
    """float64, w.r.t. image, kernels and offsets; k = 3 with offsets up to ±s hits the edges."""
    img, kernels, dx, dy = _sampler_inputs(1, 2, 2, 2, 2, 3, seed=3)
    assert _loop_sampler(img, kernels, dx, dy, 2)[1] > 0
    inputs = tuple(t.clone().requires_grad_(True) for t in (img, kernels, dx, dy))
    assert torch.autograd.gradcheck(
        lambda *a: adaptive_grid_sample(*a, 2, chunk_taps=4), inputs, eps=1e-6, atol=1e-5
    )


@pytest.mark.parametrize("chunk", [1, 7, 50, 169, 1000])
def test_sampler_chunking_gives_the_same_result(chunk):
    img, kernels, dx, dy = _sampler_inputs(2, 3, 4, 5, 4, 13, dtype=torch.float32, seed=4)
    full = adaptive_grid_sample(img, kernels, dx, dy, 4, chunk_taps=169)
    out = adaptive_grid_sample(img, kernels, dx, dy, 4, chunk_taps=chunk)
    assert torch.allclose(out, full, atol=1e-6)


def test_sampler_auto_chunk_bounds_memory(monkeypatch):
    import irnbench_plugins.car.sampler as sampler_mod

    img, kernels, dx, dy = _sampler_inputs(1, 3, 4, 4, 4, 13, dtype=torch.float32, seed=5)
    full = adaptive_grid_sample(img, kernels, dx, dy, 4)
    seen = []
    real_gather = torch.Tensor.gather

    def spy(self, dim, index, *a, **kw):
        seen.append(index.numel())
        return real_gather(self, dim, index, *a, **kw)

    monkeypatch.setattr(sampler_mod, "DEFAULT_CHUNK_ELEMENTS", 3 * 16 * 10)  # 10 taps a chunk
    monkeypatch.setattr(torch.Tensor, "gather", spy)
    out = adaptive_grid_sample(img, kernels, dx, dy, 4)
    assert max(seen) <= 3 * 16 * 10 and len(seen) == 4 * math.ceil(169 / 10)
    assert torch.allclose(out, full, atol=1e-6)


def test_sampler_rejects_bad_shapes():
    img, kernels, dx, dy = _sampler_inputs(1, 3, 4, 4, 2, 7, dtype=torch.float32)
    with pytest.raises(ValueError):
        adaptive_grid_sample(img, kernels, dx, dy, 4)
    with pytest.raises(ValueError):
        adaptive_grid_sample(img, kernels[:, :48], dx[:, :48], dy[:, :48], 2)


# -- the resampler, EDSR and the method -----------------------------------------------------
def _car(scale: int, config: str = "smoke", **kw) -> CAR:
    torch.manual_seed(0)
    return CAR(create_task("rescale", scale=scale), config=config, **kw)


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("config", ["smoke", "paper"])
def test_kernels_non_negative_and_normalised(scale, config):
    net = ResamplerNet(scale, car_plugin.CONFIGS[config])
    with torch.no_grad():
        kernels, dx, dy = net(torch.rand(2, 3, 32, 40, generator=_gen(6)))
    k = 3 * scale + 1
    assert kernels.shape == dx.shape == dy.shape == (2, k * k, 32 // scale, 40 // scale)
    assert (kernels >= 0).all()
    assert torch.allclose(kernels.sum(1), torch.ones(2, 32 // scale, 40 // scale), atol=1e-5)
    assert dx.abs().max() < 1 and dy.abs().max() < 1


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("hw", [(32, 32), (36, 44), (40, 24)])
def test_output_sizes(scale, hw):
    """HR sizes that are multiples of the scale but not of 8 are padded internally."""
    m = _car(scale).eval()
    x = torch.rand(1, 3, *hw, generator=_gen(7))
    with torch.no_grad():
        kernels, _, _ = m.resample_params(x)
        y = m.degrade(x)
        out = m.restore(y)
    assert kernels.shape[-2:] == (hw[0] // scale, hw[1] // scale)
    assert y.shape == (1, 3, hw[0] // scale, hw[1] // scale)
    assert out.shape == x.shape


def test_padding_is_only_for_the_resampler():
    """On a ×8 size the pipeline is the released one; on other sizes the grid is cropped back."""
    m = _car(2).eval()
    x = torch.rand(1, 3, 34, 46, generator=_gen(8))
    with torch.no_grad():
        kernels, dx, dy = m.resample_params(x)
        xp = torch.nn.functional.pad(x, (0, 2, 0, 6), mode="reflect")
        kp, _, _ = m.resampler(xp)
        assert torch.equal(kernels, kp[..., :17, :23])
        assert torch.allclose(m.degrade(x), adaptive_grid_sample(x, kernels, dx, dy, 2))
    with pytest.raises(ValueError):
        m.degrade(torch.rand(1, 3, 33, 46))


@pytest.mark.parametrize("scale", [2, 4])
def test_edsr_shapes_and_mean_shift(scale):
    mean = torch.tensor(RGB_MEAN).view(1, 3, 1, 1).expand(2, 3, 5 * scale, 7 * scale)
    for mean_conv in (True, False):  # the released frozen 1×1 convs, or fixed buffers
        net = EDSR(scale, blocks=2, feats=8, res_scale=0.1, mean_conv=mean_conv)
        y = torch.rand(2, 3, 5, 7)
        assert net(y).shape == (2, 3, 5 * scale, 7 * scale)
        with torch.no_grad():  # zero convs: output is the mean (global skip around the body)
            for p in net.parameters():
                if p.requires_grad:
                    p.zero_()
        assert torch.allclose(net(y), mean)


def test_restore_tiled_equals_untiled():
    m = _car(2, "cpu").eval()
    y = torch.rand(1, 3, 40, 36, generator=_gen(9))
    with torch.no_grad():
        full = m.restore(y)
        m.opts = replace(m.opts, tile=32)  # HR side 32: 16 LR pixels, overlap = EDSR's radius
        tiled = m.restore(y)
    assert torch.allclose(full, tiled, atol=1e-5)


# -- losses and training ----------------------------------------------------------------------
def test_offset_and_tv_losses():
    k = 7
    dx = torch.zeros(1, k * k, 3, 3)
    dy = torch.zeros(1, k * k, 3, 3)
    kernels = torch.full((1, k * k, 3, 3), 1 / k**2)
    assert offset_loss(dx, dy) == pytest.approx(0, abs=1e-4)  # √1e-12 per tap only
    assert tv_loss(kernels, dx, dy) == 0
    centre = (k // 2) * k + k // 2
    dx[:, centre] = 0.5  # the centre tap moves for free
    assert offset_loss(dx, dy) == pytest.approx(0, abs=1e-4)
    dx[:, 0] = 0.5  # a corner tap pays its distance / k
    assert offset_loss(dx, dy) == pytest.approx(0.5 * math.hypot(3, 3) / k, rel=1e-4)
    dy[:, :, 0, 0] = 1.0  # one pixel differs from its right and lower neighbours
    assert tv_loss(kernels, dx, dy) == pytest.approx(2.0, rel=1e-5)  # Σ_t K_t·(1 + 1)


class _SpyTask:
    """Wraps a task and records how the training channel was asked for."""

    def __init__(self, task):
        self.task, self.calls = task, []

    def channel(self, y, **kw):
        self.calls.append(kw)
        return self.task.channel(y, **kw)


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("config", ["smoke", "cpu"])
def test_training_loss_and_backward(scale, config):
    m = _car(scale, config).train()
    task = _SpyTask(m.task)
    side = 32 if config == "smoke" else 16
    hr = torch.rand(2, 3, side, side, generator=_gen(10))
    batch = {"hr": hr, "lr_ref": m.task.reference(hr), "generator": _gen(0)}
    losses = m.training_loss(batch, task)
    assert set(losses) == {"total", "l1", "tv", "offset"}
    assert all(torch.isfinite(v) for v in losses.values())
    assert task.calls == [{"train": True, "quantizer": "soft"}]
    losses["total"].backward()
    # The gradient reaches the resampler through the soft-round channel and the sampler.
    for part in (m.resampler.enc, m.resampler.kernels_head, m.resampler.offsets_h_head,
                 m.upscaler.tail):
        grads = [p.grad for p in part.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)


# -- configuration, presets, parameter counts ---------------------------------------------------
def test_parameter_counts_paper_config():
    """The released shapes: EDSR alone matches IRN's quoted 40.7M / 43.1M exactly; the totals are
    within 0.6 % of the quoted CAR & EDSR 51.1M / 52.8M (the resampler is ≈ 10M)."""
    counts = {}
    for scale, quoted_total, quoted_edsr in [(2, 51.1e6, 40.7e6), (4, 52.8e6, 43.1e6)]:
        m = _car(scale, "paper")
        res = sum(p.numel() for p in m.resampler.parameters() if p.requires_grad)
        up = sum(p.numel() for p in m.upscaler.parameters() if p.requires_grad)
        counts[scale] = (res, up, m.num_parameters())
        # the released frozen mean-shift convs (12 tensors each: resampler 1, EDSR 2)
        assert m.num_parameters() == res + up == m.num_parameters(trainable_only=False) - 36
        assert round(up / 1e5) == round(quoted_edsr / 1e5)
        assert abs(m.num_parameters() / quoted_total - 1) < 0.006
        assert 9.5e6 < res < 11e6
    assert counts == {2: (10_645_651, 40_729_603, 51_375_254),
                      4: (9_896_443, 43_089_923, 52_986_366)}


@pytest.mark.parametrize("scale, total", [(2, 651_094), (4, 795_966)])
def test_parameter_counts_cpu_config(scale, total):
    m = _car(scale, "cpu")
    assert m.num_parameters() == total
    assert m.cfg.edsr_blocks == 4 and m.cfg.edsr_feats == 32


def test_options_and_supported_scales():
    assert not CAR.supports(create_task("rescale", scale=3))
    assert CAR.supports(create_task("rescale", scale=2))
    with pytest.raises(InvalidSetting):
        CAR(create_task("rescale", scale=3), config="smoke")
    with pytest.raises(InvalidSetting):
        _car(2, bogus=1)
    with pytest.raises(InvalidSetting):
        _car(2, config="huge")
    m = _car(4, "smoke", edsr_blocks=2, lambda_tv=0.0)
    assert m.cfg.edsr_blocks == 2 and m.lambda_tv == 0.0
    assert m.kernel_size == 13


def test_state_dict_carries_the_configuration():
    src = _car(2, "smoke", edsr_blocks=2)
    dst = _car(2, "cpu")
    dst.load_state_dict(src.state_dict())
    assert dst.cfg == src.cfg and dst.cfg == CARConfig.from_tensor(src.state_dict()["arch"])
    x = torch.rand(1, 3, 16, 16, generator=_gen(11))
    with torch.no_grad():
        assert torch.equal(dst.restore(dst.degrade(x)), src.restore(src.degrade(x)))


def test_presets():
    p = CAR.presets
    assert set(p) >= {"paper", "paper-x2", "cpu", "smoke"}
    assert (p["paper"].crop, p["paper"].batch_size) == (192, 16)
    assert (p["paper-x2"].crop, p["paper-x2"].batch_size) == (96, 24)
    for name in ("paper", "paper-x2"):
        pre = p[name]
        assert pre.lr == 1e-4 and pre.options == {"config": "paper"}
        n = pre.iterations
        rates = [pre.lr * lr_factor(int(f * n), pre) for f in (0.1, 0.3, 0.5, 0.7, 0.9)]
        assert rates == pytest.approx([1e-4, 5e-5, 1e-5, 5e-6, 1e-6], rel=3e-3)
    for pre in p.values():  # crops fit both scales and the ×8 encoder
        assert pre.crop % 8 == 0
    assert p["cpu"].options == {"config": "cpu"} and p["smoke"].iterations <= 10
