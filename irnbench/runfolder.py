"""The folder policy of ``run``/``eval``/``train`` outputs, checked before any work: the folder
must be writable, and an existing run is never silently replaced (``--resume`` continues it,
``--overwrite`` removes that run's own files and nothing else)."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterable
from pathlib import Path

from irnbench.errors import InvalidSetting

__all__ = ["check_writable", "remove_own_files", "refuse_existing"]


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
