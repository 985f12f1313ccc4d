"""Shared fixtures: offline hub, isolated user cache, and a test plugin that registers itself."""

from __future__ import annotations

import types

import pytest
import torch


@pytest.fixture(autouse=True)
def _offline_and_isolated(monkeypatch, tmp_path_factory):
    """No test may reach the hub, and none may touch the real user cache."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("IRNBENCH_HOME", str(tmp_path_factory.mktemp("irnbench_home")))
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


def make_plugin(**hooks) -> types.ModuleType:
    """A plugin module whose attributes are hookimpl-marked functions."""
    from irnbench.hookspecs import hookimpl

    mod = types.ModuleType("irnbench_test_plugin")
    for name, fn in hooks.items():
        setattr(mod, name, hookimpl(fn))
    return mod
