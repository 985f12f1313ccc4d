"""Device selection: ``auto`` picks cuda > mps > cpu; a named device is checked before any work."""

from __future__ import annotations

import torch

from irnbench.errors import InvalidSetting

__all__ = ["DEVICES", "describe_device", "resolve_device"]

#: What ``--device`` accepts (``cuda:N`` names one GPU).
DEVICES = "auto, cpu, cuda, cuda:N or mps"


def _mps_problem() -> str | None:
    """Why MPS cannot be used here (``None``: it can)."""
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return None
    if mps is None or not mps.is_built():
        return "this PyTorch build has no MPS support (MPS is Apple silicon under macOS)"
    return "MPS is not available on this machine (it needs macOS 12.3+ on Apple silicon)"


def _check(dev: torch.device, name: str) -> None:
    """``InvalidSetting`` (one line, exit 2) unless ``dev`` exists on this machine."""
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidSetting(f"{name!r} asked for, but CUDA is not available "
                                 f"(torch {torch.__version__})")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise InvalidSetting(f"{name!r} asked for, but this machine has {count} CUDA "
                                 f"device{'s' if count != 1 else ''} (cuda:0"
                                 f"{f' to cuda:{count - 1}' if count > 1 else ''})")
    elif dev.type == "mps":
        problem = _mps_problem()
        if problem:
            raise InvalidSetting(f"{name!r} asked for, but {problem}")
        if dev.index not in (None, 0):
            raise InvalidSetting(f"{name!r} asked for, but there is one MPS device (mps)")
    elif dev.type != "cpu":
        raise InvalidSetting(f"device type {dev.type!r} is not supported; use {DEVICES}")


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``auto``/``None`` → the best available device; otherwise that device, refused with one
    ``InvalidSetting`` line (exit 2) when it is unknown or absent here (cuda without CUDA,
    ``cuda:7`` on a one-GPU machine, mps off macOS, another device type)."""
    if isinstance(name, torch.device):
        return name
    text = (name or "").strip().lower()
    if text in ("", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_problem() is None:
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise InvalidSetting(f"unknown device {name!r}; use {DEVICES}") from None
    _check(dev, text)
    return dev


def describe_device(dev: torch.device) -> str:
    """The device as run metadata records it (GPU name, or CPU model, cores and threads)."""
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    if dev.type == "cpu":
        import os
        import platform

        return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, " \
               f"{torch.get_num_threads()} torch threads)"
    return str(dev)
