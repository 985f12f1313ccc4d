"""The ``irnbench`` command line, driven in-process with click's CliRunner.

Runs use tiny images in ``tmp_path`` folders, ``--quiet`` and ``irnbench eval`` (no report).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from irnbench.cli import cli
from irnbench.hookspecs import hookimpl
from irnbench.methods import Method
from irnbench.ops.imresize import imresize
from irnbench.plugins import load_plugins, pm
from irnbench.report import render_report


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("IRNBENCH_HOME", str(tmp_path / "home"))


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Two tiny colour images (smooth + texture, so that JPEG at q30 visibly hurts)."""
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:48, 0:64]
    smooth = np.stack([xx * 4, yy * 5, (xx + yy) * 2], axis=2).clip(0, 255).astype(np.uint8)
    noisy = (smooth.astype(int) + rng.integers(-40, 41, smooth.shape)).clip(0, 255)
    Image.fromarray(smooth, "RGB").save(root / "smooth.png")
    Image.fromarray(noisy.astype(np.uint8), "RGB").save(root / "texture.png")
    return root


def _invoke(runner: CliRunner, args: list[str]):
    return runner.invoke(cli, args, catch_exceptions=False)


def _eval_args(folder: Path, out: Path, *extra: str) -> list[str]:
    return ["eval", "--plugins", "bicubic", "--datasets", str(folder), "--quiet",
            "--out", str(out), *extra]


def _one_error_line(result) -> str:
    """The whole output is one line starting with 'Error:' (no traceback)."""
    text = result.output
    assert "Traceback" not in text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert lines[0].startswith("Error:"), text
    return lines[0]


# ------------------------------------------------------------------------------------------
# --help everywhere


def _all_commands() -> list[list[str]]:
    paths: list[list[str]] = []
    for name, cmd in cli.commands.items():
        paths.append([name])
        if isinstance(cmd, click.Group):
            paths.extend([name, sub] for sub in cmd.commands)
    return paths


def test_top_level_help(runner):
    result = _invoke(runner, ["--help"])
    assert result.exit_code == 0
    for name in ("run", "eval", "train", "report", "plugins", "tasks", "datasets"):
        if name in cli.commands:
            assert name in result.output


def test_expected_commands_exist():
    for name in ("run", "eval", "report", "plugins", "tasks", "datasets"):
        assert name in cli.commands
    assert "list" in cli.commands["datasets"].commands


@pytest.mark.parametrize("path", _all_commands(), ids=" ".join)
def test_every_command_has_help(runner, path):
    result = _invoke(runner, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_version(runner):
    from irnbench import __version__

    result = _invoke(runner, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


# ------------------------------------------------------------------------------------------
# Unknown names and bad parameters: one line, exit 2


def test_unknown_plugin(runner, folder, tmp_path):
    result = _invoke(runner, ["eval", "--plugins", "no-such-method", "--scale", "2",
                              "--datasets", str(folder), "--quiet", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    line = _one_error_line(result)
    assert "no-such-method" in line and "bicubic" in line
    assert not (tmp_path / "r" / "results.csv").exists()


def test_unknown_task(runner, folder, tmp_path):
    result = _invoke(runner, ["eval", "--task", "no-such-task", "--datasets", str(folder),
                              "--quiet", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    line = _one_error_line(result)
    assert "no-such-task" in line and "rescale" in line


def test_unknown_dataset(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # so that the name cannot be a folder by accident
    result = _invoke(runner, ["eval", "--plugins", "bicubic", "--scale", "2", "--datasets",
                              "no-such-set", "--quiet", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    line = _one_error_line(result)
    assert "no-such-set" in line and "mini" in line and "mini-train" in line


def test_bad_scale_is_a_bad_parameter(runner, folder, tmp_path):
    result = _invoke(runner, _eval_args(folder, tmp_path / "r", "--scale", "3,x"))
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "--scale" in result.output
    assert not (tmp_path / "r").exists()


def test_bad_device_is_a_bad_parameter(runner, folder, tmp_path):
    result = _invoke(runner, _eval_args(folder, tmp_path / "r", "--scale", "2",
                                        "--device", "bogus"))
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "--device" in result.output
    assert not (tmp_path / "r").exists()


def test_unsupported_scale_exits_2(runner, folder, tmp_path):
    result = _invoke(runner, _eval_args(folder, tmp_path / "r", "--scale", "5"))
    assert result.exit_code == 2
    _one_error_line(result)


class _SecondMethod(Method):
    name = "cli-test-second"
    tasks = ("rescale",)

    def degrade(self, x):
        return imresize(x, 1.0 / self.task.setting["scale"])

    def restore(self, y, **channel_info):
        return imresize(y, float(self.task.setting["scale"]))


class _SecondPlugin:
    @hookimpl
    def irnbench_register_methods(self, register):
        register(_SecondMethod)


@pytest.fixture
def second_method():
    load_plugins()
    name = "cli-test-second-plugin"
    pm.register(_SecondPlugin(), name=name)
    try:
        yield _SecondMethod.name
    finally:
        pm.unregister(name=name)


def test_weights_with_two_plugins_exits_2(runner, folder, tmp_path, second_method):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"")
    result = _invoke(runner, ["eval", "--plugins", f"bicubic,{second_method}", "--scale", "2",
                              "--weights", str(weights), "--datasets", str(folder), "--quiet",
                              "--out", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "--weights" in result.output
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------------------
# eval


def test_eval_writes_results_and_prints_leaderboard(runner, folder, tmp_path, monkeypatch):
    out = tmp_path / "run"
    args = _eval_args(folder, out, "--scale", "2")
    # the command line is recorded from sys.argv, as the console script sees it
    monkeypatch.setattr(sys, "argv", ["irnbench", *args])
    result = _invoke(runner, args)
    assert result.exit_code == 0, result.output
    assert "bicubic" in result.output
    assert "psnr_y" in result.output
    for f in ("results.csv", "results.json", "meta.json"):
        assert (out / f).is_file(), f
    assert not (out / "report.html").exists()  # eval renders no report

    meta = json.loads((out / "meta.json").read_text())
    for key in ("command", "git_commit", "versions", "device", "seeds", "protocol"):
        assert key in meta, key
    assert meta["command"].startswith("irnbench eval --plugins bicubic")
    assert "--scale 2" in meta["command"]
    assert "torch" in meta["versions"] and "libjpeg" in meta["versions"]
    assert meta["versions"]["torch"] == torch.__version__
    assert meta["protocol"]  # one paragraph per setting
    assert all(isinstance(v, str) and v for v in meta["protocol"].values())

    payload = json.loads((out / "results.json").read_text())
    assert payload["meta"]["command"] == meta["command"]
    df = pd.read_csv(out / "results.csv")
    measured = df[df["source"] == "measured"]
    assert sorted(measured["image"]) == ["smooth.png", "texture.png"]
    assert set(measured["method"]) == {"bicubic"}
    assert set(measured["setting"]) == {"x2"}
    assert (measured["status"] == "ok").all()
    assert len(payload["rows"]) == len(df)


def test_eval_jpeg_conditions(runner, folder, tmp_path):
    plain_dir, jpeg_dir = tmp_path / "plain", tmp_path / "jpeg"
    r1 = _invoke(runner, _eval_args(folder, plain_dir, "--scale", "2"))
    r2 = _invoke(runner, _eval_args(folder, jpeg_dir, "--scale", "2", "--jpeg", "30,90"))
    assert r1.exit_code == 0, r1.output
    assert r2.exit_code == 0, r2.output
    assert "q30" in r2.output and "q90" in r2.output
    plain = pd.read_csv(plain_dir / "results.csv")
    plain = plain[plain["source"] == "measured"]
    jp = pd.read_csv(jpeg_dir / "results.csv")
    jp = jp[jp["source"] == "measured"]
    assert sorted(jp["quality"].unique().tolist()) == [30, 90]
    assert len(jp) == 2 * len(plain)
    assert plain["quality"].isna().all()
    assert jp["bpp"].notna().all() and (jp["bpp"] > 0).all()
    assert plain["bpp"].isna().all()

    mean = {q: g["psnr_y"].mean() for q, g in jp.groupby("quality")}
    assert mean[30] < plain["psnr_y"].mean()
    assert mean[30] < mean[90]
    # per image too: JPEG at q30 only loses information
    by_img = plain.set_index("image")["psnr_y"]
    q30 = jp[jp["quality"] == 30].set_index("image")["psnr_y"]
    assert (q30 < by_img.loc[q30.index]).all()
    # the method's LR itself is untouched by the codec: LR fidelity stays that of bicubic
    assert np.isinf(jp["lr_psnr_y"]).all()
    bpp = jp.groupby("quality")["bpp"].mean()
    assert bpp[30] < bpp[90]


def test_run_with_report(runner, folder, tmp_path):
    """``run`` writes the report beside the results; ``render_report`` re-renders the folder."""
    out = tmp_path / "run"
    result = runner.invoke(cli, ["run", "--plugins", "bicubic", "--scale", "2", "--datasets",
                                 str(folder), "--quiet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "results.csv").is_file()
    html = (out / "report.html").read_text()
    assert "bicubic" in html
    again = render_report(out, tmp_path / "again.html")
    assert "bicubic" in again.read_text()


# ------------------------------------------------------------------------------------------
# plugins, tasks, datasets


def test_plugins_lists_bicubic(runner):
    result = _invoke(runner, ["plugins"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    head = [i for i, line in enumerate(lines) if line.startswith("bicubic ")]
    assert head, result.output
    i = head[0]
    version = lines[i].split()[1]
    assert version[0].isdigit(), lines[i]  # "bicubic 0.1.0 (plugin, ...)"
    block = []
    for line in lines[i + 1:]:
        if not line.startswith("  "):
            break
        block.append(line.strip())
    assert "methods: bicubic" in block


def test_plugins_json(runner):
    result = _invoke(runner, ["plugins", "--json"])
    assert result.exit_code == 0
    infos = json.loads(result.output)
    assert isinstance(infos, list)
    by_name = {i["name"]: i for i in infos}
    assert "bicubic" in by_name
    assert by_name["bicubic"]["version"]
    assert "bicubic" in by_name["bicubic"]["methods"]
    tasks = [t for i in infos for t in i["tasks"]]
    datasets = [d for i in infos for d in i["datasets"]]
    assert "rescale" in tasks
    assert "mini" in datasets and "mini-train" in datasets


def test_tasks_lists_rescale(runner):
    result = _invoke(runner, ["tasks"])
    assert result.exit_code == 0
    assert any(line.startswith("rescale") for line in result.output.splitlines())
    assert "bicubic" in result.output
    assert "scale" in result.output


def test_datasets_list(runner):
    result = _invoke(runner, ["datasets", "list"])
    assert result.exit_code == 0
    names = [line.split()[0] for line in result.output.splitlines() if line.strip()]
    assert "mini" in names and "mini-train" in names
    mini_line = next(line for line in result.output.splitlines() if line.split()[0] == "mini")
    assert "available" in mini_line


def test_default_methods_skip_those_without_weights(runner, folder, tmp_path,
                                                    hide_shipped_weights):
    """With no --plugins, run uses every method that has weights and names the others."""
    hide_shipped_weights("irn", "car", "tar")
    res = runner.invoke(cli, ["eval", "--scale", "2", "--datasets", str(folder), "--quiet",
                              "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert "bicubic [measured]" in res.output
    assert "skipping irn" in res.output and "irnbench train --plugin irn" in res.output


def test_run_and_eval_pass_one_run_request(runner, monkeypatch):
    """Every flag lands in its own ``RunRequest`` field (positional arguments could swap)."""
    import irnbench.cli as cli_mod

    seen = []
    monkeypatch.setattr(cli_mod, "_do_run", seen.append)
    flags = ["--task", "compress", "--plugins", "irn", "--scale", "2", "--jpeg", "30",
             "--datasets", "set5", "--device", "cpu", "--draws", "3", "--weights", "w.st",
             "--out", "o", "--iqa", "lpips", "--quiet", "--option", "tile=64",
             "--option", "lambda_ce=2"]
    assert runner.invoke(cli, ["run", *flags, "--train-missing", "--preset", "smoke"]
                         ).exit_code == 0
    assert runner.invoke(cli, ["eval", *flags]).exit_code == 0
    common = dict(task="compress", plugins="irn", scale="2", jpeg="30", datasets="set5",
                  device="cpu", draws=3, weights="w.st", out="o", iqa="lpips", quiet=True,
                  nproc=None, options=("tile=64", "lambda_ce=2"))
    assert seen == [cli_mod.RunRequest(**common, train_missing=True, preset="smoke"),
                    cli_mod.RunRequest(**common, report=False)]
