"""Device selection: ``auto`` picks cuda > mps > cpu."""

from __future__ import annotations

import torch


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``auto``/``None`` → the best available device; otherwise ``torch.device(name)``."""
    if isinstance(name, torch.device):
        return name
    if name in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but CUDA is not available")
    return dev


def describe_device(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    if dev.type == "cpu":
        import os
        import platform

        return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, " \
               f"{torch.get_num_threads()} torch threads)"
    return str(dev)
