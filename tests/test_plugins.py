"""The plugin system: every hook, entry-point loading, the env var, loud failures."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import make_plugin

import irnbench
from irnbench import hookspecs
from irnbench.data.cards import DatasetCard
from irnbench.methods import Method
from irnbench.ops.imresize import imresize
from irnbench.plugins import plugin_infos, registered_datasets, registered_methods
from irnbench.tasks.rescale import RescaleTask


class Nearest(Method):
    """A test method: box-average down, nearest-neighbour up."""

    name = "test-nearest"
    tasks = ("rescale",)
    description = "test plugin method"

    def degrade(self, x):
        s = self.task.setting["scale"]
        return torch.nn.functional.avg_pool2d(x, s)

    def restore(self, y, **channel_info):
        s = self.task.setting["scale"]
        return torch.nn.functional.interpolate(y, scale_factor=s, mode="nearest")


class HalfScaleTask(RescaleTask):
    name = "test-rescale"


def test_hook_irnbench_register_methods(register_plugin, tmp_path):
    register_plugin(make_plugin(irnbench_register_methods=lambda register: register(Nearest)),
                    "test-plugin")
    assert "test-nearest" in irnbench.list_methods("rescale")
    m = irnbench.create_method("test-nearest", scale=2)
    assert isinstance(m, Nearest) and m.task.setting == {"scale": 2}
    # `run` can use it, next to a built-in, through the CLI.
    from irnbench.cli import cli

    folder = tmp_path / "imgs"
    folder.mkdir()
    from PIL import Image

    Image.new("RGB", (64, 48), (10, 200, 30)).save(folder / "a.png")
    res = CliRunner().invoke(cli, ["eval", "--plugins", "test-nearest,bicubic", "--scale", "2",
                                   "--datasets", str(folder), "--quiet",
                                   "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert "test-nearest [measured]" in res.output
    info = {i.name: i for i in plugin_infos()}
    assert info["test-plugin"].methods == ["test-nearest"]


def test_hook_irnbench_register_tasks(register_plugin):
    register_plugin(make_plugin(irnbench_register_tasks=lambda register: register(HalfScaleTask)),
                    "test-task-plugin")
    task = irnbench.create_task("test-rescale", scale=2)
    assert isinstance(task, HalfScaleTask)
    assert "test-rescale" in irnbench.list_tasks()


def test_hook_irnbench_register_datasets(register_plugin, tmp_path):
    card = DatasetCard(name="test-set", source="bundled", path=str(tmp_path))
    register_plugin(make_plugin(irnbench_register_datasets=lambda register: register(card)),
                    "test-data-plugin")
    assert registered_datasets()["test-set"] is card


_HELLO_PLUGIN = """
import click

from irnbench.hookspecs import hookimpl


@hookimpl
def irnbench_register_commands(cli):
    @cli.command(name="hello-test")
    @click.argument("who")
    def hello(who):
        click.echo(f"hello {who}, from a plugin")
"""


def test_hook_irnbench_register_commands(tmp_path, monkeypatch):
    """A plugin distribution's command runs from the real ``irnbench`` group: its entry point
    is loaded by ``load_plugins`` and ``irnbench.cli`` calls the hook when it is imported (the
    test fails if the CLI stops calling it)."""
    import importlib

    import irnbench.cli
    from irnbench import plugins

    (tmp_path / "irnbench_hello_test.py").write_text(_HELLO_PLUGIN)
    dist = tmp_path / "irnbench_hello_test-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: irnbench-hello-test\n"
                                   "Version: 0.1\n")
    (dist / "entry_points.txt").write_text("[irnbench]\nhello-test = irnbench_hello_test\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("IRNBENCH_LOAD_PLUGINS", raising=False)
    monkeypatch.setattr(plugins, "_loaded", False)  # load entry points again, as a new process
    try:
        fresh = importlib.reload(irnbench.cli)  # what `irnbench` runs on start-up
        res = CliRunner().invoke(fresh.cli, ["hello-test", "world"])
        assert res.exit_code == 0, res.output
        assert res.output == "hello world, from a plugin\n"
        info = {i.name: i for i in plugin_infos()}
        assert info["hello-test"].commands == ["hello-test"]
        assert info["hello-test"].version == "0.1"
    finally:
        plugin = plugins.pm.get_plugin("hello-test")
        if plugin is not None:
            plugins.pm.unregister(plugin)
        sys.modules.pop("irnbench_hello_test", None)
        monkeypatch.setattr(plugins, "_loaded", True)
        importlib.reload(irnbench.cli)  # the group again without the test's command


def test_every_hook_has_a_test():
    """A hookspec without a ``test_hook_<name>`` here fails the suite (datasette's rule)."""
    specs = [n for n in dir(hookspecs) if n.startswith("irnbench_")]
    tree = ast.parse(Path(__file__).read_text())
    tested = {f.name for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)}
    missing = [s for s in specs if f"test_hook_{s}" not in tested]
    assert specs and not missing, f"hooks without a test: {missing}"


def test_duplicate_method_name_fails(register_plugin):
    class Clash(Nearest):
        name = "bicubic"

    register_plugin(make_plugin(irnbench_register_methods=lambda register: register(Clash)),
                    "clash")
    with pytest.raises(ValueError, match="registered by both"):
        registered_methods()


def test_misspelt_hookimpl_fails_loudly(tmp_path):
    """A hookimpl whose name matches no hookspec is rejected when plugins load.

    The misspelt plugin is registered first and ``load_plugins`` alone must reject it: the test
    never validates by itself, so it fails if ``load_plugins`` stops checking.
    """
    code = (
        "import irnbench.plugins as p\n"
        "from irnbench.hookspecs import hookimpl\n"
        "import types\n"
        "bad = types.ModuleType('typo')\n"
        "bad.irnbench_register_method = hookimpl(lambda register: None)\n"
        "p.pm.register(bad, name='typo')\n"
        "p.load_plugins()\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode != 0
    assert "irnbench_register_method" in res.stderr and "unknown hook" in res.stderr


def _methods_with_env(value: str | None) -> str:
    env = {k: v for k, v in __import__("os").environ.items() if k != "IRNBENCH_LOAD_PLUGINS"}
    if value is not None:
        env["IRNBENCH_LOAD_PLUGINS"] = value
    code = "import irnbench; print(','.join(irnbench.list_methods()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_load_plugins_env_var():
    assert "bicubic" in _methods_with_env(None).split(",")
    assert _methods_with_env("") == ""
    assert _methods_with_env("bicubic") == "bicubic"


def test_builtins_come_from_entry_points():
    from importlib.metadata import entry_points

    eps = {ep.name: ep.value for ep in entry_points(group="irnbench")}
    assert eps["bicubic"] == "irnbench_plugins.bicubic"
    info = {i.name: i for i in plugin_infos()}
    assert info["bicubic"].version == irnbench.__version__
    assert not info["bicubic"].core


def test_plugins_command_lists_builtins():
    from irnbench.cli import cli

    res = CliRunner().invoke(cli, ["plugins"])
    assert res.exit_code == 0
    assert "bicubic 0.1.0" in res.output and "methods: bicubic" in res.output
    assert "tasks: rescale" in res.output and "datasets:" in res.output


def test_bicubic_is_imresize_both_ways():
    m = irnbench.create_method("bicubic", scale=4)
    x = torch.rand(1, 3, 32, 40)
    assert torch.equal(m.degrade(x), imresize(x, 0.25))
    y = torch.rand(1, 3, 8, 10)
    assert torch.equal(m.restore(y), imresize(y, 4.0))
    assert not m.needs_weights() and m.weights_label == "none needed"


def test_bicubic_paper_rows_are_table1():
    from irnbench.results import paper_frame

    cls = registered_methods()["bicubic"]
    df = paper_frame([cls], "rescale")
    row = df[(df.setting == "x2") & (df.dataset == "set5") & df.quality.isna()].iloc[0]
    assert (row.psnr_y, row.ssim_y) == (33.66, 0.9299)
    assert (df.source == "paper-reported").all()
    row4 = df[(df.setting == "x4") & (df.dataset == "set5") & df.quality.isna()].iloc[0]
    assert (row4.psnr_y, row4.ssim_y) == (28.42, 0.8104)
