"""The plugin manager: loads hook implementations and collects what each plugin registers.

Method plugins (built-in ones included) are found through the ``irnbench`` entry-point group,
exactly as third-party plugins are. ``IRNBENCH_LOAD_PLUGINS=a,b`` loads only the named entry
points (``""`` loads none). The harness's own tasks and bundled datasets are part of the core and
always registered (as llm's default plugins are): they are not methods, and a run without them
could not even name a task.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy

from irnbench import hookspecs

ENTRY_POINT_GROUP = "irnbench"
LOAD_ENV = "IRNBENCH_LOAD_PLUGINS"
#: Harness modules that implement hooks and are always registered.
CORE_PLUGINS: tuple[str, ...] = ("irnbench.tasks", "irnbench.data.cards")

pm = pluggy.PluginManager("irnbench")
pm.add_hookspecs(hookspecs)
_loaded = False


def _entry_points() -> list[Any]:
    return list(entry_points(group=ENTRY_POINT_GROUP))


def load_plugins() -> pluggy.PluginManager:
    """Register core and entry-point plugins once; validate every hookimpl (misspelt → error)."""
    global _loaded
    if _loaded:
        return pm
    _loaded = True
    for modname in CORE_PLUGINS:
        mod = importlib.import_module(modname)
        if not pm.is_registered(mod):
            pm.register(mod, name=modname)
    wanted = os.environ.get(LOAD_ENV)
    if wanted is None:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    else:
        names = {n.strip() for n in wanted.split(",") if n.strip()}
        for ep in _entry_points():
            if ep.name in names and pm.get_plugin(ep.name) is None:
                pm.register(ep.load(), name=ep.name)
    # A hookimpl whose name matches no hookspec (a typo) fails here, loudly.
    pm.check_pending()
    return pm


@dataclass
class PluginInfo:
    """What ``irnbench plugins`` shows for one plugin."""

    name: str
    version: str | None
    module: str
    methods: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    core: bool = False


def _collect(hookname: str) -> list[tuple[str, Any]]:
    """Call each plugin's implementation of a ``register`` hook; return (plugin name, item)."""
    load_plugins()
    out: list[tuple[str, Any]] = []
    hook = getattr(pm.hook, hookname)
    for impl in reversed(hook.get_hookimpls()):  # registration order
        plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)
        items: list[Any] = []
        impl.function(register=items.append)
        out.extend((plugin_name, item) for item in items)
    return out


def _unique(kind: str, pairs: list[tuple[str, Any]], key: Callable[[Any], str]) -> dict[str, Any]:
    seen: dict[str, tuple[str, Any]] = {}
    for plugin, item in pairs:
        name = key(item)
        if name in seen and seen[name][1] is not item:
            raise ValueError(
                f"{kind} {name!r} is registered by both {seen[name][0]!r} and {plugin!r}"
            )
        seen[name] = (plugin, item)
    return {name: item for name, (_, item) in seen.items()}


def registered_methods() -> dict[str, type]:
    """Method name → Method subclass, from every loaded plugin."""
    return _unique("method", _collect("irnbench_register_methods"), lambda c: c.name)


def registered_tasks() -> dict[str, type]:
    """Task name → Task subclass."""
    return _unique("task", _collect("irnbench_register_tasks"), lambda c: c.name)


def registered_datasets() -> dict[str, Any]:
    """Dataset name → DatasetCard."""
    return _unique("dataset", _collect("irnbench_register_datasets"), lambda d: d.name)


def plugin_infos() -> list[PluginInfo]:
    """Every loaded plugin with its version and what it registers."""
    load_plugins()
    versions = {}
    for plugin, dist in pm.list_plugin_distinfo():
        versions[pm.get_name(plugin)] = dist.version
    infos: dict[str, PluginInfo] = {}
    for plugin in pm.get_plugins():
        name = pm.get_name(plugin)
        module = getattr(plugin, "__name__", type(plugin).__name__)
        version = versions.get(name)
        if version is None and name in CORE_PLUGINS:
            from irnbench import __version__

            version = __version__
        infos[name] = PluginInfo(name, version, module, core=name in CORE_PLUGINS)
    for plugin, cls in _collect("irnbench_register_methods"):
        infos[plugin].methods.append(cls.name)
    for plugin, cls in _collect("irnbench_register_tasks"):
        infos[plugin].tasks.append(cls.name)
    for plugin, card in _collect("irnbench_register_datasets"):
        infos[plugin].datasets.append(card.name)
    import click

    for impl in pm.hook.irnbench_register_commands.get_hookimpls():
        probe = click.Group()  # a throwaway group shows which commands the plugin adds
        impl.function(cli=probe)
        infos[pm.get_name(impl.plugin)].commands.extend(sorted(probe.commands))
    return sorted(infos.values(), key=lambda i: (not i.core, i.name))
