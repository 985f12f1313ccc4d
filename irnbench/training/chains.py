"""Fine-tune chains: the starting weights of a run (``--init``, checked by sha256), the record
a run keeps of them, the command it records, and the label that names every step of a chain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from irnbench.errors import InvalidSetting
from irnbench.methods import Method
from irnbench.registry import check_weights_file, find_weights, load_weights
from irnbench.tasks.base import Task
from irnbench.training.presets import Preset
from irnbench.weights import read_sidecar, sha256_file
from irnbench.weights.store import reading

__all__ = ["INIT_RECORD_KEYS", "check_init_sha256", "load_init", "recorded_command",
           "weights_label"]


def weights_label(preset: str, steps: int, init: dict[str, Any] | None = None) -> str:
    """The label every table shows, naming each preset of a chain of fine-tunes in order.

    ``init`` is the run's record of its starting weights (which holds their own ``init``, and so
    on): "irnbench cpu preset + cpu-ft-color preset + cpu-ft-color preset, 2500 steps in all".
    """
    if not init:
        return f"irnbench {preset} preset, {steps} steps (not the paper's model)"
    chain, rec = [preset], init
    while rec:
        chain.append(rec.get("preset") or "other")
        rec = rec.get("init")
    steps_in_all = steps + int(init.get("steps_in_all") or 0)
    return (f"irnbench {' + '.join(f'{p} preset' for p in reversed(chain))}, "
            f"{steps_in_all} steps in all (not the paper's model)")


#: What a fine-tune keeps of the record of the weights it started from.
INIT_RECORD_KEYS = ("iteration", "wall", "commands", "rebuild", "commit", "machine",
                    "preset_config", "init")


def load_init(model: Method, cls: type[Method], task: Task, preset: Preset,
               init: str | Path | None, init_sha256: str | None = None) -> dict[str, Any]:
    """Load the starting weights of a fine-tune (``init``) into ``model``; return what the run
    records about them ({} for a fresh start).

    ``init_sha256`` (the full digest or a prefix of at least 12 hex digits) must match the file,
    or nothing is loaded and nothing written. A chain-step preset (``Preset.continues``) needs
    ``init``: it never falls back to whatever weights ship today.
    """
    if init is None:
        if preset.continues:
            raise InvalidSetting(
                f"preset {preset.name!r} of {cls.name!r} fine-tunes {preset.continues!r} "
                f"weights: pass --init PATH (and --init-sha256 HEX) of the run that trained "
                "them; irnbench.weights.chain_commands(sidecar) lists the commands that rebuild "
                "a chain, oldest step first (docs/training.md, 'Fine-tune chains')"
            )
        if init_sha256:
            raise InvalidSetting("--init-sha256 checks the file of --init; there is none")
        return {}
    if Path(init).is_file():  # a PyTorch checkpoint: one line naming `weights import`
        check_weights_file(Path(init), cls, task, "--init")
    with reading(init):  # a cache file: its digest, sidecar and tensors from one install
        loc = find_weights(cls, task, init)
        digest = check_init_sha256(loc.path, init_sha256)
        side = read_sidecar(loc.path)
        if side.get("task_key") not in (None, task.key):
            raise InvalidSetting(f"--init {loc.path} holds {side['task_key']} weights, not "
                                 f"{task.key}")
        load_weights(model, loc)  # checks the file against its recorded sha256, if any
    # The starting weights' own record travels along, so the chain of runs stays on file.
    return {"file": loc.path.name, "source": loc.source, "sha256": digest,
            "label": loc.label, "preset": side.get("preset"),
            "steps_in_all": side.get("steps_in_all", side.get("iteration")),
            **{k: side[k] for k in INIT_RECORD_KEYS if k in side}}


def check_init_sha256(path: Path, expected: str | None) -> str:
    """The sha256 of the ``--init`` file, refused (``InvalidSetting``) unless it starts with
    ``expected`` (when given; at least 12 hex digits)."""
    digest = sha256_file(path)
    if expected is None:
        return digest
    want = expected.strip().lower()
    if len(want) < 12 or len(want) > 64 or any(c not in "0123456789abcdef" for c in want):
        raise InvalidSetting(f"--init-sha256 {expected!r}: give 12 to 64 hex digits")
    if not digest.startswith(want):
        raise InvalidSetting(
            f"--init {path} has sha256 {digest}, not the expected {want}…: these are not the "
            "weights the command names (rebuild the previous step of the chain first); "
            "nothing was trained or written"
        )
    return digest


def recorded_command(command: str, init_meta: dict[str, Any]) -> str:
    """The command a run records: a CLI ``--init`` without ``--init-sha256`` gets the digest
    appended, so replaying the record checks that it starts from the same weights."""
    if init_meta and command.startswith("irnbench ") and "--init-sha256" not in command:
        return f"{command} --init-sha256 {init_meta['sha256']}"
    return command


