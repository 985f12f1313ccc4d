"""Distributed runs (irnbench.distributed): 2-process gloo DDP training and sharded evaluation.

The processes are started with ``torch.multiprocessing.spawn``; each child registers the test
methods itself (a plugin registered in the test process is not visible in a new process). Each
child runs with one torch thread, so the two processes do not fight over the CI's cores.

Tolerances (DDP vs one process with the same global batch): the two runs differ only in the
floating-point order of the batch reductions (two half-batch means averaged vs one mean), so
logged losses agree to rtol 1e-4 and weights after 6 Adam steps to atol 1e-5.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.multiprocessing as mp
from conftest import make_plugin
from helpers import TinyAE
from PIL import Image
from safetensors.torch import load_file

from irnbench.distributed import DistContext, strip_option, torchrun_command
from irnbench.errors import InvalidSetting
from irnbench.methods import Method
from irnbench.ops.imresize import imresize
from irnbench.training.data import SampleNoise
from irnbench.training.loop import NonFiniteLoss, train_method
from irnbench.training.presets import Preset

LOSS_RTOL = 1e-4
WEIGHT_ATOL = 1e-5


class DdpAE(TinyAE):
    """The tiny trainable rescaler, its loss drawing per-sample noise (``batch["randn"]``)."""

    name = "test-ddp-ae"
    presets = {
        "smoke": Preset("smoke", iterations=6, batch_size=4, crop=16, lr=1e-2, warmup=2,
                        milestones=(4,), grad_clip=0.5, val_every=3, checkpoint_every=2),
    }

    def training_loss(self, batch, task):
        # per-sample sums averaged over the batch (IRN's convention)
        y = self.degrade(batch["hr"])
        guide = ((y - batch["lr_ref"]) ** 2).flatten(1).sum(1).mean()
        noisy = task.channel(y, train=True) + 0.05 * batch["randn"](y.shape[1:])
        rec = (self.restore(noisy) - batch["hr"]).abs().flatten(1).sum(1).mean()
        return {"total": rec + guide, "rec": rec, "guide": guide}


class DdpPoisoned(DdpAE):
    """From step 3 on, the loss is NaN on the rank that holds positions 2, 3 of the batch only."""

    name = "test-ddp-poisoned"

    def training_loss(self, batch, task):
        losses = super().training_loss(batch, task)
        index = batch["sample_index"]
        if bool((index % 4 >= 2).all()) and int(index.min()) >= 12:
            losses["total"] = losses["total"] * float("nan")
        return losses


class NoisyUp(Method):
    """Stochastic: bicubic up plus 0.01·temperature·N(0, 1) from ``generator``."""

    name = "test-ddp-noisy"
    tasks = ("rescale",)
    stochastic = True

    def degrade(self, x):
        return imresize(x, 1.0 / self.task.setting["scale"])

    def restore(self, y, temperature=1.0, generator=None, **channel_info):
        up = imresize(y, float(self.task.setting["scale"]))
        noise = torch.randn(up.shape, generator=generator, device=up.device, dtype=up.dtype)
        return up + 0.01 * temperature * noise


class FailsOnC(NoisyUp):
    """Fails on image ``c`` only (which lands on rank 0 of 2): isolation across shards."""

    name = "test-ddp-fails"
    stochastic = False

    def restore(self, y, **channel_info):
        if y.shape[-1] == 20:  # c.png is the only 40 px wide image
            raise RuntimeError("boom on c")
        return imresize(y, float(self.task.setting["scale"]))


METHODS = (DdpAE, DdpPoisoned, NoisyUp, FailsOnC)


def _register() -> None:
    from irnbench.plugins import load_plugins, pm

    load_plugins()
    if pm.get_plugin("test-ddp") is None:
        pm.register(make_plugin(irnbench_register_methods=lambda register: [
            register(c) for c in METHODS]), name="test-ddp")


@pytest.fixture
def ddp_methods(register_plugin):
    register_plugin(make_plugin(irnbench_register_methods=lambda register: [
        register(c) for c in METHODS]), "test-ddp")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _child(rank: int, world: int, port: int, home: str, job: str, kwargs: dict,
           out: str) -> None:
    """One rank: join the gloo group from the environment (as under torchrun) and run ``job``."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), IRNBENCH_HOME=home,
                      HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    torch.set_num_threads(1)
    _register()
    if job == "train":
        # half the run, then a resume to the end: both go through the rank-0 checkpoint
        part = train_method(**{**kwargs, "iterations": 3})
        res = train_method(**{**kwargs, "resume": True})
        result = {"history": res.history, "part": part.history, "installed": res.installed}
        try:  # one rank sees NaN: both skip the same steps and stop together
            train_method(**{**kwargs, "name": "test-ddp-poisoned", "max_bad_steps": 2,
                            "out": kwargs["out"] + "-nan"})
        except NonFiniteLoss as exc:
            result["nan"] = str(exc)
    else:
        from irnbench.runner import run_benchmark

        res = run_benchmark(**kwargs)
        result = {"df": res.df, "notes": res.meta["notes"], "world": res.meta["world_size"]}
    Path(out, f"rank{rank}.pkl").write_bytes(pickle.dumps(result))


def _spawn(tmp_path: Path, job: str, kwargs: dict, world: int = 2) -> list[dict]:
    out = tmp_path / f"spawn-{job}"
    out.mkdir()
    mp.spawn(_child, args=(world, _free_port(), os.environ["IRNBENCH_HOME"], job, kwargs,
                           str(out)), nprocs=world, join=True)
    return [pickle.loads((out / f"rank{r}.pkl").read_bytes()) for r in range(world)]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def test_ddp_training_matches_one_process(ddp_methods, tmp_path, tiny_train_set):
    """2 gloo ranks × 2 samples = 1 process × 4 samples: same loss curve and weights; the DDP
    run was stopped half-way and resumed (rank 0 reads the checkpoint and broadcasts it). Then
    the NaN guard across ranks."""
    kw = dict(name="test-ddp-ae", task="rescale", scale=2, preset="smoke",
              datasets=tiny_train_set, device="cpu", progress=False, install=False)
    single = train_method(**kw, out=tmp_path / "single")
    ranks = _spawn(tmp_path, "train", {**kw, "out": str(tmp_path / "ddp")})
    assert ranks[0]["history"] == ranks[1]["history"]  # rank 0's record, validation included
    steps = [h["step"] for h in single.history]
    assert [h["step"] for h in ranks[0]["history"]] == steps
    for a, b in zip(single.history, ranks[0]["history"], strict=True):
        for key in ("total", "rec", "guide", "val_psnr_y"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=LOSS_RTOL), (a["step"], key)
    wa, wb = _weights(single.weights), _weights(tmp_path / "ddp" / "weights.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=0, atol=WEIGHT_ATOL)
    side = json.loads((tmp_path / "ddp" / "weights.json").read_text())
    assert side["world_size"] == 2 and len(side["commands"]) == 2
    assert not list((tmp_path / "ddp").glob("*.tmp"))
    # NaN on rank 1 only (steps 3, 4): both ranks skip, stop with the same message after 2
    for r in ranks:
        assert "2 non-finite steps in a row at step 4" in r["nan"], r
        assert "(iteration 3)" in r["nan"]
    side = json.loads((tmp_path / "ddp-nan" / "checkpoint.json").read_text())
    assert side["iteration"] == 3


def test_training_noise_is_per_sample():
    """A sample's noise depends on (seed, sample index, call), not on its batch or rank."""
    whole = SampleNoise(0, range(8, 12), torch.device("cpu"))
    a, a2 = whole(3, 2, 2), whole(3, 2, 2)
    half = SampleNoise(0, [10, 11], torch.device("cpu"))
    b, b2 = half((3, 2, 2)), half((3, 2, 2))
    assert a.shape == (4, 3, 2, 2)
    assert torch.equal(a[2:], b) and torch.equal(a2[2:], b2)
    assert not torch.equal(a, a2)  # each call is fresh noise
    assert not torch.equal(SampleNoise(1, [10], torch.device("cpu"))(3), b[:1, :, 0, 0])


def test_batch_carries_global_sample_indices(mini_train_data):
    import irnbench

    data = mini_train_data(irnbench.create_task("rescale", scale=2))
    part = data.batch(5, 4, seed=0, crop=16, augment=True, indices=range(2, 4))
    assert part["sample_index"].tolist() == [22, 23]


def test_batch_size_must_split_evenly(ddp_methods, tmp_path, monkeypatch, tiny_train_set):
    import irnbench.training.loop as train_mod

    monkeypatch.setattr(train_mod, "setup",
                        lambda device: (DistContext(rank=0, world=3), torch.device("cpu")))
    with pytest.raises(InvalidSetting, match="batch size 4.*3 processes"):
        train_method("test-ddp-ae", "rescale", scale=2, preset="smoke", out=tmp_path / "x",
                     datasets=tiny_train_set, device="cpu", progress=False, install=False)


def _images(folder: Path) -> Path:
    folder.mkdir()
    g = torch.Generator().manual_seed(0)
    for name, (w, h) in {"a": (32, 24), "b": (24, 32), "c": (40, 24), "d": (33, 24),
                         "e": (24, 24)}.items():
        arr = (torch.rand(h, w, 3, generator=g) * 255).byte().numpy()
        Image.fromarray(arr).save(folder / f"{name}.png")
    return folder


def test_sharded_run_equals_single_process(ddp_methods, tmp_path):
    """run under 2 gloo ranks: one table identical to the single-process one (metrics equal,
    same row order), the same notes and visuals, a method failing on rank 0's image isolated."""
    from irnbench.results import load_run
    from irnbench.runner import run_benchmark

    folder = _images(tmp_path / "imgs")
    kw = dict(task="rescale", methods=["bicubic", "test-ddp-noisy", "test-ddp-fails"],
              settings=[{"scale": 2}], datasets=[str(folder)], device="cpu", draws=2,
              report=False, progress=False)
    single = run_benchmark(**kw, out=tmp_path / "single")
    ranks = _spawn(tmp_path, "run", {**kw, "out": str(tmp_path / "sharded")})
    assert ranks[0]["world"] == 2

    def table(df: pd.DataFrame) -> pd.DataFrame:
        return df.drop(columns=["seconds"]).reset_index(drop=True)

    expected = table(single.df)
    assert len(expected[expected["status"] == "ok"]) == 5 * (1 + 2)  # 5 images, 2 draws
    assert (expected.loc[expected["method"] == "test-ddp-fails", "status"] == "failed").all()
    for r in ranks:  # every rank holds the gathered table
        pd.testing.assert_frame_equal(table(r["df"]), expected)
    df_saved, meta = load_run(tmp_path / "sharded")
    pd.testing.assert_frame_equal(table(df_saved), table(load_run(tmp_path / "single")[0]))
    assert ranks[0]["notes"] == single.meta["notes"]
    idx_a = json.loads((tmp_path / "single" / "visuals" / "index.json").read_text())
    idx_b = json.loads((tmp_path / "sharded" / "visuals" / "index.json").read_text())
    assert idx_a == idx_b and len(idx_a) == 3
    for entry in idx_a:
        for fname in entry["crops"].values():
            a = (tmp_path / "single" / "visuals" / fname).read_bytes()
            assert a == (tmp_path / "sharded" / "visuals" / fname).read_bytes()


def test_torchrun_command_line():
    argv = ["train", "--plugin", "irn", "--nproc", "2", "--scale", "2", "--nproc=3"]
    assert strip_option(argv, "--nproc") == ["train", "--plugin", "irn", "--scale", "2"]
    cmd = torchrun_command(2, ["train", "--plugin", "irn"])
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert cmd[cmd.index("--nproc-per-node") + 1] == "2"
    assert cmd[-4:] == ["irnbench", "train", "--plugin", "irn"]


@pytest.mark.slow
def test_cli_nproc_trains_irn_like_one_process(tmp_path):
    """`irnbench train --nproc 2` (torchrun, gloo) on the real IRN: the one-process weights."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "irnbench", "train", "--plugin", "irn", "--scale", "2",
            "--preset", "smoke", "--device", "cpu", "--quiet", "--no-install",
            "--iterations", "4"]
    subprocess.run(base + ["--out", str(tmp_path / "one")], check=True, env=env)
    subprocess.run(base + ["--out", str(tmp_path / "two"), "--nproc", "2"], check=True, env=env)
    wa = _weights(tmp_path / "one" / "weights.safetensors")
    wb = _weights(tmp_path / "two" / "weights.safetensors")
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=0, atol=WEIGHT_ATOL)
    side = json.loads((tmp_path / "two" / "weights.json").read_text())
    assert side["world_size"] == 2


@pytest.mark.slow
def test_cli_eval_nproc_writes_one_table(tmp_path):
    """`irnbench eval --nproc 2`: rank 0 alone prints and writes; the single-process table."""
    from irnbench.results import load_run

    folder = _images(tmp_path / "imgs")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "irnbench", "eval", "--plugins", "bicubic", "--scale", "2",
            "--datasets", str(folder), "--device", "cpu", "--quiet"]
    subprocess.run(base + ["--out", str(tmp_path / "one")], check=True, env=env)
    two = subprocess.run(base + ["--out", str(tmp_path / "two"), "--nproc", "2"], check=True,
                         env=env, capture_output=True, text=True)
    assert two.stdout.count("results:") == 1 and two.stdout.count("bicubic [measured]") == 1
    a, b = load_run(tmp_path / "one")[0], load_run(tmp_path / "two")[0]
    pd.testing.assert_frame_equal(b.drop(columns="seconds"), a.drop(columns="seconds"))


@pytest.mark.slow
def test_torchrun_smoke_training_changes_nothing_a_run_resolves(tmp_path):
    """`torchrun --nproc-per-node 2 -m irnbench train … --preset smoke` installs nothing: a
    later untagged `irn` still resolves to the shipped weights."""
    from irnbench.registry import create_method
    from irnbench.weights import cache_weights_dir

    before = create_method("irn", scale=2)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "irnbench", "train", "--plugin", "irn", "--task", "rescale", "--scale", "2",
         "--preset", "smoke", "--device", "cpu", "--quiet", "--out", str(tmp_path / "run")],
        check=True, env=env, capture_output=True, text=True)
    assert "never installs" in out.stdout
    assert not list(cache_weights_dir().rglob("*.safetensors"))
    after = create_method("irn", scale=2)
    assert (after.weights_tag, after.weights_sha256) == ("cpu", before.weights_sha256)


def test_ddp_fp16_grad_scaler_follows_one_process(ddp_methods, tmp_path, tiny_train_set):
    """fp16 autocast with a GradScaler on 2 gloo ranks (stopped and resumed half-way): the
    gradients are unscaled after the all-reduce, so both ranks take the same steps, and the run
    follows the one-process fp16 run."""
    # 24 steps: the first ones overflow the initial loss scale and are skipped
    kw = dict(name="test-ddp-ae", task="rescale", scale=2, preset="smoke", amp="fp16",
              iterations=24, datasets=tiny_train_set, device="cpu", progress=False,
              install=False)
    single = train_method(**kw, out=tmp_path / "single")
    ranks = _spawn(tmp_path, "train", {**kw, "out": str(tmp_path / "ddp")})
    assert ranks[0]["history"] == ranks[1]["history"] and len(single.history) >= 4
    for a, b in zip(single.history, ranks[0]["history"], strict=True):
        # fp16 rounds to about 1e-3: the 2-sample halves round otherwise than the 4-sample batch
        assert b["total"] == pytest.approx(a["total"], rel=1e-3), a["step"]
    side = json.loads((tmp_path / "ddp" / "checkpoint.json").read_text())
    assert (side["amp"], side["world_size"]) == ("fp16", 2) and side["scaler"]["scale"] > 0
    wa, wb = _weights(single.weights), _weights(tmp_path / "ddp" / "weights.safetensors")
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=0, atol=1e-2)  # fp16 rounding, 24 steps
