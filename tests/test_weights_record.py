"""The weights sidecar record and its one writer: both files or neither, the sidecar always
describing the file beside it, a clear error on a sidecar that is not one."""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

import pytest
import torch

from irnbench.errors import IrnbenchError
from irnbench.weights.record import WeightsRecord, atomic_write, write_weights

ROOT = Path(__file__).resolve().parents[1]

RECORD = WeightsRecord(method="irn", task="rescale", setting={"scale": 2},
                       task_key="rescale-x2", label="a test", preset="cpu", tag="local",
                       extra={"iteration": 3, "preset_config": {"batch_size": 2, "crop": 8}})


def test_write_weights_publishes_the_file_and_a_sidecar_that_describes_it(tmp_path):
    target = tmp_path / "w" / "rescale-x2.local.safetensors"
    digest = write_weights(target, {"a": torch.ones(2)}, RECORD)
    assert digest == hashlib.sha256(target.read_bytes()).hexdigest()
    side = json.loads(target.with_suffix(".json").read_text())
    assert side["kind"] == "irnbench-weights" and side["sha256"] == digest
    assert side["iteration"] == 3 and side["tag"] == "local"
    back = WeightsRecord.from_json(side)
    assert back.with_(sha256="") == RECORD and back.sha256 == digest
    assert not list(target.parent.glob("*.tmp"))


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "f.json"
    path.write_text("old")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", broken_fsync)
    with pytest.raises(OSError, match="No space"):
        atomic_write(path, b"new")
    assert path.read_text() == "old" and not list(tmp_path.glob("*.tmp"))


def test_a_sidecar_of_another_kind_or_lacking_fields_is_one_clear_error():
    with pytest.raises(IrnbenchError, match="not an irnbench weights sidecar"):
        WeightsRecord.from_json({"kind": "irnbench-checkpoint"}, "x.json")
    with pytest.raises(IrnbenchError, match="x.json lacks task, setting"):
        WeightsRecord.from_json({"kind": "irnbench-weights", "method": "irn", "label": "l",
                                 "task_key": "k", "preset": "cpu"}, "x.json")


def test_sidecars_are_written_only_through_the_record_writer():
    """No module writes a weights sidecar by hand: ``.json`` beside a weights file is written
    by ``write_weights`` (training checkpoints use the same ``atomic_write``)."""
    writers = []
    for path in [*(ROOT / "irnbench").rglob("*.py"), *(ROOT / "scripts").glob("*.py")]:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr in ("write_text", "write_bytes", "copyfile") and \
                    "with_suffix" in ast.unparse(node):
                writers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not writers
