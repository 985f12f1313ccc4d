"""Public factories: ``create_task``, ``create_method``, ``list_methods``, ``weights_available``.

Everything is looked up through the plugin manager, so a third-party plugin's methods, tasks
and datasets are first-class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from irnbench.errors import InvalidSetting, UnknownNameError, WeightsNotFound
from irnbench.methods import Method
from irnbench.plugins import registered_methods, registered_tasks
from irnbench.tasks.base import Task
from irnbench.weights import cache_weights_path, read_sidecar, verify

__all__ = [
    "create_task",
    "list_tasks",
    "create_method",
    "get_method_class",
    "list_methods",
    "weights_available",
    "find_weights",
    "train_command",
]


def create_task(name: str | Task, **setting: Any) -> Task:
    """Build a task by name, e.g. ``create_task("rescale", scale=4, jpeg=[30, 50])``."""
    if isinstance(name, Task):
        return name
    tasks = registered_tasks()
    if name not in tasks:
        raise UnknownNameError("task", name, list(tasks))
    return tasks[name](**setting)


def list_tasks() -> list[str]:
    """Names of every registered task."""
    return sorted(registered_tasks())


def get_method_class(name: str) -> type[Method]:
    methods = registered_methods()
    if name not in methods:
        raise UnknownNameError("method", name, list(methods))
    return methods[name]


def list_methods(task: str | None = None) -> list[str]:
    """Names of registered methods, optionally only those that do ``task``."""
    return sorted(n for n, c in registered_methods().items() if task is None or task in c.tasks)


def _split_setting(task_name: str | Task, setting: dict[str, Any]) -> tuple[Task, dict[str, Any]]:
    if isinstance(task_name, Task):
        return task_name, setting
    tasks = registered_tasks()
    if task_name not in tasks:
        raise UnknownNameError("task", task_name, list(tasks))
    keys = tasks[task_name].setting_keys
    task_kw = {k: v for k, v in setting.items() if k in keys}
    options = {k: v for k, v in setting.items() if k not in keys}
    return tasks[task_name](**task_kw), options


def train_command(name: str, task: Task, preset: str = "cpu") -> str:
    """The exact ``irnbench train`` command that produces weights for this setting."""
    task = get_method_class(name).weights_task(task)
    args = f" {task.cli_args()}" if task.cli_args() else ""
    return f"irnbench train --plugin {name} --task {task.name}{args} --preset {preset}"


@dataclass
class WeightsLocation:
    path: Path
    label: str
    source: str  #: "explicit", "cache" or "shipped"
    sha256: str | None


def find_weights(
    cls: type[Method], task: Task, weights: str | Path | None = None
) -> WeightsLocation | None:
    """Where this method's weights for ``task`` are: explicit path, user cache, shipped."""
    task = cls.weights_task(task)
    if weights is not None:
        p = Path(weights)
        if not p.exists():
            raise WeightsNotFound(f"weights file not found: {p}")
        side = read_sidecar(p)
        return WeightsLocation(p, side.get("label", f"user weights ({p.name})"), "explicit",
                               side.get("sha256"))
    cached = cache_weights_path(cls.name, task.key)
    if cached.exists():
        side = read_sidecar(cached)
        return WeightsLocation(cached, side.get("label", "trained locally"), "cache",
                               side.get("sha256"))
    cfg = cls.pretrained_cfgs.get(task.key)
    if cfg is not None:
        p = cls.package_dir() / cfg.file
        if p.exists():
            return WeightsLocation(p, cfg.label, "shipped", cfg.sha256)
    return None


def _needs_weights(cls: type[Method], task: Task, options: dict[str, Any]) -> bool:
    return cls(task, **options).needs_weights()


def weights_available(name: str, task: str | Task = "rescale", **setting: Any) -> bool:
    """True when ``create_method(name, task, pretrained=True, **setting)`` would find weights."""
    cls = get_method_class(name)
    task_obj, options = _split_setting(task, setting)
    if not _needs_weights(cls, task_obj, options):
        return True
    return find_weights(cls, task_obj) is not None


def create_method(
    name: str,
    task: str | Task = "rescale",
    pretrained: bool = True,
    weights: str | Path | None = None,
    device: str | torch.device | None = None,
    **setting: Any,
) -> Method:
    """Build a method for a task setting, e.g. ``create_method("irn", scale=4)``.

    ``pretrained=True`` loads explicit (``weights=``), cached or shipped weights and raises
    ``WeightsNotFound`` — with the command that trains them — when there are none;
    ``pretrained=False`` gives a freshly initialised model.
    """
    cls = get_method_class(name)
    task_obj, options = _split_setting(task, setting)
    if not cls.supports(task_obj):
        raise InvalidSetting(
            f"method {name!r} does not support task {task_obj.name} {task_obj.setting_label}; "
            f"it supports tasks: {', '.join(cls.tasks)}"
        )
    model = cls(task_obj, **options)
    if pretrained and model.needs_weights():
        loc = find_weights(cls, task_obj, weights)
        if loc is None:
            cmd = train_command(name, task_obj)
            raise WeightsNotFound(
                f"no weights for {name!r} on {task_obj.name} {task_obj.setting_label}. "
                f"Train them with:\n  {cmd}\n(or pass --train-missing to `irnbench run`)",
                train_command=cmd,
            )
        load_weights(model, loc)
    if device is not None:
        model = model.to(device)
    return model.eval()


def load_weights(model: Method, loc: WeightsLocation) -> None:
    """Verify and load a safetensors weights file into ``model`` (strict)."""
    from safetensors.torch import load_file

    verify(loc.path, loc.sha256)
    side = read_sidecar(loc.path)
    if side.get("method") not in (None, model.name):
        raise WeightsNotFound(
            f"{loc.path} holds weights of {side['method']!r}, not {model.name!r}"
        )
    state = load_file(str(loc.path))
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # tensor shapes of another setting or model size
        first = str(exc).split("\n")[1].strip() if "\n" in str(exc) else str(exc)
        raise WeightsNotFound(
            f"{loc.path} does not fit {model.name!r} on {model.task.setting_label}: {first}"
        ) from exc
    if missing or unexpected:
        raise WeightsNotFound(
            f"{loc.path} does not fit {model.name!r} on {model.task.setting_label}: "
            f"missing {list(missing)[:5]}, unexpected {list(unexpected)[:5]}"
        )
    model.weights_label = loc.label
    model.weights_source = f"{loc.source}: {loc.path}"
