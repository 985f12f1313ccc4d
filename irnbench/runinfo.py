"""Run metadata: what produced a set of numbers (command, commit, versions, device, seeds)."""

from __future__ import annotations

import datetime as _dt
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from irnbench import __version__
from irnbench.ops.jpeg import libjpeg_version
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
           "libjpeg": libjpeg_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def run_metadata(command: str | None = None, draws: int = STOCHASTIC_DRAWS,
                 **extra: Any) -> dict[str, Any]:
    """Metadata stored beside every results file; ``draws``: the z draws the run used."""
    return {
        "irnbench_version": __version__,
        "command": command if command is not None else " ".join(["irnbench", *sys.argv[1:]]),
        "git_commit": git_commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": package_versions(),
        "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(),
        "seeds": {"z_draws": [DRAW_SEED + d for d in range(draws)]},
        "draws": draws,
        **extra,
    }
