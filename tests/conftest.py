"""Shared fixtures: offline hub, isolated user cache, and a test plugin that registers itself."""

from __future__ import annotations

import os
import types

import pytest
import torch


def pytest_configure(config):
    """One intra-op thread, here and in every process a test starts, unless ``OMP_NUM_THREADS``
    is set: the tests' tensors are small, and on a loaded 2-core machine two OpenMP threads per
    process waited on each other (IRN's smoke training: 228 s against 15 s with one)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


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


@pytest.fixture(scope="session")
def tiny_train_set(tmp_path_factory) -> str:
    """A training-set folder of four 128×96 centre crops of ``mini-train`` photos (three to
    train on, one held out), for tests of the training runner's mechanics: they do not depend on
    the photos' size, and loading the 1024-pixel photos took seconds per ``train_method``."""
    from pathlib import Path

    from PIL import Image

    source = Path(__file__).resolve().parents[1] / "datasets" / "mini-train"
    folder = tmp_path_factory.mktemp("tiny-train")
    for name in ("acanthus", "alpine", "hubble", "sail"):
        with Image.open(source / f"{name}.png") as im:
            left, top = (im.width - 128) // 2, (im.height - 96) // 2
            im.convert("RGB").crop((left, top, left + 128, top + 96)).save(folder / f"{name}.png")
    return str(folder)


@pytest.fixture(scope="session")
def mini_train_data():
    """``load(task)``: the ``TrainingData`` of ``mini-train`` for a task, loaded once per session
    and shared by the tests that only sample from it (samples are pure functions of the index)."""
    from irnbench.data.loading import resolve_dataset
    from irnbench.training.data import TrainingData

    cache = {}

    def load(task):
        if task.key not in cache:
            cache[task.key] = TrainingData(resolve_dataset("mini-train"), task)
        return cache[task.key]

    return load


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
