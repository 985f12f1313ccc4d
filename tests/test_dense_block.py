"""DenseBlock's CPU inference path equals the plain (official) forward, ``DenseBlockReference``.

The inference path (``DenseBlock._forward_inference``) runs on CPU fp32 outside autograd, as
Winograd F(2x2, 3x3) where the AVX-512 kernel builds (``_forward_winograd``), else as oneDNN
convs summed over feature-map pieces with conv5's taps as output channels
(``_forward_pieces``); the ``path`` fixture runs a test on each. Everything else runs the plain
forward. Tolerances: 1e-5 on a block's output and the LR, 1e-4 relative on the HR.
"""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
import torch.nn.functional as F

import irnbench_plugins.irn.blocks as blocks
from irnbench import create_task
from irnbench.ops import winograd
from irnbench_plugins.irn import IRN, InvRescaleNet
from irnbench_plugins.irn.blocks import DenseBlock, DenseBlockReference, nchw_inference

pytestmark = pytest.mark.skipif(not blocks._onednn_ops(),
                                reason="the inference path needs PyTorch's oneDNN ops (x86-64)")

LR_TOL, HR_TOL = 1e-5, 1e-4
KEYS = [f"conv{i}.{p}" for i in range(1, 6) for p in ("weight", "bias")]


@torch.no_grad()
def _randomise(module: torch.nn.Module, std: float = 0.05, seed: int = 1) -> None:
    """Perturb every trainable weight: conv5 starts at zero, which would hide most of the block."""
    g = torch.Generator().manual_seed(seed)
    for p in module.parameters():
        if p.requires_grad:
            p.add_(torch.randn(p.shape, generator=g) * std)


def _pair(cin: int, cout: int, gc: int = 32, bias: bool = True
          ) -> tuple[DenseBlock, DenseBlockReference]:
    torch.manual_seed(0)
    new = DenseBlock(cin, cout, gc, bias)
    _randomise(new)
    old = DenseBlockReference(cin, cout, gc, bias)
    old.load_state_dict(new.state_dict(), strict=True)
    return new, old


def _input(b: int, c: int, h: int, w: int, layout: str, seed: int = 2) -> torch.Tensor:
    x = torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))
    return x.contiguous(memory_format=torch.channels_last) if layout == "channels_last" else x


@pytest.fixture(params=["winograd", "pieces"])
def path(request, monkeypatch) -> str:
    """Which inference path a test runs: the Winograd kernel, or oneDNN pieces without it."""
    if request.param == "winograd" and not winograd.available():
        pytest.skip(f"the Winograd kernel is unavailable here: {winograd.unavailable_reason()}")
    if request.param == "pieces":
        monkeypatch.setenv("IRNBENCH_WINOGRAD", "0")
    return request.param


@pytest.fixture
def spy(monkeypatch, request) -> dict[str, int]:
    """Counts the calls of the inference path (so a test knows which path it compared), and
    checks at the end that each took the ``path`` the test asked for."""
    calls = {"n": 0, "winograd": 0, "pieces": 0}
    for name, method in (("n", "_forward_inference"), ("winograd", "_forward_winograd"),
                         ("pieces", "_forward_pieces")):
        monkeypatch.setattr(DenseBlock, method, _counting(getattr(DenseBlock, method), calls, name))
    yield calls
    if "path" in request.fixturenames:
        assert calls[request.getfixturevalue("path")] == calls["n"]


def _counting(inner, calls: dict[str, int], name: str):
    def counted(self, x):
        calls[name] += 1
        return inner(self, x)

    return counted


# -- one block --------------------------------------------------------------------------------
# (in, out): IRN ×2 F and G/H, ×4 second stage F and G/H, a square one, IRN-Color's split 1/2.
SHAPES = [(9, 3), (3, 9), (45, 3), (3, 45), (12, 12), (2, 1), (1, 2)]


@pytest.mark.parametrize("cin, cout", SHAPES)
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_inference_path_equals_plain_forward(cin, cout, batch, layout, path, spy):
    new, old = _pair(cin, cout)
    x = _input(batch, cin, 19, 24, layout)
    with torch.no_grad():
        ref = old(x)
        out = new(x)
    assert spy["n"] == 1
    assert out.shape == ref.shape and out.dtype == ref.dtype
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert ref.abs().max() > 0.05  # conv5 really perturbed
    torch.testing.assert_close(out, ref, rtol=0, atol=LR_TOL)


@pytest.mark.parametrize("size", [(1, 1), (1, 7), (6, 1), (2, 3)])
@pytest.mark.parametrize("cout", [3, 9, 45])  # conv5 as 1×1 taps, 1×3 rows, plain 3×3
def test_tiny_images_keep_the_zero_padding(size, cout, path, spy):
    new, old = _pair(3, cout)
    x = _input(1, 3, *size, "channels_last")
    with torch.no_grad():
        torch.testing.assert_close(new(x), old(x), rtol=0, atol=LR_TOL)
    assert spy["n"] == 1


def test_without_bias_and_other_growth(path, spy):
    """IRN-CRM's RRDBs build DenseBlock(feats, feats, growth)."""
    for cin, cout, gc, bias in ((16, 16, 8, True), (9, 3, 32, False), (3, 9, 16, False)):
        new, old = _pair(cin, cout, gc, bias)
        x = _input(2, cin, 11, 13, "nchw")
        with torch.no_grad():
            torch.testing.assert_close(new(x), old(x), rtol=0, atol=LR_TOL)
    assert spy["n"] == 3


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("batch", [1, 2])
def test_with_grad_the_plain_forward_and_equal_gradients(layout, batch, spy):
    new, old = _pair(9, 3)
    x_new = _input(batch, 9, 12, 10, layout).requires_grad_()
    x_old = x_new.detach().clone().requires_grad_()
    out_new, out_old = new(x_new), old(x_old)
    assert spy["n"] == 0
    torch.testing.assert_close(out_new, out_old, rtol=0, atol=0)
    g = torch.randn(out_new.shape, generator=torch.Generator().manual_seed(3))
    (out_new * g).sum().backward()
    (out_old * g).sum().backward()
    torch.testing.assert_close(x_new.grad, x_old.grad, rtol=0, atol=0)
    for (name, a), b in zip(new.named_parameters(), old.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=0, msg=name)


def test_plain_forward_outside_the_inference_path(path, spy):
    """bf16 autocast, float64, nchw_inference and grad mode all keep the plain forward."""
    new, old = _pair(3, 9)
    x = _input(1, 3, 8, 8, "nchw")
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert new(x).dtype == torch.bfloat16  # autocast applies: the plain convs ran
        with nchw_inference():
            torch.testing.assert_close(new(x), old(x), rtol=0, atol=0)
        new64, old64 = copy.deepcopy(new).double(), copy.deepcopy(old).double()
        torch.testing.assert_close(new64(x.double()), old64(x.double()), rtol=0, atol=0)
    assert spy["n"] == 0
    with torch.inference_mode():
        torch.testing.assert_close(new(x), old(x), rtol=0, atol=LR_TOL)
    assert spy["n"] == 1


@pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN")  # mkldnn.flags() says it
def test_plain_forward_without_working_onednn_ops(monkeypatch, spy):
    """Without the Winograd kernel: oneDNN disabled, or fused ops that fail the one-time probe
    (another PyTorch), run the plain forward."""
    monkeypatch.setenv("IRNBENCH_WINOGRAD", "0")
    new, old = _pair(3, 9)
    x = _input(1, 3, 8, 8, "nchw")
    with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False):
        torch.testing.assert_close(new(x), old(x), rtol=0, atol=0)
    assert spy["n"] == 0

    def wrong(acc, x, w, padding):
        return acc

    monkeypatch.setattr(blocks, "_ONEDNN_OPS", None)
    monkeypatch.setattr(blocks, "_conv_add_", wrong)
    with torch.no_grad():
        assert not blocks._onednn_ops()
        torch.testing.assert_close(new(x), old(x), rtol=0, atol=0)
    assert spy["n"] == 0


def test_cached_weights_follow_the_parameters(path, spy):
    """The split weights are cached, and rebuilt after an optimiser step, a load_state_dict or
    an in-place change; they never enter the state dict or a pickle."""
    new, old = _pair(3, 9)
    x = _input(1, 3, 10, 10, "channels_last")
    with torch.no_grad():
        first = new(x)
        torch.testing.assert_close(first, old(x), rtol=0, atol=LR_TOL)
        assert new(x).equal(first)  # cached plan reused
    opt = torch.optim.SGD(new.parameters(), lr=1e-3)
    new(x).square().sum().backward()  # with grad: the plain forward
    opt.step()
    old.load_state_dict(new.state_dict(), strict=True)
    with torch.no_grad():
        stepped = new(x)
        assert not stepped.equal(first)
        torch.testing.assert_close(stepped, old(x), rtol=0, atol=LR_TOL)
        new.conv5.weight.mul_(2)
        old.conv5.weight.mul_(2)
        torch.testing.assert_close(new(x), old(x), rtol=0, atol=LR_TOL)
        fresh = DenseBlock(3, 9)
        fresh.load_state_dict(old.state_dict(), strict=True)
        torch.testing.assert_close(fresh(x), old(x), rtol=0, atol=LR_TOL)
    assert list(new.state_dict()) == KEYS == list(old.state_dict())
    assert new._plan is not None
    assert copy.deepcopy(new)._plan is None
    assert pickle.loads(pickle.dumps(new))._plan is None


def test_tap_folding_is_a_3x3_conv():
    """conv5's taps as output channels, shifted back: the 3x3 conv with its zero padding."""
    g = torch.Generator().manual_seed(4)
    for fold in ((True, True), (True, False)):
        for h, w in ((5, 7), (1, 4), (3, 1)):
            x = torch.randn(2, 6, h, w, generator=g, dtype=torch.float64)
            wt = torch.randn(4, 6, 3, 3, generator=g, dtype=torch.float64)
            z = F.conv2d(x, blocks._taps_to_channels(wt, fold), padding=(1 - fold[0], 1 - fold[1]))
            torch.testing.assert_close(blocks._unfold_taps(z, fold), F.conv2d(x, wt, padding=1),
                                       rtol=0, atol=1e-12)
    assert blocks._taps_as_channels(3) == (True, True)
    assert blocks._taps_as_channels(9) == (True, False)
    assert blocks._taps_as_channels(45) == (False, False)
    assert blocks._taps_as_channels(32) == (False, False)


# -- whole networks ------------------------------------------------------------------------------
def _nets(scale: int) -> tuple[InvRescaleNet, InvRescaleNet]:
    torch.manual_seed(0)
    new = InvRescaleNet(scale)
    _randomise(new, std=0.02)
    old = InvRescaleNet(scale, subnet=DenseBlockReference)
    old.load_state_dict(new.state_dict(), strict=True)
    return new, old


def _rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    return ((a - ref).abs().max() / ref.abs().max()).item()


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("batch", [1, 2])
def test_irn_degrade_restore_equal(scale, batch, path, spy):
    """IRN ×2/×4 forward (LR, z) and inverse (HR) against the same net with the old blocks,
    and against the official computation (NCHW, plain blocks)."""
    new, old = _nets(scale)
    x = torch.rand(batch, 3, 48, 40, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        t_new = new(x)
        assert spy["n"] > 0
        t_old = old(x)
        with nchw_inference():
            t_off = new(x)
            hr_off = new.inverse(t_off)
        hr_new, hr_old = new.inverse(t_new), old.inverse(t_new)
    assert not torch.allclose(t_new[:, :3], F.avg_pool2d(x, scale), atol=1e-3)  # perturbed
    for ref in (t_old, t_off):
        assert (t_new[:, :3] - ref[:, :3]).abs().max() <= LR_TOL
        assert _rel(t_new, ref) <= LR_TOL
    assert _rel(hr_new, hr_old) <= HR_TOL and _rel(hr_new, hr_off) <= HR_TOL
    assert _rel(hr_new, x) <= HR_TOL  # still invertible


@pytest.mark.parametrize("scale", [2, 4])
def test_irn_method_checkpoint_loads_strictly(scale, path):
    """The method's state dict (checkpoint names) is unchanged, and its restoration equals the
    old blocks'."""
    torch.manual_seed(0)
    m = IRN(create_task("rescale", scale=scale))
    _randomise(m.net, std=0.02)
    _, old = _nets(scale)
    old.load_state_dict(m.net.state_dict(), strict=True)
    assert list(old.state_dict()) == list(m.net.state_dict())
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    z = torch.randn(1, 3 * scale**2 - 3, 32 // scale, 32 // scale,
                    generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        y = m.degrade(x)
        y_old = old(x)[:, :3]
        hr = m.restore_with_z(y, z)
        hr_old = old.inverse(torch.cat((y, z), 1))
    assert (y - y_old).abs().max() <= LR_TOL
    assert _rel(hr, hr_old) <= HR_TOL
