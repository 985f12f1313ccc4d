"""irnbench: a plugin-based benchmark for image degradation–restoration with information loss."""

from __future__ import annotations

__version__ = "0.1.0"

from irnbench.errors import UnknownNameError, WeightsNotFound  # noqa: E402
from irnbench.hookspecs import hookimpl  # noqa: E402
from irnbench.methods import Method, Paper, PaperResult  # noqa: E402
from irnbench.options import Options, option  # noqa: E402
from irnbench.registry import (  # noqa: E402
    create_method,
    create_task,
    list_methods,
    list_tasks,
    weights_available,
)
from irnbench.tasks.base import Task  # noqa: E402
from irnbench.training.presets import Preset  # noqa: E402

__all__ = [
    "__version__",
    "Method",
    "hookimpl",
    "Options",
    "option",
    "Paper",
    "PaperResult",
    "Preset",
    "Task",
    "create_method",
    "create_task",
    "list_methods",
    "list_tasks",
    "weights_available",
    "WeightsNotFound",
    "UnknownNameError",
]
