"""What a published run records: datasets by name and content, no machine paths, and the z draws
of each task's protocol (CliRunner on ``irnbench run``, tiny images, bicubic / test methods)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from irnbench.cli import cli
from irnbench.data.loading import resolve_dataset
from irnbench.hookspecs import hookimpl
from irnbench.methods import Method
from irnbench.ops.imresize import imresize
from irnbench.protocol import COMPRESS_DRAWS, STOCHASTIC_DRAWS, draws_text
from irnbench.registry import create_task
from irnbench.runinfo import (
    PATH_PLACEHOLDER,
    public_command,
    public_path,
    scrub_paths,
    scrub_record,
)

RUN_FILES = ("meta.json", "results.json", "results.csv", "report.html")


def _images(root: Path) -> Path:
    """Two small colour PNGs in ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 256, (32, 40, 3), dtype=np.uint8), "RGB").save(root / name)
    return root


def _run(args: list[str], monkeypatch) -> None:
    # the command line is recorded from sys.argv, as the console script sees it
    monkeypatch.setattr(sys, "argv", ["irnbench", *args])
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output


@pytest.fixture
def bicubic_run(tmp_path, monkeypatch):
    images = _images(tmp_path / "set")
    out = (tmp_path / "runs" / "a").resolve()
    _run(["run", "--plugins", "bicubic", "--scale", "2", "--datasets", str(images.resolve()),
          "--out", str(out), "--quiet"], monkeypatch)
    return images, out


# ------------------------------------------------------------------------------------------
# no machine paths


def test_run_files_hold_no_machine_path(bicubic_run, tmp_path):
    images, out = bicubic_run
    leaks = {str(tmp_path.resolve()), str(tmp_path), os.environ["IRNBENCH_HOME"]}
    home = os.path.expanduser("~")
    if len(home) > 1:
        leaks.add(home)
    for name in RUN_FILES:
        text = (out / name).read_text()
        for leak in leaks:
            assert leak not in text, (name, leak)
    meta = json.loads((out / "meta.json").read_text())
    assert "--out" in meta["command"] and f"{PATH_PLACEHOLDER}/a" in meta["command"]
    assert f"{PATH_PLACEHOLDER}/set" in meta["command"]


def test_dataset_recorded_by_name_and_fingerprint(bicubic_run):
    images, out = bicubic_run
    meta = json.loads((out / "meta.json").read_text())
    (entry,) = meta["datasets"]
    assert set(entry) == {"name", "images", "fingerprint", "skipped"}
    assert entry["name"] == "set" and entry["images"] == 2 and entry["skipped"] == []
    assert len(entry["fingerprint"]) == 64 and int(entry["fingerprint"], 16) >= 0
    assert entry["fingerprint"] == resolve_dataset(str(images)).fingerprint


def test_fingerprint_follows_content_not_place(tmp_path):
    first = _images(tmp_path / "one")
    copy = tmp_path / "elsewhere" / "two"
    shutil.copytree(first, copy)
    fp = resolve_dataset(str(first)).fingerprint
    assert resolve_dataset(str(copy)).fingerprint == fp
    # one pixel of one image changed: another fingerprint
    arr = np.array(Image.open(copy / "b.png"))
    arr[0, 0, 0] ^= 1
    Image.fromarray(arr).save(copy / "b.png")
    assert resolve_dataset(str(copy)).fingerprint != fp
    # a renamed image too: names are part of it
    shutil.copytree(first, tmp_path / "three")
    (tmp_path / "three" / "b.png").rename(tmp_path / "three" / "c.png")
    assert resolve_dataset(str(tmp_path / "three")).fingerprint != fp


def test_bundled_mini_fingerprint_is_stable():
    a, b = resolve_dataset("mini"), resolve_dataset("mini")
    assert a.fingerprint == b.fingerprint and len(a.fingerprint) == 64


# ------------------------------------------------------------------------------------------
# the path rule


def test_public_path(tmp_path, monkeypatch):
    work = tmp_path / "work"
    monkeypatch.setenv("HOME", str(tmp_path / "home" / "alice"))
    assert public_path(str(work / "runs" / "a"), cwd=work) == "runs/a"
    assert public_path(str(work), cwd=work) == "."
    assert public_path("/data/sets/set5", cwd=work) == "<path>/set5"
    assert public_path("~/runs/b", cwd=work) == "<path>/b"
    assert public_path("~", cwd=work) == "<path>"  # not the login name
    assert public_path("/", cwd=work) == "<path>"
    assert public_path("/data/x", cwd="/") == "<path>/x"  # never relative to the root
    assert public_path("C:\\Users\\alice\\set5", cwd=work) == "<path>/set5"
    for rel in ("mini", "runs/a", "../x", "irn.cpu", "30"):
        assert public_path(rel, cwd=work) == rel


def test_public_command(tmp_path):
    work = tmp_path / "work"
    cmd = public_command(
        ["irnbench", "run", "--out", str(work / "runs" / "a"), "--datasets",
         f"mini,/data/set5,{work / 'sets' / 'k'}", "--weights=/srv/w/irn x2.safetensors",
         "--jpeg", "30,50", "--plugins", "irn.cpu"], cwd=work)
    assert cmd == ("irnbench run --out runs/a --datasets 'mini,<path>/set5,sets/k' "
                   "'--weights=<path>/irn x2.safetensors' --jpeg 30,50 --plugins irn.cpu")
    assert public_command("irnbench run --out /home/x/r", cwd=work) == "irnbench run --out " \
        "'<path>/r'"
    assert public_command("pytest") == "pytest"


def test_scrub_paths_leaves_formulas_and_urls():
    text = ('irn failed on mini/a.png: OSError: \'/home/x/a.png\'\n  File "/opt/venv/lib/m.py", '
            "line 3. PSNR/SSIM on Y, (65.481R + 24.966B)/255, 1/s; https://github.com/a/b; "
            "no images in /data/set5.")
    out = scrub_paths(text, cwd="/work")
    assert "/home/x" not in out and "/opt/venv" not in out and "/data/" not in out
    assert "'<path>/a.png'" in out and '"<path>/m.py"' in out and "<path>/set5." in out
    for kept in ("mini/a.png", "PSNR/SSIM", "24.966B)/255", "1/s", "https://github.com/a/b"):
        assert kept in out


# ------------------------------------------------------------------------------------------
# z draws per task


class _NoisyBicubic(Method):
    """A stochastic method on rescale and compress: bicubic plus a little z noise."""

    name = "test-noisy-draws"
    tasks = ("rescale", "compress")
    stochastic = True

    def degrade(self, hr: torch.Tensor) -> torch.Tensor:
        return imresize(hr, 1.0 / self.task.scale)

    def restore(self, lr: torch.Tensor, generator=None, temperature: float = 1.0,
                **_) -> torch.Tensor:
        up = imresize(lr, float(self.task.scale))
        z = torch.randn(up.shape, generator=generator, device=up.device)
        return (up + 0.01 * temperature * z).clamp(0, 1)


class _Unreadable(_NoisyBicubic):
    """Fails with an error that quotes an absolute path (as an OSError would)."""

    name = "test-unreadable"
    stochastic = False
    where = "/nowhere"

    def restore(self, lr: torch.Tensor, **_) -> torch.Tensor:
        raise OSError(f"cannot read {self.where}/side.bin")


@pytest.fixture
def noisy_method(register_plugin):
    class _Plugin:
        @hookimpl
        def irnbench_register_methods(self, register):
            register(_NoisyBicubic)
            register(_Unreadable)

    register_plugin(_Plugin(), "test-noisy-draws-plugin")


def test_failure_notes_and_errors_hold_no_machine_path(noisy_method, tmp_path, monkeypatch):
    secret = tmp_path / "private" / "weights"
    monkeypatch.setattr(_Unreadable, "where", str(secret))
    out = tmp_path / "run"
    _run(["run", "--plugins", "bicubic,test-unreadable", "--scale", "2", "--datasets",
          str(_images(tmp_path / "set")), "--out", str(out), "--quiet"], monkeypatch)
    meta = json.loads((out / "meta.json").read_text())
    assert any("test-unreadable failed" in n and "<path>/side.bin" in n for n in meta["notes"])
    rows = json.loads((out / "results.json").read_text())["rows"]
    (failed,) = [r for r in rows if r["method"] == "test-unreadable"]
    assert failed["error"] == "OSError: cannot read <path>/side.bin"
    for name in RUN_FILES:
        text = (out / name).read_text()
        assert str(tmp_path) not in text and os.getcwd() not in text, name


def test_task_default_draws():
    assert create_task("rescale", scale=2).default_draws == STOCHASTIC_DRAWS == 5
    assert create_task("compress").default_draws == COMPRESS_DRAWS == 1
    assert create_task("decolorize").default_draws == STOCHASTIC_DRAWS
    for name in ("rescale", "compress", "decolorize"):
        task = create_task(name)
        assert draws_text(task.default_draws) in task.protocol(), name


@pytest.mark.parametrize(("task", "draws", "says"),
                         [("compress", 1, "one z draw per image"),
                          ("rescale", 5, "mean over 5 z draws")])
def test_default_draws_of_a_run(task, draws, says, noisy_method, tmp_path, monkeypatch):
    images = _images(tmp_path / "set")
    out = tmp_path / "run"
    args = ["eval", "--task", task, "--plugins", "test-noisy-draws", "--scale", "2",
            "--datasets", str(images), "--out", str(out), "--quiet"]
    if task == "compress":
        args += ["--jpeg", "50"]
    _run(args, monkeypatch)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["draws"] == draws and meta["seeds"]["z_draws"] == list(range(draws))
    (text,) = meta["protocol"].values()
    assert says in text and "This run used" not in text
    rows = json.loads((out / "results.json").read_text())["rows"]
    measured = [r for r in rows if r["source"] == "measured"]
    assert sorted({r["draw"] for r in measured}) == list(range(draws))


def test_draws_other_than_the_protocol_are_stated(noisy_method, tmp_path, monkeypatch):
    out = tmp_path / "run"
    _run(["eval", "--task", "compress", "--plugins", "test-noisy-draws", "--jpeg", "50",
          "--datasets", str(_images(tmp_path / "set")), "--out", str(out), "--quiet",
          "--draws", "2"], monkeypatch)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["draws"] == 2
    (text,) = meta["protocol"].values()
    assert text.endswith("This run used 2 z draws, not the protocol's 1.")


def test_scrub_record_walks_json():
    record = {"label": "user weights (/srv/x/w.safetensors)", "n": 3, "tags": ["a", "/opt/b"],
              "nested": {"t": ("/x/y", 1)}}
    assert scrub_record(record, cwd="/work") == {
        "label": "user weights (<path>/w.safetensors)", "n": 3, "tags": ["a", "<path>/b"],
        "nested": {"t": ("<path>/y", 1)}}
