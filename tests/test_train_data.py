"""The training data pipeline: uint8 storage, exact crops and references, DataLoader workers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers import TINY
from safetensors.torch import load_file

import irnbench
from irnbench.cli import cli
from irnbench.errors import InvalidSetting
from irnbench.training.data import BatchSource, TrainingData, to_float, to_uint8_exact
from irnbench.training.loop import batch_fetcher, train_method
from irnbench.training.presets import ColorAugment


@pytest.fixture
def one_thread():
    """Bit-for-bit training comparisons hold with one intra-op thread (irnbench.training.loop)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _float_twin(data: TrainingData) -> TrainingData:
    """The same data held as float32 images, as TrainingData held them before uint8 storage."""
    twin = object.__new__(TrainingData)
    twin.__dict__.update(data.__dict__)
    twin.stored = [to_float(t) for t in data.stored]
    return twin


def test_images_are_held_as_uint8_and_give_the_decoded_floats_back():
    task = irnbench.create_task("rescale", scale=4)
    dataset = irnbench.data.resolve_dataset("mini-train")
    data = TrainingData(dataset, task)
    assert all(t.dtype == torch.uint8 for t in [*data.stored, *data.val_stored])
    decoded = [task.prepare(rec.load()[None])[0] for rec in dataset]
    for got, want in zip([*data.images, *data.val_images], decoded, strict=True):
        assert got.dtype == torch.float32 and torch.equal(got, want)
    for ref, img in zip(data.refs, decoded, strict=False):  # the whole-image reference, exactly
        assert torch.equal(ref, task.reference(img[None])[0])


@pytest.mark.parametrize("colour", [
    None, ColorAugment(), ColorAugment(clip=True), ColorAugment(clip=True, cast=True)])
def test_uint8_storage_samples_what_float_storage_did(colour):
    """Every crop and reference (flips, colour draws, clipped margins) is bit-identical to the
    same sample drawn from float32 images, and is a crop of the whole-image reference."""
    task = irnbench.create_task("rescale", scale=2)
    data = TrainingData(irnbench.data.resolve_dataset("mini-train"), task)
    twin = _float_twin(data)
    a = data.batch(1, 12, seed=3, crop=32, augment=True, color=colour)
    b = twin.batch(1, 12, seed=3, crop=32, augment=True, color=colour)
    assert a["hr"].dtype == torch.float32
    assert torch.equal(a["hr"], b["hr"]) and torch.equal(a["lr_ref"], b["lr_ref"])
    if colour is None:  # replay sample 0 by hand: an aligned crop of the whole-image reference
        hr, ref = data.sample(0, 5, 32, augment=False)
        rng = np.random.default_rng([5, 0])
        i = int(rng.integers(len(data.stored)))
        image = data.images[i]
        h, w = image.shape[-2:]
        top = int(rng.integers(0, (h - 32) // 2 + 1)) * 2
        left = int(rng.integers(0, (w - 32) // 2 + 1)) * 2
        assert torch.equal(hr, image[:, top : top + 32, left : left + 32])
        whole = task.reference(image[None])[0]
        assert torch.equal(ref, whole[:, top // 2 : top // 2 + 16, left // 2 : left // 2 + 16])


def test_to_uint8_exact_keeps_what_uint8_cannot_hold():
    k = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16)
    exact = k.to(torch.float32) / 255.0
    assert to_uint8_exact(exact).dtype == torch.uint8
    assert torch.equal(to_float(to_uint8_exact(exact)), exact)
    off = exact.clone()
    off[0, 3, 3] += 1e-3  # not a k/255 value
    assert to_uint8_exact(off) is off


def test_batch_source_serves_steps_in_order_and_leaves_the_global_rng_alone():
    task = irnbench.create_task("rescale", scale=2)
    data = TrainingData(irnbench.data.resolve_dataset("mini-train"), task)
    p = irnbench.registry.get_method_class("irn").presets["smoke"]
    fetch = batch_fetcher(data, p, seed=7)
    state = torch.get_rng_state()
    source = BatchSource(fetch, range(3, 6), workers=2)
    try:
        for step in range(3, 6):
            got, want = source.get(step), fetch(step)
            assert got.keys() == want.keys()
            assert all(torch.equal(got[k], want[k]) for k in got)
        with pytest.raises(RuntimeError, match="step 6"):
            source.get(6)
    finally:
        source.close()
    assert torch.equal(torch.get_rng_state(), state)
    with pytest.raises(RuntimeError, match="next one is 0"):
        BatchSource(fetch, range(4), workers=0).get(1)
    with pytest.raises(InvalidSetting, match="workers"):
        BatchSource(fetch, range(4), workers=-1)


def test_workers_do_not_change_the_weights_or_the_resume(tiny, tmp_path, one_thread):
    """20 smoke steps with 0, 1 and 2 workers: bit-identical weights; a run stopped with 2
    workers and resumed with 1 ends there too. The sidecar does not record the count."""
    kw = dict(scale=2, preset="smoke", iterations=20, **TINY)
    runs = [train_method("test-tiny-ae", "rescale", out=tmp_path / f"w{n}", workers=n, **kw)
            for n in (0, 1, 2)]
    train_method("test-tiny-ae", "rescale", out=tmp_path / "r", workers=2,
                 **{**kw, "iterations": 9})
    resumed = train_method("test-tiny-ae", "rescale", out=tmp_path / "r", workers=1,
                           resume=True, **kw)
    ref = load_file(str(runs[0].weights))
    for res in [*runs[1:], resumed]:
        w = load_file(str(res.weights))
        assert w.keys() == ref.keys() and all(torch.equal(w[k], ref[k]) for k in ref)
    with pytest.raises(InvalidSetting, match="workers"):
        train_method("test-tiny-ae", "rescale", out=tmp_path / "neg", workers=-1, **kw)
    assert not (tmp_path / "neg").exists()
    side = json.loads(runs[2].weights.with_suffix(".json").read_text())
    assert "workers" not in json.dumps(side)
    assert runs[0].history == runs[2].history


@pytest.mark.slow
def test_irn_smoke_weights_do_not_depend_on_the_workers(tmp_path, one_thread):
    """The real IRN, 20 smoke steps, 0 and 2 workers: bit-identical weights."""
    kw = dict(scale=2, preset="smoke", iterations=20, **TINY)
    a, b = (train_method("irn", "rescale", out=tmp_path / f"w{n}", workers=n, **kw)
            for n in (0, 2))
    wa, wb = load_file(str(a.weights)), load_file(str(b.weights))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_cli_train_takes_workers(tiny, tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["train", "--help"])
    assert "--workers" in res.output
    res = runner.invoke(cli, ["train", "--plugin", "test-tiny-ae", "--scale", "2", "--preset",
                              "smoke", "--device", "cpu", "--quiet", "--workers", "-1",
                              "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "workers" in res.output.lower()
    res = runner.invoke(cli, ["train", "--plugin", "test-tiny-ae", "--scale", "2", "--preset",
                              "smoke", "--device", "cpu", "--quiet", "--workers", "1",
                              "--out", str(tmp_path / "y")])
    assert res.exit_code == 0, res.output


def test_bench_train_data_prints_crops_per_second_beside_the_step_time():
    """The benchmark script runs end to end (tiny settings) and names the bound."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parents[1] / "benchmarks" / "bench_train_data.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(script), "--datasets", "mini-train", "--plugin",
                          "irn", "--scale", "2", "--preset", "smoke", "--workers", "0,1",
                          "--batches", "3", "--repeat", "1", "--device", "cpu"],
                         capture_output=True, text=True, env=env, timeout=300, check=True).stdout
    rows = [ln for ln in out.splitlines() if ln.startswith(("| 0 |", "| 1 |"))]
    assert len(rows) == 2, out
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert float(cells[1]) > 0 and float(cells[3]) > 0
        assert cells[4].startswith(("model", "data"))
