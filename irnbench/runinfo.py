"""Run metadata: what produced a set of numbers (command, commit, versions, device, seeds).

Published metadata names no place on the machine that made it: the recorded command and any
free text (notes, errors) pass through :func:`public_command` / :func:`scrub_paths`.
"""

from __future__ import annotations

import datetime as _dt
import ntpath
import os
import platform
import re
import shlex
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from irnbench import __version__
from irnbench.ops.jpeg import libjpeg_version
from irnbench.ops.webp import libwebp_version
from irnbench.protocol import DRAW_SEED, STOCHASTIC_DRAWS

_PACKAGES = ("torch", "numpy", "pillow", "pandas", "pluggy", "click", "datasets", "jinja2",
             "safetensors", "pyiqa")


def git_commit(path: Path | None = None) -> str | None:
    """The commit of the checkout irnbench runs from (``+dirty`` when it has changes)."""
    root = path or Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "-uno"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "irnbench": __version__,
           "libjpeg": libjpeg_version(), "libwebp": libwebp_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


#: What stands in for the folders of an absolute path outside the working directory.
PATH_PLACEHOLDER = "<path>"
# An absolute path (POSIX, ``~/``, or a Windows drive) that starts a word of free text.
_PATH_IN_TEXT = re.compile(
    r"""(?<![^\s'"=,(\[:])(?:~(?=[/\\])|[A-Za-z]:[/\\]|/(?![/\s]))[^\s'"<>|,;()\[\]]*"""
)


def _is_windows_abs(path: str) -> bool:
    return bool(re.match(r"[A-Za-z]:[/\\]", path)) or path.startswith("\\\\")


def public_path(path: str, cwd: str | Path | None = None) -> str:
    """``path`` as a published record shows it: a path inside ``cwd`` (default: the working
    directory) relative to it, any other absolute or ``~`` path as ``<path>/NAME`` (its last
    component); relative paths stay as they are."""
    windows = _is_windows_abs(path)
    if not (windows or path.startswith(("/", "~"))):
        return path
    if windows and os.name != "nt":  # a Windows path in a record read on POSIX
        name = ntpath.basename(path.rstrip("/\\"))
        return f"{PATH_PLACEHOLDER}/{name}" if name else PATH_PLACEHOLDER
    full = os.path.normpath(os.path.expanduser(path))
    if not os.path.isabs(full):  # ``~user`` of no such user: not a path of this machine
        return path
    base = os.path.normpath(os.path.abspath(cwd if cwd is not None else os.getcwd()))
    if base != os.path.dirname(base):  # never relative to the file-system root
        try:
            rel = os.path.relpath(full, base)
        except ValueError:
            rel = os.pardir
        if rel != os.pardir and not rel.startswith(os.pardir + os.sep):
            return Path(rel).as_posix()
    name = os.path.basename(full)
    if not name or full == os.path.normpath(os.path.expanduser("~")):  # the home's name: a login
        return PATH_PLACEHOLDER
    return f"{PATH_PLACEHOLDER}/{name}"


def _public_arg(arg: str, cwd: str | Path | None) -> str:
    """One argument: ``--opt=VALUE`` and comma lists (``--datasets a,/b``) path by path."""
    head, sep, value = arg.partition("=") if arg.startswith("-") else ("", "", arg)
    if arg.startswith("-") and not sep:
        return arg
    # whole pieces first (they may hold spaces), then any path left inside a piece
    return scrub_paths(head + sep + ",".join(public_path(p, cwd) for p in value.split(",")), cwd)


def public_command(command: str | Sequence[str], cwd: str | Path | None = None) -> str:
    """A command line (string or argv) with every path argument made public by
    :func:`public_path`, so that a published run records how it was made but not where."""
    if isinstance(command, str):
        try:
            args = shlex.split(command)
        except ValueError:  # unbalanced quotes: not an argv we can take apart
            return scrub_paths(command, cwd)
    else:
        args = list(command)
    return " ".join(shlex.quote(_public_arg(a, cwd)) for a in args)


def scrub_paths(text: str, cwd: str | Path | None = None) -> str:
    """Free text (notes, error messages, tracebacks) with each absolute path that starts a word
    replaced as :func:`public_path` does; a trailing ``.`` or ``:`` stays outside the path."""

    def repl(m: re.Match[str]) -> str:
        found = m.group(0)
        core = found.rstrip(".:")
        return public_path(core, cwd) + found[len(core):]

    return _PATH_IN_TEXT.sub(repl, text)


def scrub_record(value: Any, cwd: str | Path | None = None) -> Any:
    """``value`` (str, or dicts / lists / tuples of them, as JSON holds) with :func:`scrub_paths`
    applied to every string in it; other values and dict keys are left alone."""
    if isinstance(value, str):
        return scrub_paths(value, cwd)
    if isinstance(value, dict):
        return {k: scrub_record(v, cwd) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_record(v, cwd) for v in value]
    if isinstance(value, tuple):
        return tuple(scrub_record(v, cwd) for v in value)
    return value


def run_metadata(command: str | None = None, draws: int = STOCHASTIC_DRAWS,
                 **extra: Any) -> dict[str, Any]:
    """Metadata stored beside every results file; ``draws``: the z draws the run used. The
    command (default: this process's argv) is recorded through :func:`public_command`, and
    the strings in ``extra`` through :func:`scrub_paths`: a published run names no machine
    path."""
    return {
        "irnbench_version": __version__,
        "command": public_command(command if command is not None
                                  else ["irnbench", *sys.argv[1:]]),
        "git_commit": git_commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": package_versions(),
        "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(),
        "seeds": {"z_draws": [DRAW_SEED + d for d in range(draws)]},
        "draws": draws,
        **scrub_record(extra),
    }
