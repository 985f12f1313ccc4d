"""Shared fixtures: offline hub, isolated user cache, and a test plugin that registers itself."""

from __future__ import annotations

import types

import pytest
import torch


def _isolate(mp: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Hub offline and ``IRNBENCH_HOME`` in a fresh temporary folder."""
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("HF_DATASETS_OFFLINE", "1")
    mp.setenv("IRNBENCH_HOME", str(tmp_path_factory.mktemp("irnbench_home")))


@pytest.fixture(scope="session", autouse=True)
def _offline_and_isolated_session(tmp_path_factory):
    """The same isolation for the whole session, so that module- and session-scoped fixtures
    (set up before any function-scoped one) cannot reach the hub or the real user cache."""
    with pytest.MonkeyPatch.context() as mp:
        _isolate(mp, tmp_path_factory)
        yield


@pytest.fixture(autouse=True)
def _offline_and_isolated(monkeypatch, tmp_path_factory):
    """No test may reach the hub, and none may touch the real user cache (a fresh one each)."""
    _isolate(monkeypatch, tmp_path_factory)
    torch.manual_seed(0)


@pytest.fixture
def register_plugin():
    """Register a plugin object (module or namespace with hookimpls) for one test only."""
    from irnbench.plugins import load_plugins, pm

    load_plugins()
    names = []

    def _register(obj, name):
        pm.register(obj, name=name)
        names.append(name)
        return obj

    yield _register
    for name in names:
        plugin = pm.get_plugin(name)
        if plugin is not None:
            pm.unregister(plugin)


@pytest.fixture
def tiny(register_plugin):
    """The tiny trainable rescaler of ``helpers`` (``test-tiny-ae``), registered for one test."""
    from helpers import TinyAE

    register_plugin(make_plugin(irnbench_register_methods=lambda register: register(TinyAE)),
                    "test-tiny")
    return TinyAE


@pytest.fixture
def hide_shipped_weights(monkeypatch):
    """``hide(*names)``: those methods behave as if they shipped no weights, for one test
    (the user cache is already isolated by ``_offline_and_isolated``)."""
    from irnbench.registry import get_method_class

    def hide(*names: str) -> None:
        for name in names:
            monkeypatch.setattr(get_method_class(name), "pretrained_cfgs", {})

    return hide


def make_plugin(**hooks) -> types.ModuleType:
    """A plugin module whose attributes are hookimpl-marked functions."""
    from irnbench.hookspecs import hookimpl

    mod = types.ModuleType("irnbench_test_plugin")
    for name, fn in hooks.items():
        setattr(mod, name, hookimpl(fn))
    return mod


def load_script(name: str) -> types.ModuleType:
    """Import ``scripts/<name>.py`` (the scripts folder is not a package) for a test."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
