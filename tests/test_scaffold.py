"""``irnbench new-plugin`` (the plugin project template) and ``irnbench presets``."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import irnbench
from irnbench.cli import cli
from irnbench.errors import InvalidSetting
from irnbench.options import describe_options
from irnbench.registry import get_method_class

NAME = "demo-sharp"
MODULE = "irnbench_demo_sharp"
FILES = {".gitignore", "README.md", "pyproject.toml", f"{MODULE}/__init__.py",
         "tests/test_demo_sharp.py"}


def _new_plugin(out: Path, name: str = NAME):
    return CliRunner().invoke(cli, ["new-plugin", "--out", str(out), "--", name])


@pytest.fixture
def project(tmp_path) -> Path:
    """A freshly generated ``irnbench-demo-sharp`` project."""
    res = _new_plugin(tmp_path)
    assert res.exit_code == 0, res.output
    return tmp_path / f"irnbench-{NAME}"


@pytest.fixture
def plugin_module(project, monkeypatch):
    """The generated module, imported from the project folder (removed again afterwards)."""
    monkeypatch.syspath_prepend(str(project))
    yield importlib.import_module(MODULE)
    sys.modules.pop(MODULE, None)


def _images(folder: Path) -> Path:
    """Two small PNGs (a gradient and a noisy copy)."""
    folder.mkdir()
    yy, xx = np.mgrid[0:48, 0:64]
    smooth = np.stack([xx * 4, yy * 5, (xx + yy) * 2], axis=2).clip(0, 255).astype(np.uint8)
    noisy = (smooth + np.random.default_rng(0).integers(-30, 31, smooth.shape)).clip(0, 255)
    Image.fromarray(smooth, "RGB").save(folder / "smooth.png")
    Image.fromarray(noisy.astype(np.uint8), "RGB").save(folder / "noisy.png")
    return folder


# -- new-plugin ------------------------------------------------------------------------------
def test_new_plugin_writes_the_project(project):
    tomllib = pytest.importorskip("tomllib")  # Python ≥ 3.11
    written = {p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file()}
    assert written == FILES
    meta = tomllib.loads((project / "pyproject.toml").read_text())
    assert meta["project"]["name"] == f"irnbench-{NAME}"
    assert meta["project"]["version"] == "0.1.0"
    assert meta["project"]["dependencies"] == ["irnbench"]
    assert meta["project"]["entry-points"]["irnbench"] == {NAME: MODULE}
    assert meta["project"]["optional-dependencies"]["test"] == ["pytest"]
    assert meta["build-system"]["build-backend"] == "setuptools.build_meta"
    readme = (project / "README.md").read_text()
    for text in ("pip install -e .", f"irnbench run --plugins {NAME},bicubic", "pytest"):
        assert text in readme
    assert "{{" not in "".join(p.read_text() for p in project.rglob("*") if p.is_file())


def test_generated_module_imports(plugin_module):
    cls = plugin_module.DemoSharp
    assert issubclass(cls, irnbench.Method)
    assert cls.name == NAME and cls.tasks == ("rescale",)
    assert isinstance(cls.paper, irnbench.Paper) and cls.description
    assert callable(plugin_module.irnbench_register_methods)


def test_generated_plugin_works_without_pip(plugin_module, register_plugin):
    register_plugin(plugin_module, NAME)
    assert NAME in irnbench.list_methods("rescale")
    x = torch.rand(1, 3, 32, 48)
    ours = irnbench.create_method(NAME, scale=2)
    bicubic = irnbench.create_method("bicubic", scale=2)
    with torch.no_grad():
        restored = ours.restore(ours.degrade(x))
        assert restored.shape == x.shape
        assert torch.allclose(restored, bicubic.restore(bicubic.degrade(x)), atol=1e-6)
        sharp = irnbench.create_method(NAME, scale=2, amount=1.0)
        assert not torch.allclose(sharp.restore(sharp.degrade(x)), restored)
    assert [o.name for o in describe_options(plugin_module.DemoSharp.Options)] == ["amount"]
    with pytest.raises(InvalidSetting, match="option 'amount' expects float"):
        irnbench.create_method(NAME, scale=2, amount="lots")
    with pytest.raises(InvalidSetting, match="amount must be >= 0"):
        irnbench.create_method(NAME, scale=2, amount=-1)


def test_new_plugin_refuses_an_existing_folder(project):
    res = _new_plugin(project.parent)
    assert res.exit_code == 2
    assert "already exists" in res.output and len(res.output.strip().splitlines()) == 1


def test_new_plugin_accepts_an_empty_folder(tmp_path):
    (tmp_path / f"irnbench-{NAME}").mkdir()
    assert _new_plugin(tmp_path).exit_code == 0


@pytest.mark.parametrize("name", ["Demo", "demo_sharp", "-demo", "demo-", "1demo", "a b",
                                  "bicubic", "plugins"])
def test_new_plugin_refuses_a_bad_name(tmp_path, name):
    res = _new_plugin(tmp_path, name)
    assert res.exit_code == 2, res.output
    assert res.output.startswith("Error: ") and len(res.output.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_new_plugin_end_to_end_with_pip(project, tmp_path):
    """pip-install the generated project, then list, run and test it in subprocesses."""
    pip = [sys.executable, "-m", "pip"]
    irnbench_cli = [sys.executable, "-m", "irnbench"]
    installed = subprocess.run([*pip, "install", "--no-deps", "--no-build-isolation", "-e",
                                str(project)], capture_output=True, text=True)
    try:
        assert installed.returncode == 0, installed.stdout + installed.stderr
        listed = subprocess.run([*irnbench_cli, "plugins"], capture_output=True, text=True)
        assert listed.returncode == 0, listed.stderr
        assert NAME in listed.stdout
        run = subprocess.run([*irnbench_cli, "run", "--plugins", f"{NAME},bicubic", "--scale",
                              "2", "--datasets", str(_images(tmp_path / "imgs")), "--quiet",
                              "--out", str(tmp_path / "run")], capture_output=True, text=True)
        assert run.returncode == 0, run.stdout + run.stderr
        assert (tmp_path / "run" / "results.json").exists()
        tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                str(project / "tests")], capture_output=True, text=True,
                               cwd=project)
        assert tests.returncode == 0, tests.stdout + tests.stderr
    finally:
        subprocess.run([*pip, "uninstall", "-y", f"irnbench-{NAME}"], capture_output=True)


# -- presets ---------------------------------------------------------------------------------
def test_presets_lists_irn_presets():
    res = CliRunner().invoke(cli, ["presets", "irn"])
    assert res.exit_code == 0, res.output
    lines = {line.split()[0]: line for line in res.output.splitlines()[1:]}
    cls = get_method_class("irn")
    for name in ("paper", "cpu", "smoke"):
        assert f"{cls.presets[name].iterations} iterations" in lines[name]
    assert "500000 iterations" in lines["paper"] and "published schedule" in lines["paper"]
    # the presets that made shipped weights, and no tries that were not shipped
    kept = {"paper", "cpu", "cpu-ft-color", "cpu-long", "cpu-sat", "cpu-cast", "cpu-long-plain",
            "smoke"}
    assert set(lines) == kept
    assert "--init: cpu-sat weights" in lines["cpu-cast"]
    assert "colour augment+clip+cast" in lines["cpu-cast"]
    assert "colour" not in lines["cpu-long-plain"]


def test_presets_list_no_untried_fine_tunes():
    """Fine-tunes that shipped nothing are text in docs/experiments.md, not presets."""
    assert set(get_method_class("irn-color").presets) == {"paper", "cpu", "smoke"}
    out = CliRunner().invoke(cli, ["presets", "tar"]).output
    assert "cpu-sat" not in out and "cpu-cast" not in out


def test_presets_shows_per_task_presets_and_notes(monkeypatch):
    cls = get_method_class("tar")
    monkeypatch.setattr(cls, "preset_notes", {"cpu": "slim configuration"}, raising=False)
    out = CliRunner().invoke(cli, ["presets", "tar"]).output
    assert "tar presets on decolorize" in out
    assert "slim configuration" in out


def test_presets_of_a_method_without_any():
    res = CliRunner().invoke(cli, ["presets", "bicubic"])
    assert res.exit_code == 0
    assert "no training presets" in res.output


def test_presets_of_an_unknown_method():
    res = CliRunner().invoke(cli, ["presets", "nope"])
    assert res.exit_code == 2
    assert "unknown method 'nope'" in res.output and "irn" in res.output


def test_train_preset_help_points_to_presets():
    res = CliRunner().invoke(cli, ["train", "--help"])
    assert "irnbench presets METHOD" in " ".join(res.output.split())
