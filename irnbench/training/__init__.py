"""Training: the loop (``train_method``), its data pipeline, augmentation, mixed precision,
fine-tune chains, checkpoint state, and the presets a method declares.

Modules: ``presets`` (``Preset``, ``ColorAugment``: plain records plugins declare), ``loop``
(``train_method``), ``data`` (crops sampled per global sample index, DataLoader workers),
``augment``, ``amp``, ``chains`` (sha256-checked ``--init``), ``state`` (checkpoint I/O) and
``allocator`` (the CPU heap policy). ``train_method`` is imported on first use, so declaring a
preset does not load the loop.
"""

from __future__ import annotations

from typing import Any

from irnbench.training.presets import ColorAugment, Preset, preset_config, read_preset_config

__all__ = ["ColorAugment", "Preset", "preset_config", "read_preset_config", "train_method",
           "TrainResult", "NonFiniteLoss"]

_LOOP_NAMES = ("train_method", "TrainResult", "NonFiniteLoss")


def __getattr__(name: str) -> Any:
    if name in _LOOP_NAMES:
        from irnbench.training import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'irnbench.training' has no attribute {name!r}")
