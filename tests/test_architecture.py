"""The house rules of docs/architecture.md, checked on the source: what plugins import, which
modules stand at the top of ``irnbench/``, module sizes, and no private imports in ``report/``."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "irnbench"
#: What a method plugin may import from irnbench.
PLUGIN_API = ("irnbench.plugin", "irnbench.ops", "irnbench.metrics")
MAX_MODULE_LINES = 600


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module, imported names, line) of every import in a Python file (or template), except
    those under ``if TYPE_CHECKING:`` (names for annotations, never imported at run time)."""
    source = path.read_text()
    if path.suffix == ".tmpl":
        source = re.sub(r"\{\{[^}]*\}\}", "Name", source)  # the template's placeholders
    tree = ast.parse(source, filename=str(path))
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
            and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module, [a.name for a in node.names], node.lineno))
    return out


def _plugin_sources() -> list[Path]:
    return sorted([*(ROOT / "plugins").rglob("*.py"),
                   *(PKG / "plugin_template").rglob("*.py.tmpl")])


def _allowed(module: str) -> bool:
    return not (module == "irnbench" or module.startswith("irnbench.")) or any(
        module == api or module.startswith(api + ".") for api in PLUGIN_API)


@pytest.mark.parametrize("path", _plugin_sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_import_irnbench_only_through_the_plugin_api(path):
    bad = [f"{path.name}:{line} imports {mod}" for mod, _, line in _imports(path)
           if not _allowed(mod)]
    assert not bad, f"plugins import irnbench through {', '.join(PLUGIN_API)} only: {bad}"


def test_the_rule_catches_a_core_import(tmp_path):
    bad = tmp_path / "p.py"
    bad.write_text("from irnbench.weights.store import shipped_cfgs\nimport irnbench\n")
    assert [m for m, _, _ in _imports(bad) if not _allowed(m)] == ["irnbench.weights.store",
                                                                      "irnbench"]


def test_top_level_has_packages_not_prefixed_modules():
    names = {p.name for p in PKG.glob("*.py")}
    assert not [n for n in names if n.startswith("train_")]
    assert not {"weights_cli.py", "checkpoints.py", "weights.py", "augment.py"} & names
    for pkg in ("training", "weights", "report", "data", "tasks", "ops"):
        assert (PKG / pkg / "__init__.py").is_file(), pkg


@pytest.mark.parametrize("path", sorted([*PKG.rglob("*.py"), *(ROOT / "plugins").rglob("*.py")]),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_is_over_600_lines(path):
    assert len(path.read_text().splitlines()) <= MAX_MODULE_LINES


def test_report_modules_import_no_private_names_from_each_other():
    bad = []
    for path in sorted((PKG / "report").glob("*.py")):
        for mod, names, line in _imports(path):
            if mod.startswith("irnbench."):
                bad += [f"{path.name}:{line} {mod}.{n}" for n in names if n.startswith("_")]
    assert not bad


def test_the_method_interface_does_not_import_training():
    mods = [m for m, _, _ in _imports(PKG / "methods.py")]
    assert not [m for m in mods if m.startswith("irnbench.training")]
