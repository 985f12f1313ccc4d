"""Nothing a user does loses results: a training --out with a run in it needs --resume or
--overwrite, and an unwritable --out or cache is refused before any work."""

from __future__ import annotations

import dataclasses
import os

import pytest
from click.testing import CliRunner
from conftest import make_plugin
from helpers import TINY, TinyAE

from irnbench.cli import cli
from irnbench.errors import InvalidSetting
from irnbench.training import train_method
from irnbench.training.state import CHECKPOINT, read_checkpoint_meta


@pytest.fixture
def tiny(register_plugin):
    register_plugin(make_plugin(irnbench_register_methods=lambda register: register(TinyAE)),
                    "test-tiny")
    return "test-tiny-ae"


def _train(name, out, **kw):
    return train_method(name, "rescale", scale=2, preset="smoke", out=out, **{**TINY, **kw})


def test_training_over_a_checkpoint_needs_resume_or_overwrite(tiny, tmp_path):
    out = tmp_path / "run"
    _train(tiny, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(InvalidSetting, match="already holds a training run.*--resume.*"
                                             "--overwrite"):
        _train(tiny, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    res = CliRunner().invoke(cli, ["train", "--plugin", tiny, "--scale", "2", "--preset",
                                   "smoke", "--out", str(out), "--device", "cpu", "--quiet",
                                   "--no-install"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_overwrite_replaces_only_the_runs_own_files(tiny, tmp_path):
    out = tmp_path / "run"
    _train(tiny, out)
    (out / "notes.txt").write_text("mine")
    _train(tiny, out, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"
    assert read_checkpoint_meta(out / CHECKPOINT)["iteration"] == 8
    with pytest.raises(InvalidSetting, match="give one of them"):
        _train(tiny, out, overwrite=True, resume=True)
    # --overwrite removes the old run only once every other check has passed
    before = (out / "weights.safetensors").read_bytes()
    with pytest.raises(InvalidSetting, match="not the expected"):
        _train(tiny, out, overwrite=True, init=out / "weights.safetensors", init_sha256="0" * 64)
    assert (out / "weights.safetensors").read_bytes() == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through read-only permissions")
def test_a_read_only_out_is_refused_before_training(tiny, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    with pytest.raises(InvalidSetting, match="is not writable"):
        _train(tiny, ro / "run")


def test_an_out_under_a_file_is_refused_before_training(tiny, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidSetting, match="--out .*file/run is not writable"):
        _train(tiny, tmp_path / "file" / "run")


class TinyInstalling(TinyAE):
    """TinyAE with a preset that installs its weights (``smoke`` never does)."""

    name = "test-tiny-installing"
    presets = {"quick": dataclasses.replace(TinyAE.presets["smoke"], name="quick")}


def test_an_irnbench_home_that_is_a_file_names_the_variable(register_plugin, tmp_path,
                                                            monkeypatch):
    register_plugin(make_plugin(
        irnbench_register_methods=lambda register: register(TinyInstalling)), "test-inst")
    (tmp_path / "home").write_text("x")
    monkeypatch.setenv("IRNBENCH_HOME", str(tmp_path / "home"))
    with pytest.raises(InvalidSetting, match=r"\$IRNBENCH_HOME.*not writable"):
        train_method(TinyInstalling.name, "rescale", scale=2, preset="quick",
                     out=tmp_path / "run", **{**TINY, "install": True})
    assert not (tmp_path / "run").exists()
