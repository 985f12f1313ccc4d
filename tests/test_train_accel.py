"""Training's speed options on CPU: autocast (bf16; fp16 with a GradScaler), channels_last and
torch.compile, each recorded in the checkpoint and the weights' sidecar."""

from __future__ import annotations

import functools
import json

import pytest
import torch
from click.testing import CliRunner
from conftest import make_plugin
from safetensors.torch import load_file
from test_train import TINY, TinyAE

from irnbench.cli import cli
from irnbench.errors import InvalidSetting
from irnbench.training.amp import resolve_amp
from irnbench.training.loop import train_method


class DtypeProbeAE(TinyAE):
    """TinyAE that records the dtype and memory layout its degrade output has in training."""

    name = "test-probe-ae"
    seen: list[tuple[torch.dtype, bool]] = []

    def training_loss(self, batch, task):
        y = self.degrade(batch["hr"])
        DtypeProbeAE.seen.append(
            (y.dtype, batch["hr"].is_contiguous(memory_format=torch.channels_last)))
        return super().training_loss(batch, task)


@pytest.fixture
def probe(register_plugin):
    register_plugin(make_plugin(irnbench_register_methods=lambda register: register(
        DtypeProbeAE)), "test-probe")
    DtypeProbeAE.seen = []
    return DtypeProbeAE


def _sidecar(res) -> dict:
    return json.loads(res.weights.with_suffix(".json").read_text())


def test_amp_modes_resolve():
    cpu = torch.device("cpu")
    assert [resolve_amp(m, cpu) for m in ("off", "bf16", "fp16", "auto")] == [
        "off", "bf16", "fp16", "off"]  # auto: fp32 on CPU
    for bf16_ok, want in ((True, "bf16"), (False, "fp16")):  # a GPU with bf16, an older one
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(torch.cuda, "is_bf16_supported", lambda *a, ok=bf16_ok, **k: ok)
            assert resolve_amp("auto", torch.device("cuda")) == want
    with pytest.raises(InvalidSetting, match="amp must be"):
        resolve_amp("fp8", cpu)
    with pytest.raises(InvalidSetting, match="contradicts"):
        train_method("test-tiny-ae", "rescale", scale=2, preset="smoke", bf16=True, amp="fp16",
                     **TINY)


@pytest.mark.parametrize(("amp", "dtype"), [("off", torch.float32), ("bf16", torch.bfloat16),
                                            ("fp16", torch.float16)])
def test_autocast_and_channels_last_run_and_are_recorded(probe, tmp_path, amp, dtype):
    res = train_method("test-probe-ae", "rescale", scale=2, preset="smoke", amp=amp,
                       channels_last=True, out=tmp_path, **TINY)
    assert {s for s in probe.seen} == {(dtype, True)}  # every step autocast, channels_last
    assert all(torch.isfinite(torch.tensor(h["total"])) for h in res.history)
    for side in (_sidecar(res), json.loads((tmp_path / "checkpoint.json").read_text())):
        assert (side["amp"], side["bf16"], side["channels_last"], side["compile"]) == (
            amp, amp == "bf16", True, False)
    scaler = json.loads((tmp_path / "checkpoint.json").read_text())["scaler"]
    assert (scaler.get("scale") is not None) == (amp == "fp16")  # the scaler: fp16 only


def test_fp16_grad_scaler_state_is_checkpointed_and_resumed(tiny, tmp_path, monkeypatch):
    """fp16 on CPU goes through torch.amp.GradScaler("cpu"). A scale that doubles every step
    soon overflows and backs off, so the run depends on the scale: a resume that started from a
    fresh scaler would end with other weights."""
    monkeypatch.setattr(torch.amp, "GradScaler",
                        functools.partial(torch.amp.GradScaler, growth_interval=1))
    kw = dict(scale=2, preset="smoke", amp="fp16", max_bad_steps=100, **TINY)
    full = train_method("test-tiny-ae", "rescale", out=tmp_path / "a", **kw)
    train_method("test-tiny-ae", "rescale", out=tmp_path / "b", iterations=5, **kw)
    part = json.loads((tmp_path / "b" / "checkpoint.json").read_text())["scaler"]
    assert part["scale"] != 65536.0  # it moved: grown, or backed off after an overflow
    resumed = train_method("test-tiny-ae", "rescale", out=tmp_path / "b", resume=True, **kw)
    wa, wb = load_file(str(full.weights)), load_file(str(resumed.weights))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert (json.loads((tmp_path / "a" / "checkpoint.json").read_text())["scaler"]
            == json.loads((tmp_path / "b" / "checkpoint.json").read_text())["scaler"])


def test_cli_amp_channels_last_and_the_bf16_alias(tiny, tmp_path):
    base = ["train", "--plugin", "test-tiny-ae", "--scale", "2", "--preset", "smoke",
            "--device", "cpu", "--quiet", "--no-install"]
    res = CliRunner().invoke(cli, [*base, "--out", str(tmp_path / "a"), "--amp", "fp16",
                                   "--channels-last"])
    assert res.exit_code == 0, res.output
    side = json.loads((tmp_path / "a" / "weights.json").read_text())
    assert (side["amp"], side["channels_last"], side["compile"]) == ("fp16", True, False)
    res = CliRunner().invoke(cli, [*base, "--out", str(tmp_path / "b"), "--bf16"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "b" / "weights.json").read_text())["amp"] == "bf16"
    res = CliRunner().invoke(cli, [*base, "--out", str(tmp_path / "c"), "--bf16", "--amp",
                                   "fp16"])
    assert res.exit_code != 0 and "contradicts" in res.output


@pytest.mark.slow
def test_compile_trains_like_eager_and_is_recorded(tiny, tmp_path):
    """torch.compile (inductor: needs a C compiler on CPU) of the training loss: the same
    weights as eager up to float reassociation, and the sidecar says so."""
    eager = train_method("test-tiny-ae", "rescale", scale=2, preset="smoke",
                         out=tmp_path / "e", **TINY)
    comp = train_method("test-tiny-ae", "rescale", scale=2, preset="smoke", compile=True,
                        out=tmp_path / "c", **TINY)
    assert _sidecar(comp)["compile"] is True and _sidecar(eager)["compile"] is False
    we, wc = load_file(str(eager.weights)), load_file(str(comp.weights))
    assert max(float((we[k] - wc[k]).abs().max()) for k in we) < 1e-4
    assert not any(k.startswith("_orig_mod") for k in wc)  # plain keys: loads without compile


class LoudAE(TinyAE):
    """TinyAE with a loss 10⁴ times larger: its fp16 gradients overflow the initial loss scale."""

    name = "test-loud-ae"

    def training_loss(self, batch, task):
        return {k: v * 1e4 for k, v in super().training_loss(batch, task).items()}


def test_fp16_overflows_back_off_without_tripping_the_nan_guard(register_plugin, tmp_path):
    register_plugin(make_plugin(irnbench_register_methods=lambda register: register(LoudAE)),
                    "test-loud")
    res = train_method("test-loud-ae", "rescale", scale=2, preset="smoke", amp="fp16",
                       iterations=24, max_bad_steps=2, out=tmp_path, **TINY)
    scale = json.loads((tmp_path / "checkpoint.json").read_text())["scaler"]["scale"]
    assert 1.0 <= scale < 65536.0 / 4  # several overflows in a row, each backed off
    assert res.history and res.history[-1]["step"] == 24  # then real steps


def test_resume_with_another_amp_is_refused(tiny, tmp_path):
    """A checkpoint trained in bf16 does not continue in fp32 (nor the reverse): the resumed
    run would not be the one that was interrupted. Nothing is written."""
    from irnbench.errors import IrnbenchError

    out = tmp_path / "a"
    train_method("test-tiny-ae", "rescale", scale=2, preset="smoke", out=out, iterations=4,
                 amp="bf16", **TINY)
    before = (out / "checkpoint.safetensors").read_bytes()
    with pytest.raises(IrnbenchError, match="--amp bf16, this run has --amp off"):
        train_method("test-tiny-ae", "rescale", scale=2, preset="smoke", out=out, resume=True,
                     **TINY)
    assert (out / "checkpoint.safetensors").read_bytes() == before
    res = train_method("test-tiny-ae", "rescale", scale=2, preset="smoke", out=out, resume=True,
                       amp="bf16", **TINY)
    assert res.iterations == 8
