"""Runs lose nothing (issue #29): ``run``/``eval`` write each finished unit durably, ``--resume``
continues a killed run to the uninterrupted run's results, and an existing, unwritable or
pointless ``--out`` request is refused before any work (one line, exit 2, nothing changed).

In-process "kills" are a method that raises KeyboardInterrupt (Ctrl-C) at its Nth restore; the
slow test kills ``irnbench eval`` subprocesses with SIGKILL, one of them a ``--nproc 2`` run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import make_plugin
from PIL import Image

from irnbench.cli import cli
from irnbench.methods import Method
from irnbench.ops.imresize import imresize

pytestmark = pytest.mark.filterwarnings("ignore::irnbench.data.decode.DataWarning")

#: Restore calls of ``Counting`` so far, and the call that raises KeyboardInterrupt (None: none).
CALLS: dict[str, int | None] = {"n": 0, "kill_at": None}


class Counting(Method):
    """Stochastic bicubic plus a little z noise; counts its restores, and "is killed" (raises
    KeyboardInterrupt) at restore number ``CALLS["kill_at"]``."""

    name = "test-resume-counting"
    tasks = ("rescale",)
    stochastic = True

    def degrade(self, x):
        return imresize(x, 1.0 / self.task.setting["scale"])

    def restore(self, y, temperature=1.0, generator=None, **channel_info):
        CALLS["n"] += 1
        if CALLS["kill_at"] is not None and CALLS["n"] >= CALLS["kill_at"]:
            raise KeyboardInterrupt
        up = imresize(y, float(self.task.setting["scale"]))
        z = torch.randn(up.shape, generator=generator, device=up.device, dtype=up.dtype)
        return up + 0.01 * temperature * z


class FailsOnWide(Counting):
    """Deterministic; fails on ``wide.png`` (the only 48 px wide image), works on the others."""

    name = "test-resume-fails"
    stochastic = False

    def restore(self, y, **channel_info):
        if y.shape[-1] == 24:
            raise RuntimeError("boom on the wide image")
        return imresize(y, float(self.task.setting["scale"]))


@pytest.fixture
def methods(register_plugin):
    register_plugin(make_plugin(irnbench_register_methods=lambda register: [
        register(Counting), register(FailsOnWide)]), "test-resume")
    CALLS.update(n=0, kill_at=None)
    yield "bicubic,test-resume-counting,test-resume-fails"
    CALLS.update(n=0, kill_at=None)


@pytest.fixture
def images(tmp_path) -> Path:
    """Four small colour images (the second one wider) and one too small for ×2."""
    root = tmp_path / "set"
    root.mkdir()
    rng = np.random.default_rng(0)
    for name, w in (("a.png", 40), ("wide.png", 48), ("c.png", 40), ("d.png", 40)):
        Image.fromarray(rng.integers(0, 256, (32, w, 3), dtype=np.uint8)).save(root / name)
    Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).save(root / "tiny.png")
    return root


def _eval(images: Path, out: Path, *extra: str, plugins: str = "bicubic"):
    args = ["eval", "--plugins", plugins, "--scale", "2", "--datasets", str(images),
            "--device", "cpu", "--quiet", "--out", str(out), *extra]
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_error_line(result, *needles: str) -> str:
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def _rows(out: Path) -> list[dict]:
    rows = json.loads((out / "results.json").read_text())["rows"]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


# ------------------------------------------------------------------------------------------
# --out policy and pointless requests: refused before any work, the folder unchanged


def test_rerun_without_a_flag_is_refused_and_changes_nothing(images, tmp_path):
    out = tmp_path / "run"
    assert _eval(images, out).exit_code == 0
    before = _files(out)
    _one_error_line(_eval(images, out), "already holds a run", "--resume", "--overwrite")
    _one_error_line(_eval(images, out, "--resume", "--overwrite"), "give one of them")
    assert _files(out) == before
    assert "units/rank0.jsonl" in before and "run.json" in before


@pytest.mark.parametrize(("flags", "says"), [
    (["--datasets", ""], "--datasets"), (["--datasets", ","], "--datasets"),
    (["--plugins", ""], "--plugins"), (["--draws", "0"], "--draws"),
    (["--draws", "-1"], "--draws")])
def test_empty_lists_and_draws_below_one_are_refused(flags, says, images, tmp_path):
    _one_error_line(_eval(images, tmp_path / "fresh", *flags), says)
    assert not (tmp_path / "fresh").exists()
    out = tmp_path / "run"
    assert _eval(images, out).exit_code == 0
    before = _files(out)
    # even with --overwrite: nothing is removed for a request that cannot run
    _one_error_line(_eval(images, out, "--overwrite", *flags), says)
    assert _files(out) == before


def test_overwrite_removes_the_old_runs_files_and_nothing_else(images, tmp_path):
    out = tmp_path / "run"
    assert _eval(images, out).exit_code == 0
    assert len(json.loads((out / "visuals" / "index.json").read_text())) == 3
    (out / "notes.txt").write_text("mine")
    one = tmp_path / "one"
    one.mkdir()
    (one / "a.png").write_bytes((images / "a.png").read_bytes())
    assert _eval(one, out, "--overwrite").exit_code == 0
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in (out / "visuals").iterdir()) == [
        "000_00.png", "000_01.png", "index.json"]
    assert {r["image"] for r in _rows(out) if r["source"] == "measured"} == {"a.png"}


def test_an_unwritable_out_is_refused_quickly_before_any_method(images, tmp_path, monkeypatch):
    import irnbench.registry
    import irnbench.runner

    def no(*args, **kwargs):
        raise AssertionError("a method was built")

    monkeypatch.setattr(irnbench.runner, "create_method", no)
    monkeypatch.setattr(irnbench.registry, "create_method", no)
    (tmp_path / "file").write_text("x")
    t0 = time.perf_counter()
    result = _eval(images, tmp_path / "file" / "run")
    assert time.perf_counter() - t0 < 2.0
    _one_error_line(result, "is not writable")
    assert (tmp_path / "file").read_text() == "x"


def test_resume_needs_a_run_to_continue(images, tmp_path):
    _one_error_line(_eval(images, tmp_path / "none", "--resume"), "no run to continue",
                    "without --resume")
    old = tmp_path / "old"  # a run from before run.json: only --overwrite replaces it
    old.mkdir()
    (old / "results.json").write_text("{}")
    _one_error_line(_eval(images, old, "--resume"), "no run.json", "--overwrite")


def test_meta_counts_evaluated_images_and_lists_the_skipped(images, tmp_path):
    out = tmp_path / "run"
    assert _eval(images, out).exit_code == 0
    (entry,) = json.loads((out / "meta.json").read_text())["datasets"]
    assert entry["images"] == 4 and entry["skipped"] == ["tiny.png"]


# ------------------------------------------------------------------------------------------
# kill and resume in process


@pytest.mark.parametrize("kill_at", [1, 4, 7])
def test_a_killed_run_resumes_to_the_uninterrupted_results(kill_at, methods, images, tmp_path):
    """Ctrl-C at restore ``kill_at`` of 8 (4 images × 2 draws; the first 3 images are shown):
    the units done survive, ``--resume`` computes only the others, and rows, failures, notes,
    metadata and visuals equal the uninterrupted run's."""
    full, part = tmp_path / "full", tmp_path / "part"
    assert _eval(images, full, "--draws", "2", plugins=methods).exit_code == 0
    assert CALLS["n"] == 8
    CALLS.update(n=0, kill_at=kill_at)
    killed = _eval(images, part, "--draws", "2", plugins=methods)
    assert killed.exit_code != 0 and not (part / "results.json").exists()
    from irnbench.runfolder import UnitLog

    done = UnitLog(part / "units").load().units.values()
    on_file = sum(len(u["rows"]) for u in done if u["key"][3] == Counting.name)
    assert on_file == 2 * ((kill_at - 1) // 2)  # only whole units are on file
    CALLS.update(n=0, kill_at=None)
    resumed = _eval(images, part, "--draws", "2", "--resume", plugins=methods)
    assert resumed.exit_code == 0, resumed.output
    assert "resume: " in resumed.output and "rows on file" in resumed.output
    assert CALLS["n"] == 8 - on_file  # only the missing units were computed
    assert _rows(part) == _rows(full)
    failed = [r for r in _rows(part) if r["method"] == FailsOnWide.name]
    assert [r["status"] for r in failed] == ["failed"]
    meta_a, meta_b = (json.loads((d / "meta.json").read_text()) for d in (full, part))
    assert {k: v for k, v in meta_b.items() if k != "date"} == {
        k: v for k, v in meta_a.items() if k != "date"}
    assert any("test-resume-fails failed on set/wide.png" in n for n in meta_b["notes"])
    vis_a, vis_b = _files(full / "visuals"), _files(part / "visuals")
    assert vis_a == vis_b and len(json.loads(vis_a["index.json"])) == 3


def test_resume_with_another_request_is_refused(methods, images, tmp_path):
    out = tmp_path / "run"
    CALLS["kill_at"] = 3
    assert _eval(images, out, "--draws", "2", plugins=methods).exit_code != 0
    before = _files(out)
    for flags, says in ((["--draws", "3"], "draws (2 on file, 3 now)"),
                        (["--draws", "2", "--scale", "4"], "settings"),
                        (["--draws", "2", "--jpeg", "50"], "settings")):
        _one_error_line(_eval(images, out, "--resume", *flags, plugins=methods), says)
    _one_error_line(_eval(images, out, "--resume", "--draws", "2", plugins="bicubic"),
                    "methods")
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.png").write_bytes((images / "a.png").read_bytes())
    _one_error_line(_eval(other, out, "--resume", "--draws", "2", plugins=methods),
                    "datasets")
    assert _files(out) == before


def test_a_partial_last_line_is_dropped(tmp_path):
    from irnbench.runfolder import UnitLog

    log = UnitLog(tmp_path / "units")
    log.append({"key": ["x2", 0, 0, "a"], "status": "ok", "rows": [{"psnr_y": float("inf")}]})
    with open(log.path, "a") as fh:
        fh.write('{"key": ["x2", 0, 1, "a"], "sta')  # killed mid-write
    again = UnitLog(tmp_path / "units").load()
    assert list(again.units) == [("x2", 0, 0, "a")]
    assert again.units[("x2", 0, 0, "a")]["rows"][0]["psnr_y"] == float("inf")
    again.append({"key": ["x2", 0, 1, "a"], "status": "ok", "rows": []})
    assert len(UnitLog(tmp_path / "units").load().units) == 2
    assert log.path.read_text().count("\n") == 2


# ------------------------------------------------------------------------------------------
# SIGKILL end to end


def _descendants(pid: int) -> list[int]:
    """The processes under ``pid`` (Linux ``/proc``): torchrun starts its ranks in sessions of
    their own, so killing its process group would leave them running."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _run_until(cmd: list[str], env: dict, units: Path, at_least: int) -> None:
    """Start ``cmd`` and SIGKILL it and every process under it once the unit files hold
    ``at_least`` lines in all (or let it end by itself)."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while proc.poll() is None and time.time() < deadline:
        done = sum(p.read_bytes().count(b"\n") for p in units.glob("rank*.jsonl"))
        if done >= at_least:
            for pid in [proc.pid, *_descendants(proc.pid)]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            break
        time.sleep(0.05)
    proc.wait()


@pytest.mark.slow
def test_sigkill_at_five_points_then_resume_equals_uninterrupted(tmp_path):
    """``irnbench eval`` on ``mini`` (bicubic + irn ×2, 2 draws: 16 units) killed with SIGKILL
    after 2, 5, 8 (a ``--nproc 2`` run, gloo), 11 and 14 units, each kill resumed by the next
    run; the last resume finishes. Its rows equal an uninterrupted run's (``seconds`` aside)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "irnbench", "eval", "--plugins", "bicubic,irn", "--scale",
            "2", "--draws", "2", "--datasets", "mini", "--device", "cpu", "--quiet"]
    subprocess.run(base + ["--out", str(tmp_path / "full")], check=True, env=env,
                   capture_output=True)
    out = tmp_path / "killed"
    cmd = base + ["--out", str(out)]
    for i, at in enumerate((2, 5, 8, 11, 14)):
        resume = ["--resume"] if i else []
        nproc = ["--nproc", "2"] if at == 8 else []
        _run_until(cmd + resume + nproc, env, out / "units", at)
        assert not (out / "results.json").exists()
    assert len(list((out / "units").glob("rank*.jsonl"))) == 2  # the --nproc 2 run's shards
    last = subprocess.run(cmd + ["--resume"], check=True, env=env, capture_output=True,
                          text=True)
    assert "resume: " in last.stderr
    assert _rows(out) == _rows(tmp_path / "full")
    assert _files(out / "visuals") == _files(tmp_path / "full" / "visuals")
