"""Training on a GPU: the irn ``gpu`` preset and ``scripts/gpu_check.sh`` (its ``--dry-run``)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from irnbench.registry import get_method_class
from irnbench.weights import read_sidecar

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"


def test_gpu_preset_sits_between_cpu_and_paper_and_ships_nothing():
    from irnbench_plugins.irn.method import GPU_PRESET_STEP_SECONDS, _gpu_preset

    cls = get_method_class("irn")
    cpu, gpu, paper = (cls.presets[k] for k in ("cpu", "gpu", "paper"))

    def pixels(p):  # HR pixels the preset trains on
        return p.iterations * p.batch_size * p.crop**2

    assert pixels(cpu) < pixels(gpu) < pixels(paper)
    assert (gpu.batch_size, gpu.crop) == (paper.batch_size, paper.crop)  # the paper's step
    assert gpu.iterations * GPU_PRESET_STEP_SECONDS == pytest.approx(3600)  # about an hour
    assert all(m < gpu.iterations for m in gpu.milestones) and gpu.grad_clip == 10.0
    assert "NOT YET MEASURED" in " ".join(_gpu_preset.__doc__.split())
    for cfg in cls.pretrained_cfgs.values():  # no shipped weights come from it
        rec: dict | None = read_sidecar(cls.package_dir() / cfg.file)
        while rec:
            assert rec.get("preset") != "gpu"
            rec = rec.get("init")


def test_gpu_check_help_names_its_steps():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], check=False).returncode == 0
    out = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, check=True)
    for word in ("--dry-run", "pip install -e", "--resume", "--nproc 2", "mini", "compile"):
        assert word in out.stdout, word
    bad = subprocess.run([str(SCRIPT), "--bogus"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.slow
def test_gpu_check_dry_run(tmp_path):
    """Every step of the GPU check on CPU (smoke preset), evaluated on one small crop of a mini
    photo; nothing is installed and the shipped weights do not change. Slow (about 20 s with
    one thread: five CLI processes, two of them loading mini-train); the default suite keeps
    the script's flags and its device step (the tests above and below)."""
    shipped = get_method_class("irn").package_dir() / "weights"
    before = _digests(shipped)
    images = tmp_path / "tiny-set"
    images.mkdir()
    Image.open(ROOT / "datasets" / "mini" / "kodim23.png").crop((0, 0, 96, 64)).save(
        images / "crop.png")
    out = tmp_path / "check"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    res = subprocess.run([str(SCRIPT), "--dry-run", "--out", str(out), "--eval-datasets",
                          str(images)], capture_output=True, text=True, env=env, timeout=600,
                         check=False)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    summary = (out / "summary.txt").read_text()
    status = {line.split()[0]: line.split()[1] for line in summary.splitlines()[1:8]}
    assert status == {"install": "skipped", "device": "ok", "timing": "ok", "train-3": "ok",
                      "resume-to-6": "ok", "nproc-2": "skipped", "eval": "ok"}, summary
    assert "6 steps" in summary and "1 images, PSNR-Y" in summary
    assert "off " in summary and "bf16+cl" in summary  # the timing rows
    assert (out / "runs" / "x4" / "weights.safetensors").exists()
    assert not (out / "home" / "weights").exists()  # --no-install: nothing in the user cache
    assert _digests(shipped) == before


def test_gpu_check_without_a_gpu_stops_after_the_device_step(tmp_path):
    if __import__("torch").cuda.is_available():
        pytest.skip("this machine has a GPU")
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([str(SCRIPT), "--skip-install", "--out", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=300, check=False)
    assert res.returncode == 1, res.stdout + res.stderr
    summary = (tmp_path / "summary.txt").read_text()
    assert "no CUDA device" in summary and "timing" not in summary
    assert not (tmp_path / "runs" / "x4").exists()
