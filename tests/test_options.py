"""Typed method options: conversion of CLI strings, clear errors, presets, the shared tile rule."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError, dataclass, replace

import pytest
import torch
from click.testing import CliRunner
from conftest import make_plugin

import irnbench
from irnbench.errors import InvalidSetting
from irnbench.methods import Method
from irnbench.ops.tiling import AUTO_TILE_PIXELS, AUTO_TILE_SIDE, resolve_tile
from irnbench.options import Options, describe_options, option, parse_options, parse_pairs
from irnbench.registry import get_method_class
from irnbench.training.presets import Preset
from irnbench.weights.cards import OfficialCheckpoint


@dataclass(frozen=True)
class _Opts(Options):
    """Every supported kind of field."""

    amount: float = option(0.0, "a float")
    steps: int = option(2, "an int")
    sharp: bool = option(False, "a bool")
    mode: str = option("a", "a choice", choices=("a", "b"))
    limit: int | None = option(None, "an optional int")


class Sharpen(Method):
    """A test method with typed options: identity down, identity up."""

    name = "test-options"
    tasks = ("rescale",)

    @dataclass(frozen=True)
    class Options(Options):
        amount: float = option(0.0, "strength")

    def degrade(self, x):
        return torch.nn.functional.avg_pool2d(x, self.task.setting["scale"])

    def restore(self, y, **channel_info):
        s = self.task.setting["scale"]
        return torch.nn.functional.interpolate(y, scale_factor=s, mode="nearest")


def test_strings_become_typed_values():
    opts, given = parse_options(_Opts, {"amount": "0.5", "steps": "3", "sharp": "true",
                                        "mode": "b", "limit": "none"}, "m")
    assert opts == _Opts(amount=0.5, steps=3, sharp=True, mode="b", limit=None)
    assert given == {"amount": 0.5, "steps": 3, "sharp": True, "mode": "b", "limit": None}
    assert parse_options(_Opts, {"steps": 4.0, "limit": 7}, "m")[0].steps == 4
    assert [o.type for o in describe_options(_Opts)] == [
        "float", "int", "bool", "one of 'a', 'b'", "int or none"]


@pytest.mark.parametrize("values, expected", [
    ({"steps": "abc"}, "option 'steps' expects int; got 'abc'"),
    ({"steps": 1.5}, "option 'steps' expects int; got 1.5"),
    ({"amount": True}, "option 'amount' expects float; got True"),
    ({"sharp": "maybe"}, "option 'sharp' expects bool; got 'maybe'"),
    ({"mode": "c"}, "option 'mode' expects one of 'a', 'b'; got 'c'"),
    ({"stpes": 1}, "m has no option 'stpes' \\(it takes: amount, steps, sharp, mode, limit\\)"),
])
def test_bad_values_and_unknown_names_are_refused(values, expected):
    with pytest.raises(InvalidSetting, match=expected):
        parse_options(_Opts, values, "m")


def test_create_method_validates_options():
    # old code: tile was parsed only when an image came (a bare ValueError mid-run)
    with pytest.raises(InvalidSetting, match="method 'irn' option 'tile' expects int"):
        irnbench.create_method("irn", scale=2, pretrained=False, tile="abc")
    # old code: a method without option_names accepted any keyword silently
    with pytest.raises(InvalidSetting, match="method 'bicubic' has no option 'tiel'"):
        irnbench.create_method("bicubic", scale=2, tiel=64)
    m = irnbench.create_method("car", scale=2, pretrained=False, config="smoke",
                               edsr_blocks="2", lambda_tv="0.01", tile="64")
    assert m.opts.tile == 64 and m.cfg.edsr_blocks == 2 and m.lambda_tv == 0.01
    assert m.options == {"config": "smoke", "edsr_blocks": 2, "lambda_tv": 0.01, "tile": 64}
    with pytest.raises(FrozenInstanceError):  # options are read, never changed in place
        m.opts.tile = 1


def test_preset_options_are_validated_when_the_class_is_defined():
    with pytest.raises(InvalidSetting, match="preset 'cpu' of 'test-bad-preset' has no option"):
        class BadPreset(Sharpen):
            name = "test-bad-preset"
            presets = {"cpu": Preset(name="cpu", iterations=1, batch_size=1, crop=8, lr=1e-3,
                                     options={"amout": 1.0})}
    with pytest.raises(InvalidSetting, match="option 'amount' expects float"):
        class BadType(Sharpen):
            name = "test-bad-type"
            presets = {"cpu": Preset(name="cpu", iterations=1, batch_size=1, crop=8, lr=1e-3,
                                     options={"amount": "lots"})}
    # a per-task preset table (TAR's decolorize_presets) and a published checkpoint's options
    with pytest.raises(InvalidSetting, match="preset 'small' of 'test-bad-table' has no option"):
        class BadTable(Sharpen):
            name = "test-bad-table"
            decolorize_presets = {"small": Preset(name="small", iterations=1, batch_size=1,
                                                  crop=8, lr=1e-3, options={"amout": 1.0})}
    with pytest.raises(InvalidSetting, match="official checkpoint of 'test-bad-official'"):
        class BadOfficial(Sharpen):
            name = "test-bad-official"
            official_weights = {"rescale-x2": OfficialCheckpoint(
                task="rescale", setting={"scale": 2}, files=(), rename=lambda f, k: k,
                repository="", download="", licence="", options={"amount": "lots"})}


def test_options_must_be_a_frozen_dataclass_and_option_names_is_gone():
    with pytest.raises(TypeError, match="option_names is replaced"):
        class Old(Method):
            name = "test-old"
            option_names = ("amount",)
    with pytest.raises(TypeError, match="frozen dataclass"):
        class Loose(Method):
            name = "test-loose"

            @dataclass
            class Options(Options):
                amount: float = 0.0


def test_every_plugin_option_has_help_text():
    """``irnbench presets`` prints each option's help; a field declared without ``option()``
    (a plain dataclass default) would have none. Preset options need no check here: a bad one
    fails at class definition (``test_preset_options_are_validated_when_the_class_is_defined``)."""
    for name in irnbench.list_methods():
        for info in describe_options(get_method_class(name).Options):
            assert info.help, f"{name} option {info.name} has no help text"


def test_run_option_flag(register_plugin, tmp_path):
    from PIL import Image

    from irnbench.cli import cli

    register_plugin(make_plugin(irnbench_register_methods=lambda register: register(Sharpen)),
                    "test-options-plugin")
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.new("RGB", (32, 32), (10, 200, 30)).save(folder / "a.png")
    args = ["eval", "--plugins", "test-options", "--scale", "2", "--datasets", str(folder),
            "--quiet", "--out", str(tmp_path / "run")]
    bad = CliRunner().invoke(cli, [*args, "--option", "amount=abc"])
    assert bad.exit_code == 2
    assert "method 'test-options' option 'amount' expects float; got 'abc'" in bad.output
    unknown = CliRunner().invoke(cli, [*args, "--option", "tile=4"])
    assert unknown.exit_code == 2 and "has no option 'tile'" in unknown.output
    ok = CliRunner().invoke(cli, [*args, "--option", "amount=0.5"])
    assert ok.exit_code == 0, ok.output
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["method_options"] == {"test-options": {"amount": 0.5}}
    assert parse_pairs(["a=1", "b = x=y"]) == {"a": "1", "b": "x=y"}


def test_resolve_tile_is_the_one_rule():
    assert resolve_tile(0, AUTO_TILE_PIXELS) == 0
    assert resolve_tile(0, AUTO_TILE_PIXELS + 1) == AUTO_TILE_SIDE
    assert resolve_tile(-1, 10 * AUTO_TILE_PIXELS) == 0
    assert resolve_tile(96, 16) == 96


def test_car_negative_tile_never_tiles(monkeypatch):
    """``tile < 0`` means "never tile" for every method (CAR used to tile with 1-pixel tiles)."""
    import irnbench_plugins.car.method as car_method

    def no_tiles(*args, **kwargs):
        raise AssertionError("tiled although tile < 0")

    monkeypatch.setattr(car_method, "tiled", no_tiles)
    m = irnbench.create_method("car", scale=2, pretrained=False, config="smoke", tile=-1)
    with torch.no_grad():
        out = m.restore(torch.rand(1, 3, 8, 8))
    assert out.shape == (1, 3, 16, 16)
    m.opts = replace(m.opts, tile=8)  # a positive side still tiles
    with pytest.raises(AssertionError, match="tiled although"):
        m.restore(torch.rand(1, 3, 8, 8))


def test_presets_command_lists_the_options():
    from irnbench.cli import cli

    out = CliRunner().invoke(cli, ["presets", "irn"]).output
    assert "irn options (--option KEY=VALUE):" in out
    assert "tile             int = 0  — tile side in pixels" in out
