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
from irnbench.weights import (
    DEFAULT_TRAIN_TAG,
    OFFICIAL_TAG,
    RESOLUTION_ORDER,
    SHIPPED_TAG,
    cache_weights_path,
    cached_path,
    cached_tags,
    format_spec,
    parse_spec,
    read_sidecar,
    verify,
)
from irnbench.weights.store import in_cache, reading

__all__ = [
    "create_task",
    "list_tasks",
    "create_method",
    "get_method_class",
    "list_methods",
    "weights_available",
    "find_weights",
    "available_tags",
    "train_command",
    "WeightsLocation",
    "check_weights_file",
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
    """The class of a method, by name or ``NAME.TAG`` spec (the tag is ignored here)."""
    name = parse_spec(name)[0]
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
    name = parse_spec(name)[0]
    task = get_method_class(name).weights_task(task)
    args = f" {task.cli_args()}" if task.cli_args() else ""
    return f"irnbench train --plugin {name} --task {task.name}{args} --preset {preset}"


@dataclass
class WeightsLocation:
    path: Path
    label: str
    source: str  #: "explicit", "cache" or "shipped"
    sha256: str | None
    tag: str = ""  #: ``cpu``, ``official``, ``local``…; ``""`` for an explicit file


def _shipped(cls: type[Method], task: Task) -> WeightsLocation | None:
    cfg = cls.pretrained_cfgs.get(task.key)
    if cfg is None:
        return None
    p = cls.package_dir() / cfg.file
    return WeightsLocation(p, cfg.label, "shipped", cfg.sha256, SHIPPED_TAG) if p.exists() \
        else None


def _cached(cls: type[Method], task: Task, tag: str) -> WeightsLocation | None:
    path = cached_path(cls.name, task.key, tag)
    if path is None:
        return None
    with reading(path):  # the sidecar of one install (``load_weights`` reads it again)
        side = read_sidecar(path)
    label = side.get("label") or ("trained locally" if tag == DEFAULT_TRAIN_TAG else tag)
    return WeightsLocation(path, label, "cache", side.get("sha256"), side.get("tag") or tag)


def _tagged(cls: type[Method], task: Task, tag: str) -> WeightsLocation | None:
    return _shipped(cls, task) if tag == SHIPPED_TAG else _cached(cls, task, tag)


def available_tags(cls: type[Method], task: Task) -> list[str]:
    """Every tag with weights for this method and setting (shipped ``cpu`` and the cache)."""
    task = cls.weights_task(task)
    tags = cached_tags(cls.name, task.key)
    if _shipped(cls, task) is not None:
        tags.append(SHIPPED_TAG)
    return sorted(set(tags), key=lambda t: (t not in RESOLUTION_ORDER, t))


def find_weights(
    cls: type[Method], task: Task, weights: str | Path | None = None, tag: str | None = None
) -> WeightsLocation | None:
    """Where this method's weights for ``task`` are.

    An explicit ``weights`` path wins; a ``tag`` names one weight set (``cpu``: the shipped
    file); with neither, the first of ``RESOLUTION_ORDER`` that exists (``official`` if
    imported, else the shipped ``cpu`` weights). The user's own trainings are used only when
    named, so a smoke or test run never changes what an untagged name resolves to.
    """
    task = cls.weights_task(task)
    if weights is not None:
        p = Path(weights)
        if not p.exists():
            raise WeightsNotFound(f"weights file not found: {p}")
        check_weights_file(p, cls, task)
        side = read_sidecar(p)
        return WeightsLocation(p, side.get("label", f"user weights ({p.name})"), "explicit",
                               side.get("sha256"))
    if tag is not None:
        return _tagged(cls, task, tag)
    for t in RESOLUTION_ORDER:
        loc = _tagged(cls, task, t)
        if loc is not None:
            return loc
    return None


def check_weights_file(path: Path, cls: type[Method], task: Task,
                       flag: str = "--weights") -> None:
    """One line (``InvalidSetting``, exit 2) when ``path`` is not a safetensors file: a PyTorch
    checkpoint (``torch.save``: a zip or a pickle, never unpickled here) is named as one, with
    the ``weights import`` command that converts it."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
        size = path.stat().st_size
    except OSError as exc:
        raise WeightsNotFound(f"{flag} {path} cannot be read ({exc.strerror})") from None
    n = int.from_bytes(head[:8], "little") if len(head) == 9 else -1
    if 0 < n <= size - 8 and head[8:9] == b"{":
        return  # a safetensors header: length, then JSON
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        args = f" {task.cli_args()}" if task.cli_args() else ""
        then = (f"pass {cache_weights_path(cls.name, task.key, OFFICIAL_TAG)} to --init"
                if flag == "--init" else f"run it as {cls.name}.official")
        raise InvalidSetting(
            f"{flag} {path} is a PyTorch checkpoint (torch.save), not irnbench weights "
            f"(safetensors): convert it once with `irnbench weights import {cls.name} {path} "
            f"--task {task.name}{args}`, then {then}")
    raise InvalidSetting(f"{flag} {path} is not a safetensors weights file")


def _needs_weights(cls: type[Method], task: Task, options: dict[str, Any]) -> bool:
    return cls(task, **options).needs_weights()


def weights_available(name: str, task: str | Task = "rescale", tag: str | None = None,
                      **setting: Any) -> bool:
    """True when ``create_method(name, task, pretrained=True, **setting)`` would find weights
    (``name`` may be a ``NAME.TAG`` spec)."""
    base, tag = parse_spec(name, tag)
    cls = get_method_class(base)
    task_obj, options = _split_setting(task, setting)
    if not _needs_weights(cls, task_obj, options):
        return True
    return find_weights(cls, task_obj, tag=tag) is not None


def _missing_weights(cls: type[Method], task: Task, tag: str | None) -> WeightsNotFound:
    """The error for a spec without weights: the other tags, the train and import commands."""
    cmd = train_command(cls.name, task)
    what = f"no {tag!r} weights" if tag else "no weights"
    msg = f"{what} for {cls.name!r} on {task.name} {task.setting_label}."
    have = available_tags(cls, task)
    if have:
        msg += f" Available: {', '.join(format_spec(cls.name, t) for t in have)}"
        msg += "." if tag else " (your own trainings are used only when named)."
    if tag not in (OFFICIAL_TAG, SHIPPED_TAG) and not cls.training_note:
        flag = f" --tag {tag}" if tag not in (None, DEFAULT_TRAIN_TAG) else ""
        msg += (f" Train them with:\n  {cmd}{flag}\n(or pass --train-missing to "
                "`irnbench run`)")
    if tag in (None, OFFICIAL_TAG) and cls.official_for(task) is not None:
        msg += f"\nImport the authors' checkpoint with:\n  {import_command(cls, task)}"
    return WeightsNotFound(msg, train_command=cmd)


def _fetch_missing(cls: type[Method], task: Task, tag: str | None,
                   download: bool) -> WeightsLocation | None:
    """When nothing local is found: fetch the release the name resolves to (untagged or
    ``official``: the official files; a variant's tag: that file) if it has a pinned URL and
    ``download`` allows it, else raise the one-line ``FetchUnavailable``; ``None`` when there
    is no such release (the usual ``WeightsNotFound`` follows)."""
    from irnbench.weights.fetch import (
        FetchUnavailable,
        fetch_release,
        release_for,
        stderr_line,
        unavailable_message,
    )

    rel = release_for(cls, task, tag)
    if rel is None or not rel.fetchable:
        return None
    if not download:
        raise FetchUnavailable(unavailable_message(
            rel, "download refused: --no-download, or the Python API's default "
                 "create_method(download=False)"), train_command=train_command(cls.name, task))
    fetch_release(rel, announce=stderr_line)
    return find_weights(cls, task, tag=rel.tag)


def import_command(cls: type[Method], task: Task) -> str:
    """The ``irnbench weights import`` command for a method's published checkpoint(s)."""
    official = cls.official_for(task)
    task = cls.weights_task(task)
    args = f" {task.cli_args()}" if task.cli_args() else ""
    files = " ".join(official.file_names) if official else "FILE..."
    return f"irnbench weights import {cls.name} {files} --task {task.name}{args}"


def create_method(
    name: str,
    task: str | Task = "rescale",
    pretrained: bool = True,
    weights: str | Path | None = None,
    device: str | torch.device | None = None,
    tag: str | None = None,
    download: bool = False,
    **setting: Any,
) -> Method:
    """Build a method for a task setting, e.g. ``create_method("irn", scale=4)``.

    ``name`` may carry a weights tag (``"irn.official"``, or ``tag="official"``), as timm's
    ``arch.tag``. ``pretrained=True`` loads explicit (``weights=``), tagged or resolved
    weights (``official`` if imported, else the shipped ``cpu``) and raises
    ``WeightsNotFound`` — with the command that trains or imports them — when there are none;
    ``pretrained=False`` gives a freshly initialised model.

    ``download=True`` (what ``irnbench run``/``eval`` pass unless ``--no-download``) fetches
    a published checkpoint with a pinned URL when that is what the name resolves to and
    nothing local is found (``irnbench.weights.fetch``). The default never downloads, so tests
    and library code stay offline: such a name raises ``FetchUnavailable`` (a
    ``WeightsNotFound``) with the ``weights fetch`` and ``weights import`` commands.
    """
    spec = name
    name, tag = parse_spec(name, tag)
    cls = get_method_class(name)
    task_obj, options = _split_setting(task, setting)
    if not cls.supports(task_obj):
        raise InvalidSetting(
            f"method {name!r} does not support task {task_obj.name} {task_obj.setting_label}; "
            f"it supports tasks: {', '.join(cls.tasks)}"
        )
    model = cls(task_obj, **options)
    model.spec = spec if "." in spec else format_spec(name, tag)
    if pretrained and model.needs_weights():
        loc = find_weights(cls, task_obj, weights, tag=tag)
        if loc is None and weights is None:
            loc = _fetch_missing(cls, task_obj, tag, download)
        if loc is None:
            raise _missing_weights(cls, task_obj, tag)
        load_weights(model, loc)
    if device is not None:
        model = model.to(device)
    return model.eval()


def load_weights(model: Method, loc: WeightsLocation) -> None:
    """Verify and load a safetensors weights file into ``model`` (strict).

    A cache file is read under its shared lock: the sidecar and the bytes of one install,
    checked against each other and loaded from those very bytes (its label and sha256 are
    taken from that sidecar, in case it was replaced since ``find_weights``).
    """
    from safetensors.torch import load

    with reading(loc.path):
        side = read_sidecar(loc.path)
        if loc.source == "cache" or (loc.source == "explicit" and in_cache(loc.path)):
            tag = (side.get("tag") or loc.tag) if loc.source == "cache" else loc.tag
            loc = WeightsLocation(loc.path, side.get("label") or loc.label, loc.source,
                                  side.get("sha256") or loc.sha256, tag)
        try:
            data = loc.path.read_bytes()
        except FileNotFoundError:
            raise WeightsNotFound(f"weights file not found: {loc.path} (removed?)") from None
    digest = verify(loc.path, loc.sha256, data)
    if side.get("method") not in (None, model.name):
        raise WeightsNotFound(
            f"{loc.path} holds weights of {side['method']!r}, not {model.name!r}"
        )
    state = load(data)
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
    model.weights_tag = loc.tag
    model.weights_path = loc.path
    model.weights_sha256 = digest
