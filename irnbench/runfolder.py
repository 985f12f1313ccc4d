"""The folder policy of ``run``/``eval``/``train`` outputs, checked before any work: the folder
must be writable, and an existing run is never silently replaced (``--resume`` continues it,
``--overwrite`` removes that run's own files and nothing else).

``run``/``eval`` also keep their work durable as it is done (:class:`UnitLog`): a killed run
loses at most the unit in progress, and ``--resume`` computes only what is missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from irnbench.errors import InvalidSetting
from irnbench.weights.record import atomic_write, fsync_dir

__all__ = ["REQUEST", "RUN_FILES", "UNITS", "UnitLog", "check_run", "check_same_request",
           "check_writable", "read_request", "remove_own_files", "refuse_existing",
           "write_request"]

#: The request a run was started with (what ``--resume`` must match).
REQUEST = "run.json"
#: The folder of finished units: ``rank{R}.jsonl`` per rank, ``images/`` for the visuals.
UNITS = "units"
#: A run folder's own files and folders: what makes a folder a run, and what ``--overwrite``
#: removes (nothing else in the folder is touched).
RUN_FILES = (REQUEST, UNITS, "results.json", "results.csv", "meta.json", "report.html",
             "visuals")


def check_writable(folder: Path, what: str = "--out") -> None:
    """Whether ``folder`` can be written (created where it does not exist), probed by writing a
    file in it or in its nearest existing parent; one clear ``InvalidSetting`` (exit 2) when not
    (read-only mount, a path under a file, no permission). Nothing is left behind."""
    base = folder
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise InvalidSetting(f"{what} {folder} is not writable ({base} is not a folder)")
    probe = base / f".irnbench-probe-{os.getpid()}-{secrets.token_hex(4)}"  # unique per thread
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InvalidSetting(f"{what} {folder} is not writable ({reason})") from None


def refuse_existing(folder: Path, own: Iterable[str], what: str, resume: bool,
                    overwrite: bool) -> list[Path]:
    """The run's own files present in ``folder``; refuse (exit 2) when there are some and
    neither ``resume`` nor ``overwrite`` is given, or when both are."""
    if resume and overwrite:
        raise InvalidSetting("--resume continues the run in --out, --overwrite replaces it: "
                             "give one of them")
    present = [folder / name for name in own if (folder / name).exists()]
    if present and not (resume or overwrite):
        raise InvalidSetting(f"{folder} already holds {what}; continue it with --resume or "
                             "replace it with --overwrite (nothing was changed)")
    return present


def remove_own_files(paths: Iterable[Path]) -> None:
    """Remove a previous run's own files and folders (never anything else in the folder)."""
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


# -- run / eval --------------------------------------------------------------------------------
def check_run(folder: Path, datasets: Sequence[str], draws: int | None, resume: bool,
              overwrite: bool) -> tuple[list[Path], dict[str, Any] | None]:
    """``run``/``eval``'s checks that need no method, before any work (``InvalidSetting``, exit
    2, nothing changed): a dataset list and ``draws`` ≥ 1, then the ``--out`` policy. Returns
    the files ``--overwrite`` replaces and, with ``resume``, the request on file."""
    if not datasets:
        raise InvalidSetting("--datasets names no dataset (give one or more names or folders)")
    if draws is not None and draws < 1:
        raise InvalidSetting(f"--draws takes a number of z draws ≥ 1, got {draws}")
    present = refuse_existing(folder, RUN_FILES, "a run", resume, overwrite)
    check_writable(folder)
    previous = read_request(folder) if resume else None
    return (present if overwrite else []), previous


def read_request(folder: Path) -> dict[str, Any]:
    """The request of the run in ``folder`` (``--resume``); one clear error when there is none."""
    path = folder / REQUEST
    if not path.is_file():
        hint = ("replace it with --overwrite" if any((folder / n).exists() for n in RUN_FILES)
                else "start it without --resume")
        raise InvalidSetting(f"--resume: {folder} holds no run to continue (no {REQUEST}); "
                             f"{hint}")
    try:
        return dict(json.loads(path.read_text())["request"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidSetting(f"--resume: {path} is unreadable ({exc})") from None


def write_request(folder: Path, request: dict[str, Any], command: str | None) -> None:
    """Record the request at the start of a run, durably (``--resume`` compares against it)."""
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"kind": "irnbench-run", "version": 1, "command": command, "request": request}
    atomic_write(folder / REQUEST, json.dumps(payload, indent=1, default=str).encode())


def _normal(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def check_same_request(folder: Path, previous: dict[str, Any], request: dict[str, Any],
                       keys: Iterable[str]) -> None:
    """Refuse (one line, exit 2) a ``--resume`` whose request differs from the one on file in
    any of ``keys``, naming each difference."""
    diffs = [f"{k} ({_short(previous.get(k))} on file, {_short(request.get(k))} now)"
             for k in keys if _normal(previous.get(k)) != _normal(request.get(k))]
    if diffs:
        raise InvalidSetting(f"--resume: the run in {folder} was asked for something else: "
                             f"{'; '.join(diffs)} (nothing was changed)")


# -- durable units -----------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """JSON for numpy / torch scalars (``.item()``); anything else as text."""
    item = getattr(value, "item", None)
    return item() if callable(item) else str(value)


def _complete_lines(path: Path) -> list[bytes]:
    """The lines of ``path`` that end in a newline (a kill mid-write leaves a partial last one)."""
    data = path.read_bytes()
    return data.split(b"\n")[:-1]


class UnitLog:
    """A run's finished units, durable as each completes: one JSON line per unit, appended
    (flush + fsync) to ``units/rank{R}.jsonl`` by rank R alone, so every shard's work survives;
    restored images of shown images go to ``units/images/*.pt`` (uint8 tensors)."""

    def __init__(self, folder: Path, rank: int = 0):
        self.folder = Path(folder)
        self.rank = rank
        self.units: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._opened = False

    @property
    def path(self) -> Path:
        return self.folder / f"rank{self.rank}.jsonl"

    def load(self) -> UnitLog:
        """Read every rank's file (a resumed run may have another number of ranks)."""
        for path in sorted(self.folder.glob("rank*.jsonl")):
            for line in _complete_lines(path):
                try:
                    unit = json.loads(line)
                    self.units[tuple(unit["key"])] = unit  # a unit written again wins
                except (ValueError, KeyError, TypeError):
                    continue  # not a unit: computed again
        return self

    def get(self, key: Sequence[Any]) -> dict[str, Any] | None:
        return self.units.get(tuple(key))

    def append(self, unit: dict[str, Any]) -> dict[str, Any]:
        """Write one unit durably; returns it as read back (the values every run reports)."""
        line = json.dumps(unit, default=_plain) + "\n"
        if not self._opened:
            self.folder.mkdir(parents=True, exist_ok=True)
            if self.path.exists():  # drop a partial last line of a killed run
                keep = b"".join(x + b"\n" for x in _complete_lines(self.path))
                if len(keep) != self.path.stat().st_size:
                    os.truncate(self.path, len(keep))
            self._opened = True
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        fsync_dir(self.folder)
        read = json.loads(line)
        self.units[tuple(read["key"])] = read
        return read

    @staticmethod
    def image_name(key: Sequence[Any], kind: str) -> str:
        """A file name for the images of a unit or an image key (``kind``: full, crops)."""
        digest = hashlib.sha256(json.dumps(list(key)).encode()).hexdigest()[:24]
        return f"{digest}.{kind}.pt"

    def save_images(self, name: str, payload: Any) -> None:
        """``payload`` (dicts / lists of uint8 tensors, str, int, None) as ``images/NAME``."""
        import io

        import torch

        folder = self.folder / "images"
        folder.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        torch.save(payload, buf)
        atomic_write(folder / name, buf.getvalue())

    def load_images(self, name: str | None) -> Any | None:
        """What ``save_images`` wrote (``weights_only``), or None when it is not there."""
        import torch

        path = self.folder / "images" / str(name)
        if not name or not path.is_file():
            return None
        try:
            return torch.load(path, weights_only=True)
        except Exception:  # noqa: BLE001 - an unreadable file is computed again
            return None

    def remove_images(self, names: Iterable[str]) -> None:
        for name in names:
            (self.folder / "images" / name).unlink(missing_ok=True)
