"""The Winograd F(2x2, 3x3) kernel (``irnbench.ops.winograd``) against torch's conv2d in float64,
and how it is built, cached, checked and refused."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from irnbench.ops import winograd


@pytest.fixture
def kernel() -> None:
    """Skips where the kernel cannot be built (no compiler, no AVX-512); checked at test time,
    inside the isolated ``$IRNBENCH_HOME``, never at collection."""
    if not winograd.available():
        pytest.skip(f"no Winograd kernel here: {winograd.unavailable_reason()}")


needs_kernel = pytest.mark.usefixtures("kernel")


def _case(pieces, k, size, batch=1, bias=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(batch, c, *size, generator=g) for c in pieces]
    w = torch.randn(k, sum(pieces), 3, 3, generator=g) * 0.1
    b = torch.randn(k, generator=g) if bias else None
    return xs, w, b


def _reference(xs, w, b, slope):
    out = F.conv2d(torch.cat(xs, 1).double(), w.double(), None if b is None else b.double(),
                   padding=1)
    return out if slope is None else F.leaky_relu(out, slope)


def _rel(out, ref) -> float:
    return ((out.double() - ref).abs().max() / ref.abs().max().clamp_min(1e-12)).item()


@needs_kernel
@pytest.mark.parametrize("pieces", [(1,), (3,), (16,), (17,), (45,), (3, 32, 32), (9, 32, 32, 32)])
@pytest.mark.parametrize("k", [3, 9, 16, 32, 45])
def test_equals_conv2d_over_channel_and_output_tails(pieces, k):
    xs, w, b = _case(pieces, k, (10, 13))
    for slope in (None, 0.2):
        out = winograd.conv3x3(xs, winograd.transform_weights(w, pieces), b, slope)
        assert out.shape == (1, k, 10, 13) and out.dtype == torch.float32
        assert out.is_contiguous(memory_format=torch.channels_last)
        assert _rel(out, _reference(xs, w, b, slope)) < 2e-6


@needs_kernel
@pytest.mark.parametrize("size", [(1, 1), (1, 7), (6, 1), (2, 3), (5, 7), (33, 18), (17, 40)])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("threads", [1, 2])
def test_odd_sizes_batches_and_threads_keep_the_zero_padding(size, batch, threads):
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        xs, w, b = _case((5, 20), 19, size, batch=batch, bias=False, seed=1)
        out = winograd.conv3x3(xs, winograd.transform_weights(w, (5, 20)))
    finally:
        torch.set_num_threads(old)
    assert _rel(out, _reference(xs, w, None, None)) < 2e-6


@needs_kernel
def test_pieces_in_any_layout_and_a_large_map():
    """NCHW pieces and channel slices are read as the tensors they are; 256² as IRN's ×2 maps."""
    xs, w, b = _case((3, 32), 32, (256, 256), seed=2)
    sliced = torch.randn(1, 40, 256, 256)[:, 4:36]
    xs = [xs[0], sliced]
    out = winograd.conv3x3(xs, winograd.transform_weights(w, (3, 32)), b, 0.2)
    assert _rel(out, _reference(xs, w, b, 0.2)) < 2e-6


@needs_kernel
def test_wrong_inputs_are_refused():
    xs, w, _ = _case((3, 5), 4, (4, 4))
    ww = winograd.transform_weights(w, (3, 5))
    with pytest.raises(ValueError, match="weights for"):
        winograd.conv3x3(xs[:1], ww)
    with pytest.raises(ValueError, match="fp32 CPU"):
        winograd.conv3x3([x.double() for x in xs], ww)
    with pytest.raises(ValueError, match="one batch and size"):
        winograd.conv3x3([xs[0], xs[1][..., :3]], ww)
    with pytest.raises(ValueError, match="a bias of 3 values for 4 output"):
        winograd.conv3x3(xs, ww, torch.zeros(3))
    with pytest.raises(ValueError, match="slope 1.5 outside"):
        winograd.conv3x3(xs, ww, None, 1.5)
    with pytest.raises(ValueError, match="3×3"):
        winograd.transform_weights(torch.zeros(4, 8, 5, 5), (3, 5))
    with pytest.raises(ValueError, match="3×3"):
        winograd.transform_weights(w, (3, 4))


def test_disabled_by_the_environment(monkeypatch):
    monkeypatch.setenv("IRNBENCH_WINOGRAD", "0")
    assert not winograd.available()
    assert winograd.unavailable_reason() == "disabled by IRNBENCH_WINOGRAD=0"
    xs, w, _ = _case((3,), 4, (4, 4))
    with pytest.raises(RuntimeError, match="unavailable: disabled"):
        winograd.conv3x3(xs, winograd.transform_weights(w, (3,)))


@pytest.fixture
def fresh(monkeypatch):
    """A process state that has not loaded the kernel, over an empty ``$IRNBENCH_HOME``."""
    monkeypatch.setattr(winograd, "_state", {})
    return winograd


def test_no_compiler_means_unavailable_with_the_reason(fresh, monkeypatch):
    monkeypatch.setattr(fresh, "_compiler", lambda: None)
    if fresh.unavailable_reason() and "AVX-512" in fresh.unavailable_reason():
        pytest.skip("no AVX-512 here: the build is never tried")
    assert not fresh.available()
    assert fresh.unavailable_reason() == "no C compiler (set $CC or install cc/gcc)"
    assert not fresh.kernel_path().exists()


@needs_kernel
def test_a_failing_build_leaves_no_file(fresh, monkeypatch):
    monkeypatch.setattr(fresh, "_FLAGS", (*fresh._FLAGS, "-no-such-flag"))
    assert not fresh.available()
    assert "failed" in fresh.unavailable_reason()
    folder = fresh.kernel_path().parent
    assert not folder.exists() or list(folder.iterdir()) == []


@needs_kernel
def test_a_kernel_that_computes_wrong_is_refused_by_the_probe(fresh, monkeypatch, tmp_path):
    """One sign flipped in the input transform: the build succeeds, the check refuses it."""
    src = fresh._SOURCE.read_text()
    wrong = src.replace("s[0][q] = _mm512_sub_ps(d[0][q], d[2][q]);",
                        "s[0][q] = _mm512_add_ps(d[0][q], d[2][q]);")
    assert wrong != src
    (tmp_path / "csrc").mkdir()
    (tmp_path / "csrc" / "winograd_f23.c").write_text(wrong)
    monkeypatch.setattr(fresh, "_SOURCE", tmp_path / "csrc" / "winograd_f23.c")
    assert not fresh.available()
    assert fresh.unavailable_reason() == "the built kernel disagrees with torch's conv2d"


@needs_kernel
def test_a_damaged_cached_kernel_is_rebuilt(fresh):
    path = fresh.kernel_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a shared object")
    assert fresh.available()
    assert path.read_bytes()[:4] == b"\x7fELF"


@needs_kernel
def test_an_unwritable_cache_builds_into_a_temporary_folder(fresh, monkeypatch, tmp_path):
    home = tmp_path / "home-is-a-file"
    home.write_text("")
    monkeypatch.setenv("IRNBENCH_HOME", str(home))
    assert fresh.available()
    assert home.read_text() == ""


@needs_kernel
def test_concurrent_first_builds_share_one_file(tmp_path):
    """Three processes build into one empty cache at once: each loads a complete kernel, one
    file remains and no temporary file is left."""
    env = {**os.environ, "IRNBENCH_HOME": str(tmp_path)}
    code = "from irnbench.ops import winograd; assert winograd.available(), " \
           "winograd.unavailable_reason()"
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env) for _ in range(3)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0]
    assert [p.name for p in (tmp_path / "kernels").iterdir()] == [winograd.kernel_path().name]


def test_the_cached_name_follows_source_and_flags(monkeypatch):
    first = winograd.kernel_path()
    assert first.parent.name == "kernels" and first.name.startswith("winograd_f23-")
    monkeypatch.setattr(winograd, "_FLAGS", (*winograd._FLAGS, "-DX=1"))
    assert winograd.kernel_path() != first
