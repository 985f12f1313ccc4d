"""Built-in tasks; this module is also the core plugin that registers them."""

from __future__ import annotations

from irnbench.hookspecs import hookimpl
from irnbench.tasks.base import Task
from irnbench.tasks.compress import CompressTask
from irnbench.tasks.decolorize import DecolorizeTask
from irnbench.tasks.rescale import RescaleTask

__all__ = ["Task", "RescaleTask", "CompressTask", "DecolorizeTask"]


@hookimpl
def irnbench_register_tasks(register):
    register(RescaleTask)
    register(CompressTask)
    register(DecolorizeTask)
