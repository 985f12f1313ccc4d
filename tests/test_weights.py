"""Shipped weights: the ship script, the sidecar-driven PretrainedCfg, and every shipped file."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from conftest import make_plugin
from helpers import TINY, TinyAE

import irnbench
from irnbench.errors import WeightsNotFound
from irnbench.registry import create_task, get_method_class
from irnbench.training import train_method
from irnbench.weights import sha256_file, shipped_cfgs

ROOT = Path(__file__).resolve().parents[1]

#: (method, task, setting) of every ``cpu``-preset weights file that ships with irnbench.
SHIPPED = [("irn", "rescale", {"scale": 2}), ("irn", "rescale", {"scale": 4}),
           ("car", "rescale", {"scale": 2}), ("car", "rescale", {"scale": 4}),
           ("tar", "rescale", {"scale": 2}), ("tar", "rescale", {"scale": 4}),
           ("tar", "decolorize", {}), ("irn-color", "decolorize", {}),
           ("irn-crm", "compress", {"scale": 2})]


def _ship_module():
    spec = importlib.util.spec_from_file_location("ship_weights", ROOT / "scripts/ship_weights.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def tiny_run(register_plugin, tmp_path):
    register_plugin(make_plugin(irnbench_register_methods=lambda register: register(TinyAE)),
                    "test-tiny")
    res = train_method("test-tiny-ae", "rescale", scale=2, preset="smoke", out=tmp_path / "run",
                       **TINY)
    return res


def test_ship_script_writes_a_cfg_that_loads(tiny_run, tmp_path, monkeypatch):
    pkg = tmp_path / "pkg"
    dest = _ship_module().ship(tiny_run.out_dir, pkg, commit="abc123", machine="test box")
    assert dest == pkg / "weights" / "rescale-x2.safetensors"
    cfgs = shipped_cfgs(pkg, "test-tiny-ae", paper="a paper")
    assert shipped_cfgs(pkg, "another-method") == {}
    cfg = cfgs["rescale-x2"]
    assert cfg.sha256 == sha256_file(dest) and cfg.file == "weights/rescale-x2.safetensors"
    assert cfg.label == "irnbench smoke preset, 8 steps (not the paper's model)"
    assert cfg.training["iteration"] == 8 and cfg.training["commit"] == "abc123"
    assert cfg.training["data"]["name"] == "mini-train"
    side = json.loads(dest.with_suffix(".json").read_text())
    assert side["history"] and side["machine"] == "test box"
    # the method finds and loads them as shipped weights
    monkeypatch.setattr(TinyAE, "pretrained_cfgs", cfgs)
    monkeypatch.setattr(TinyAE, "package_dir", classmethod(lambda cls: pkg))
    m = irnbench.create_method("test-tiny-ae", scale=2)
    assert m.weights_label == cfg.label and m.weights_source.startswith("shipped")
    # a replaced file is refused
    dest.write_bytes(dest.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(WeightsNotFound, match="corrupt or replaced"):
        irnbench.create_method("test-tiny-ae", scale=2)


def test_ship_keeps_the_record_of_the_weights_a_fine_tune_replaces(tiny_run, tmp_path):
    from irnbench.training import train_method

    pkg = tmp_path / "pkg"
    first = _ship_module().ship(tiny_run.out_dir, pkg, commit="abc123")
    ft = train_method("test-tiny-ae", "rescale", scale=2, preset="smoke", out=tmp_path / "ft",
                      init=first, iterations=2, datasets="mini-train", device="cpu",
                      progress=False, install=False)
    side_path = ft.weights.with_suffix(".json")
    side = json.loads(side_path.read_text())
    assert side["init"]["commands"] == json.loads(first.with_suffix(".json").read_text())[
        "commands"] and side["init"]["commit"] == "abc123"
    # a sidecar from before the trainer kept the record: the ship script fills it in
    for k in ("commands", "commit", "iteration", "wall"):
        side["init"].pop(k)
    side["label"] = "an older trainer's label"
    side_path.write_text(json.dumps(side))
    dest = _ship_module().ship(ft.out_dir, pkg)
    shipped = json.loads(dest.with_suffix(".json").read_text())
    init = shipped["init"]
    assert init["commit"] == "abc123" and init["iteration"] == 8 and init["commands"]
    # ... and rebuilds the label from the record
    assert shipped["label"] == "irnbench smoke preset + smoke preset, 10 steps in all (not the " \
        "paper's model)"


def test_ship_refuses_a_file_that_does_not_match_its_sidecar(tiny_run, tmp_path):
    w = tiny_run.out_dir / "weights.safetensors"
    w.write_bytes(w.read_bytes() + b" ")
    with pytest.raises(SystemExit, match="does not match"):
        _ship_module().ship(tiny_run.out_dir, tmp_path / "pkg")


@pytest.mark.parametrize("method,task,setting", SHIPPED,
                         ids=[f"{m}-{create_task(t, **s).key}" for m, t, s in SHIPPED])
def test_shipped_weights_load_and_are_labelled(method, task, setting):
    """Every shipped file exists, matches its sha256 and loads strictly into its method."""
    cls = get_method_class(method)
    key = create_task(task, **setting).key
    cfg = cls.pretrained_cfgs.get(key)
    assert cfg is not None, f"{method} ships no weights for {key}"
    path = cls.package_dir() / cfg.file
    assert sha256_file(path) == cfg.sha256
    assert "not the paper's model" in cfg.label
    assert cfg.preset in cls.presets and cfg.preset.startswith("cpu")  # irnbench's CPU budgets
    assert cfg.training["data"]["name"] == "mini-train"
    assert cfg.training["commands"] and cfg.training["iteration"] > 0
    init = cfg.training.get("init")
    if cls.presets[cfg.preset].continues:  # a chain step: the run it started from is on record
        assert init["commands"] and init["sha256"] and init["iteration"] > 0
        assert cfg.training["steps_in_all"] == cfg.training["iteration"] + init["steps_in_all"]
        assert f"{cfg.training['steps_in_all']} steps in all" in cfg.label
    m = irnbench.create_method(method, task=task, **setting)
    assert m.weights_label == cfg.label
    assert all(torch.isfinite(p).all() for p in m.parameters())


def _chain(side: dict) -> list[dict]:
    out = []
    while side:
        out.append(side)
        side = side.get("init")
    return out[::-1]  # oldest first


@pytest.mark.parametrize("method,task,setting", SHIPPED,
                         ids=[f"{m}-{create_task(t, **s).key}" for m, t, s in SHIPPED])
def test_shipped_chains_name_every_init_by_sha256(method, task, setting):
    """Replaying a shipped sidecar's commands oldest first rebuilds its chain: every step names
    the file it starts from (the previous step's output) and its sha256, and the presets of the
    chain are the ones that trained it (old colour flags read as ``ColorAugment``)."""
    import shlex
    from dataclasses import asdict

    from irnbench.training.presets import preset_config, read_preset_config
    from irnbench.weights import chain_commands

    cls = get_method_class(method)
    key = create_task(task, **setting).key
    path = cls.package_dir() / cls.pretrained_cfgs[key].file
    side = json.loads(path.with_suffix(".json").read_text())
    steps = _chain(side)
    cmds = [shlex.split(c) for c in chain_commands(side)]
    task_obj = cls.weights_task(create_task(task, **setting))
    prev_out = None
    for step in steps:
        # this step's commands: one run, then resumes of the same folder that only lengthen it
        run = [cmds.pop(0)]
        while cmds and "--resume" in cmds[0]:
            run.append(cmds.pop(0))
        args = run[0]
        assert args[args.index("--preset") + 1] == step["preset"] and "--resume" not in args
        preset = cls.presets_for(task_obj)[step["preset"]]
        total = 0
        for a in run:
            assert a[a.index("--out") + 1] == args[args.index("--out") + 1]
            n = int(a[a.index("--iterations") + 1]) if "--iterations" in a else preset.iterations
            assert n >= total  # a resume to a shorter total would not stop at the earlier step
            total = n
        assert total == step["iteration"]
        if step.get("init"):
            assert args[args.index("--init") + 1] == f"{prev_out}/weights.safetensors"
            assert args[args.index("--init-sha256") + 1] == step["init"]["sha256"]
            assert preset.continues == step["init"]["preset"]
        else:
            assert "--init" not in args and not preset.continues
        if "preset_config" in step:  # runs made before it was recorded have none
            now = preset_config(preset)
            rec = read_preset_config(step["preset_config"])
            assert {k: v for k, v in rec.items() if k in now} == {
                k: v for k, v in now.items() if k in rec}
            assert rec["color"] == (asdict(preset.color) if preset.color else None)
        prev_out = args[args.index("--out") + 1]
    assert not cmds


def _stages(side: dict) -> list[dict]:
    out = [side]
    while out[-1].get("init"):
        out.append(out[-1]["init"])
    return out


@pytest.mark.parametrize("method,task,setting", SHIPPED)
def test_shipped_sidecars_record_the_preset_of_every_stage(method, task, setting):
    cls = get_method_class(method)
    cfg = cls.pretrained_cfgs[cls.weights_task(create_task(task, **setting)).key]
    side = json.loads((cls.package_dir() / cfg.file).with_suffix(".json").read_text())
    for st in _stages(side):
        pc = st.get("preset_config") or {}
        assert pc.get("name") == st["preset"], (method, st["preset"])
        assert pc.get("batch_size") and pc.get("crop"), (method, st["preset"])


def _published_budgets() -> dict[str, str]:
    """sha256 of every weights file a published report used → the training text it shows."""
    out: dict[str, str] = {}
    for meta_file in sorted((ROOT / "reports").glob("*/meta.json")):
        for per_setting in json.loads(meta_file.read_text()).get("weights", {}).values():
            for info in per_setting.values():
                if info.get("sha256") and info.get("budget"):
                    out[info["sha256"]] = info["budget"]
    return out


def test_editing_a_code_preset_leaves_the_published_training_column(monkeypatch):
    """The "Training" column comes from the weights' own record: change every preset of every
    method and the budget of every shipped file stays the one the published reports show."""
    import dataclasses

    from irnbench.runner import weights_info

    published = _published_budgets()
    before = {}
    for method, task, setting in SHIPPED:
        m = irnbench.create_method(method, task=task, **setting)
        before[(method, task, str(setting))] = weights_info(m)["budget"]
        if m.weights_sha256 in published:
            assert before[(method, task, str(setting))] == published[m.weights_sha256]
    assert len({b for b in before.values()}) > 1 and published
    for method, _, _ in SHIPPED:
        cls = get_method_class(method)
        edited = {k: dataclasses.replace(p, batch_size=p.batch_size + 7, crop=p.crop * 2)
                  for k, p in cls.presets.items()}
        monkeypatch.setattr(cls, "presets", edited)
        monkeypatch.setattr(cls, "presets_for", classmethod(lambda c, t, e=edited: e))
    for method, task, setting in SHIPPED:
        m = irnbench.create_method(method, task=task, **setting)
        assert weights_info(m)["budget"] == before[(method, task, str(setting))]
