"""Cross-checks against pyiqa (the optional ``iqa`` extra) and the pyiqa-backed ``iqa_metric``.

Run with the extra installed (``pip install 'irnbench[iqa]'``; install the CPU torch wheel first,
pyiqa otherwise pulls a multi-GB CUDA build). The cross-checks skip when pyiqa is absent; the
``iqa_metric`` test runs everywhere (without pyiqa it checks the error message).
"""

from __future__ import annotations

import math

import pytest
import torch

from irnbench.metrics import IQAUnavailable, iqa_metric, psnr, ssim
from irnbench.ops import imresize, quantize

pytestmark = pytest.mark.iqa

PSNR_TOL = 1e-4  # dB: pyiqa's PSNR with eps=0 is the same formula on the same float Y.
# pyiqa's SSIM rounds Y to integers before filtering (``preprocess_rgb``: "use rounded uint8
# value to make the input image same as MATLAB") and clips the contrast-structure term at 0
# (``F.relu(cs_map)``); the IRN/BasicSR protocol keeps Y as float and does neither. On 64×64
# uint8-valued images with noise σ = 0.01–0.1 the Y rounding alone moves SSIM by at most
# 6.4e-4 (600 simulated pairs; 2.3e-4 on the pairs below), and cs stays positive on these
# correlated pairs. 2e-3 leaves margin while still catching the mistakes that matter: on these
# pairs YIQ luma instead of BT.601 Y moves SSIM by 3.3e-3, RGB instead of Y by 7.8e-3,
# K2 = 0.02 by 7.4e-3, σ = 1.4 by 1.3e-2.
SSIM_TOL = 2e-3


def _pairs(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Four 64×64 RGB pairs, uint8-valued floats in [0, 1]: a smooth image and a noisy copy."""
    g = torch.Generator().manual_seed(0)
    base = imresize(torch.rand(4, 3, 16, 16, generator=g, dtype=torch.float64), 4.0).clamp(0, 1)
    sigma = torch.tensor([0.01, 0.02, 0.05, 0.1], dtype=torch.float64).view(4, 1, 1, 1)
    noisy = base + sigma * torch.randn(base.shape, generator=g, dtype=torch.float64)
    return quantize(base).to(dtype), quantize(noisy).to(dtype)


def _run_pyiqa(metric, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    # Some pyiqa versions call torch.set_grad_enabled(as_loss) globally in forward(): restore
    # the mode so that later tests in this process still get gradients.
    prev = torch.is_grad_enabled()
    try:
        with torch.no_grad():
            return metric(x, ref).detach().double().flatten().cpu()
    finally:
        torch.set_grad_enabled(prev)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_psnr_matches_pyiqa(dtype):
    pyiqa = pytest.importorskip("pyiqa")
    metric = pyiqa.create_metric(
        "psnr", test_y_channel=True, color_space="ycbcr", eps=0, device=torch.device("cpu")
    )
    x, ref = _pairs(dtype)
    theirs = _run_pyiqa(metric, x, ref)
    ours = psnr(x, ref, crop_border=0, y_channel=True)
    assert ours.shape == theirs.shape == (4,)
    assert (ours - theirs).abs().max().item() < PSNR_TOL, (ours, theirs)


def test_ssim_matches_pyiqa_within_rounding_of_y():
    pyiqa = pytest.importorskip("pyiqa")
    metric = pyiqa.create_metric(
        "ssim", test_y_channel=True, color_space="ycbcr", device=torch.device("cpu")
    )
    x, ref = _pairs(torch.float32)
    theirs = _run_pyiqa(metric, x, ref)
    ours = ssim(x, ref, crop_border=0, y_channel=True)
    assert ours.shape == theirs.shape == (4,)
    assert (ours - theirs).abs().max().item() < SSIM_TOL, (ours, theirs)


def test_lpips_works_or_says_why_not():
    """With weights (cached or downloadable) LPIPS scores images; offline, or without pyiqa, it
    raises IQAUnavailable with a message that names the metric and what to do."""
    try:
        score = iqa_metric("lpips")
    except IQAUnavailable as exc:
        msg = str(exc)
        assert "lpips" in msg
        assert "pip install" in msg or "cache" in msg or "connected" in msg
        return
    x, ref = _pairs(torch.float32)
    out = score(x, ref)
    assert out.shape == (4,)
    assert all(math.isfinite(v) and v >= 0 for v in out.tolist())
    same = score(ref, ref)
    assert float(same.abs().max()) < 1e-3
    # More noise, more perceptual distance (σ grows along the batch).
    assert out[0] < out[-1]


@pytest.mark.iqa
def test_run_with_lpips_column_or_clear_error(tmp_path):
    """`run --iqa lpips` adds an LPIPS column, or stops at once with a one-line reason."""
    from click.testing import CliRunner
    from PIL import Image

    from irnbench.cli import cli

    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.new("RGB", (64, 48), (120, 30, 200)).save(folder / "a.png")
    res = CliRunner().invoke(cli, ["eval", "--plugins", "bicubic", "--scale", "2", "--iqa",
                                   "lpips", "--datasets", str(folder), "--quiet",
                                   "--out", str(tmp_path / "run")])
    if res.exit_code == 0:
        import pandas as pd

        df = pd.read_csv(tmp_path / "run" / "results.csv")
        assert df["lpips"].notna().any()
    else:
        assert res.exit_code == 1 and "Traceback" not in res.output
        assert "lpips" in res.output and "Error:" in res.output


def test_unknown_iqa_metric_is_a_bad_parameter():
    from click.testing import CliRunner

    from irnbench.cli import cli

    res = CliRunner().invoke(cli, ["eval", "--plugins", "bicubic", "--iqa", "nope"])
    assert res.exit_code == 2 and "lpips" in res.output
