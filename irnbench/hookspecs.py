"""Plugin hook specifications (pluggy project ``irnbench``), callback style as in llm/datasette.

A plugin is a module or distribution; each hook receives a ``register`` callback (or the click
group) and calls it once per thing it adds.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("irnbench")
hookimpl = pluggy.HookimplMarker("irnbench")


@hookspec
def irnbench_register_methods(register):
    """Register method classes: ``register(MethodSubclass)``."""


@hookspec
def irnbench_register_tasks(register):
    """Register task classes: ``register(TaskSubclass)``."""


@hookspec
def irnbench_register_datasets(register):
    """Register datasets: ``register(DatasetCard)``."""


@hookspec
def irnbench_register_commands(cli):
    """Add click commands to the ``irnbench`` CLI group: ``@cli.command()``."""
