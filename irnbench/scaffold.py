"""Tools for plugin authors: ``irnbench new-plugin`` (a project template) and ``irnbench presets``.

The template is the folder ``plugin_template/`` next to this module (package data): each
``*.tmpl`` file is rendered with jinja2 into the new project. In paths, ``__module__`` becomes
the plugin's module name, ``__slug__`` the name with ``_`` for ``-``, and a leading ``dot_`` a
``.`` (package data cannot hold dot-files reliably).
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

from irnbench.errors import IrnbenchError
from irnbench.methods import Method
from irnbench.training.presets import Preset

__all__ = [
    "ScaffoldError",
    "TEMPLATE_DIR",
    "PluginNames",
    "plugin_names",
    "render_plugin",
    "write_plugin",
    "preset_groups",
    "format_preset",
    "describe_presets",
    "CONVENTIONAL_NOTES",
]

TEMPLATE_DIR = Path(__file__).resolve().parent / "plugin_template"
_NAME_RE = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
_DESCRIPTION = "bicubic down/up with an unsharp mask (an irnbench method plugin template)"
#: What the conventional preset names mean (``--preset`` help), when a method gives no note.
CONVENTIONAL_NOTES: dict[str, str] = {
    "paper": "the published schedule",
    "cpu": "irnbench's CPU budget",
    "gpu": "irnbench's one-GPU budget (about 1 h: an estimate, not yet measured)",
    "smoke": "a wiring check (seconds)",
}


class ScaffoldError(IrnbenchError):
    """A plugin project that cannot be created: a bad name or an occupied folder (exit 2)."""

    exit_code = 2


@dataclass(frozen=True)
class PluginNames:
    """The names a plugin project is made of."""

    name: str  #: the method and entry-point name, e.g. ``demo-sharp``
    slug: str  #: ``demo_sharp``
    module: str  #: the importable package, ``irnbench_demo_sharp``
    class_name: str  #: ``DemoSharp``
    project: str  #: the distribution and folder name, ``irnbench-demo-sharp``


def plugin_names(name: str) -> PluginNames:
    """Validate a method name (lower-case letters, digits, ``-``) and derive the others."""
    if not _NAME_RE.match(name):
        raise ScaffoldError(
            f"invalid plugin name {name!r}: use lower-case letters, digits and single '-' "
            "between them, starting with a letter (e.g. my-method)"
        )
    slug = name.replace("-", "_")
    class_name = "".join(part.capitalize() for part in name.split("-"))
    return PluginNames(name, slug, f"irnbench_{slug}", class_name, f"irnbench-{name}")


def _check_free(names: PluginNames) -> None:
    """Refuse a name an installed method, or an importable module, already has."""
    from irnbench.plugins import registered_methods

    methods = registered_methods()
    if names.name in methods:
        raise ScaffoldError(
            f"method {names.name!r} already exists (from {methods[names.name].__module__}); "
            "choose another name"
        )
    if importlib.util.find_spec(names.module) is not None:
        raise ScaffoldError(f"module {names.module!r} is already importable; choose another name")


def _target_path(rel: Path, names: PluginNames) -> Path:
    parts = []
    for part in rel.parts:
        part = part.replace("__module__", names.module).replace("__slug__", names.slug)
        if part.startswith("dot_"):
            part = "." + part[len("dot_"):]
        parts.append(part.removesuffix(".tmpl"))
    return Path(*parts)


def render_plugin(names: PluginNames, template_dir: Path = TEMPLATE_DIR) -> dict[Path, str]:
    """Render every template file: relative output path → text."""
    import jinja2

    env = jinja2.Environment(keep_trailing_newline=True, undefined=jinja2.StrictUndefined,
                             autoescape=False)
    context = {**vars(names), "description": _DESCRIPTION}
    files: dict[Path, str] = {}
    for src in sorted(template_dir.rglob("*.tmpl")):
        rel = src.relative_to(template_dir)
        files[_target_path(rel, names)] = env.from_string(src.read_text("utf-8")).render(context)
    if not files:
        raise ScaffoldError(f"no plugin template files in {template_dir}")
    return files


def write_plugin(name: str, out_dir: str | Path = ".") -> tuple[Path, list[Path]]:
    """Create ``out_dir/irnbench-NAME/`` from the template; returns the folder and its files.

    Refuses a bad or taken name and an existing non-empty folder (``ScaffoldError``).
    """
    names = plugin_names(name)
    _check_free(names)
    folder = Path(out_dir) / names.project
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ScaffoldError(f"{folder} already exists and is not empty; not overwriting it")
    files = render_plugin(names)
    for rel, text in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder, sorted(files)


# -- presets --------------------------------------------------------------------------------
def _task_settings(cls: type[Method]) -> list:
    """Each task setting ``irnbench train`` would use for the method's tasks' defaults."""
    from irnbench.plugins import registered_tasks

    tasks = registered_tasks()
    out = []
    for task_name in cls.tasks:
        if task_name not in tasks:
            continue
        for setting in tasks[task_name].default_settings():
            task = tasks[task_name](**setting)
            if cls.supports(task):
                out.append(cls.weights_task(task))
    return out


def preset_groups(cls: type[Method]) -> list[tuple[str, dict[str, Preset]]]:
    """The method's presets: ``("", cls.presets)`` then, per task setting whose
    ``presets_for`` differs, ``("TASK SETTING[, …]", the presets it adds or changes)``."""
    groups: list[tuple[list[str], dict[str, Preset]]] = []
    if cls.presets:
        groups.append(([], dict(cls.presets)))
    seen: set[str] = set()
    for task in _task_settings(cls):
        label = f"{task.name} {task.setting_label}".removesuffix(" -")
        if label in seen:
            continue
        seen.add(label)
        changed = {k: p for k, p in cls.presets_for(task).items() if cls.presets.get(k) != p}
        if not changed:
            continue
        for labels, presets in groups:
            if labels and presets == changed:
                labels.append(label)
                break
        else:
            groups.append(([label], changed))
    return [(", ".join(labels), presets) for labels, presets in groups]


def _milestones(steps: tuple[int, ...]) -> str:
    """``900,1200``; a repeated milestone (the decay applied several times) as ``5000x3``."""
    runs: list[list[int]] = []
    for step in steps:
        if runs and runs[-1][0] == step:
            runs[-1][1] += 1
        else:
            runs.append([step, 1])
    return ",".join(f"{s}x{n}" if n > 1 else str(s) for s, n in runs)


def _colour(p: Preset) -> str:
    return f"colour {p.color.describe()}" if p.color is not None else ""


def format_preset(key: str, p: Preset, note: str = "") -> str:
    """One line: the preset's ``--preset`` name, its schedule and its purpose, when known."""
    parts = [f"{p.iterations} iterations", f"batch {p.batch_size}", f"crop {p.crop}",
             f"lr {p.lr:g}"]
    if p.milestones:
        parts.append(f"milestones {_milestones(p.milestones)} (gamma {p.gamma:g})")
    if p.warmup:
        parts.append(f"warmup {p.warmup}")
    if p.grad_clip is not None:
        parts.append(f"grad clip {p.grad_clip:g}")
    if p.continues:
        parts.append(f"--init: {p.continues} weights")
    if _colour(p):
        parts.append(_colour(p))
    if p.options:
        parts.append("options " + " ".join(f"{k}={v}" for k, v in p.options.items()))
    line = f"{key:<16} " + ", ".join(parts)
    return f"{line}  — {note}" if note else line


def describe_presets(cls: type[Method]) -> list[str]:
    """The lines ``irnbench presets METHOD`` prints."""
    groups = preset_groups(cls)
    if not groups:
        why = (f" (irnbench does not train it: {cls.training_note})" if cls.training_note
               else "" if cls.trainable() else " (it has nothing to train)")
        return [f"{cls.name} has no training presets{why}"]
    notes = {**CONVENTIONAL_NOTES, **(getattr(cls, "preset_notes", None) or {})}
    lines: list[str] = []
    for label, presets in groups:
        lines.append(f"{cls.name} presets" + (f" on {label}:" if label else ":"))
        lines.extend("  " + format_preset(key, p, notes.get(key, "")) for key, p in presets.items())
    return lines
