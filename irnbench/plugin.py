"""The one module a method plugin imports (besides ``irnbench.ops`` and ``irnbench.metrics``
for maths): the method interface, presets, typed options, the hook marker, weights and paper
metadata (the model card, the published papers and tables plugins quote), and the helpers that
describe the authors' published checkpoints.

    from irnbench.plugin import Method, ModelCard, Preset, hookimpl, option
"""

from __future__ import annotations

from typing import Any

from irnbench.errors import CheckpointError, InvalidSetting, WeightsNotFound
from irnbench.hookspecs import hookimpl
from irnbench.methods import Method, ModelCard, Paper, PaperResult, module_fingerprint
from irnbench.ops.tiling import resolve_tile, tiled
from irnbench.options import Options, config_overrides, option, overridden, tile_option
from irnbench.papers import (
    CAR_TIP,
    IRN_ECCV,
    IRN_IJCV,
    IRN_TABLE1,
    IRN_TABLE1_ROWS,
    SAIN_AAAI,
    SAIN_QUALITIES,
    SAIN_README,
    SAIN_README_ROWS,
    TAD_ECCV,
    TINVBLOCKS_AAAI,
    Publication,
    irn_table1_rows,
    sain_readme_rows,
    sain_rows,
    table_rows,
)
from irnbench.registry import (
    create_method,
    create_task,
    find_weights,
    list_methods,
    load_weights,
    train_command,
)
from irnbench.tasks import CompressTask, DecolorizeTask, RescaleTask, Task
from irnbench.training.presets import ColorAugment, Preset
from irnbench.weights.cards import OfficialCheckpoint, OfficialFile, PretrainedCfg
from irnbench.weights.store import sha256_file, shipped_cfgs

__all__ = [
    # the interface
    "Method", "Task", "RescaleTask", "CompressTask", "DecolorizeTask", "hookimpl",
    # typed options
    "Options", "option", "tile_option", "config_overrides", "overridden",
    # training presets
    "Preset", "ColorAugment",
    # the model card, papers and the published tables plugins quote
    "ModelCard", "Paper", "PaperResult", "Publication", "IRN_ECCV", "IRN_IJCV", "CAR_TIP",
    "TAD_ECCV", "SAIN_AAAI", "TINVBLOCKS_AAAI", "IRN_TABLE1", "IRN_TABLE1_ROWS", "SAIN_README",
    "SAIN_README_ROWS", "SAIN_QUALITIES", "table_rows", "sain_rows", "irn_table1_rows",
    "sain_readme_rows",
    # weights: shipped, published
    "PretrainedCfg", "shipped_cfgs", "OfficialCheckpoint", "OfficialFile", "task_key",
    "sha256_file", "module_fingerprint", "find_weights", "load_weights", "train_command",
    # large images
    "resolve_tile", "tiled",
    # errors
    "InvalidSetting", "WeightsNotFound", "CheckpointError",
    # the factories, for a plugin's own tests
    "create_method", "create_task", "list_methods",
]

_BUILTIN_TASKS: dict[str, type[Task]] = {
    t.name: t for t in (RescaleTask, CompressTask, DecolorizeTask)}


def task_key(task: str, **setting: Any) -> str:
    """The key weights of a task setting are filed under, e.g. ``task_key("rescale", scale=4)``
    → ``"rescale-x4"`` (what ``official_weights`` and shipped sidecars are keyed by)."""
    try:
        cls = _BUILTIN_TASKS[task]
    except KeyError:
        raise InvalidSetting(f"unknown task {task!r}; known: {', '.join(_BUILTIN_TASKS)}"
                             ) from None
    return cls(**setting).key
