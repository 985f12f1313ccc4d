"""Typed method options: a frozen dataclass per method, validated once by the harness.

Each method declares a nested ``Options`` dataclass (fields with a type, a default and a
one-line help text) instead of reading untyped keywords. Values arrive as Python objects
(``create_method("irn", scale=2, tile=512)``, a preset's ``options``) or as strings from the
command line (``--option tile=512``); ``parse_options`` converts both to the field's type and
refuses unknown names and bad values with an ``InvalidSetting`` that names the option and the
type it expects, so no method parses or checks its own options.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from irnbench.errors import InvalidSetting

__all__ = [
    "Options",
    "OptionInfo",
    "option",
    "tile_option",
    "MIN_TILE",
    "config_overrides",
    "overridden",
    "describe_options",
    "format_options",
    "parse_options",
    "parse_pairs",
]


@dataclasses.dataclass(frozen=True)
class Options:
    """Base of every method's options (no fields: the method takes no options)."""


def option(default: Any, help: str, choices: Iterable[str] | None = None) -> Any:
    """A dataclass field for an ``Options`` class: its default, help text and allowed values."""
    meta: dict[str, Any] = {"help": help}
    if choices is not None:
        meta["choices"] = tuple(choices)
    return dataclasses.field(default=default, metadata=meta)


#: The smallest tile side ``--option tile=N`` accepts. The tiling methods give each tile 32 px of
#: context on every side (``irnbench.ops.tiling.tiled``'s overlap, in the network's input
#: pixels), so a tile of t such pixels runs (t + 64)² pixels to keep t²: 9× the untiled work at
#: IRN ×2 with tile=64 (32 LR px), over 4000× at tile=2, minutes where one pass takes 0.25 s.
MIN_TILE = 64


def tile_option() -> Any:
    """The ``tile`` option shared by the tiling methods (see ``irnbench.ops.tiling``); a positive
    side below ``MIN_TILE`` given as text (the command line) is refused."""
    return dataclasses.field(default=0, metadata={
        "help": f"tile side in pixels (bounded memory): 0 automatic above AUTO_TILE_PIXELS, "
                f"< 0 never tile, else at least {MIN_TILE} (each tile carries 32 px of context "
                f"per side: at ×2 a {MIN_TILE} px tile already costs ~9× the untiled work, a "
                "2 px one thousands of times)",
        "text_minimum": (MIN_TILE, "each tile carries 32 px of context per side, so smaller "
                                   "tiles multiply the work (thousands of times at 2 px)"),
    })


def config_overrides(config_cls: type, base: type[Options], name: str) -> type[Options]:
    """``base`` plus one optional ``int`` field per field of a model configuration dataclass.

    E.g. CAR's ``edsr_blocks=8`` overrides that field of the configuration named by ``config``;
    ``None`` (the default) keeps the configuration's value. The fields follow the
    configuration class, so a new configuration field is an option without further code.
    """
    extra = [(f.name, int | None,
              option(None, f"override the configuration's {f.name} (default: from config)"))
             for f in dataclasses.fields(config_cls)]
    cls = dataclasses.make_dataclass(name, extra, bases=(base,), frozen=True)
    cls.__module__, cls.__doc__ = base.__module__, base.__doc__
    return cls


def overridden(opts: Options, config_cls: type) -> dict[str, int]:
    """The configuration fields ``opts`` overrides (see ``config_overrides``): not ``None``."""
    values = ((f.name, getattr(opts, f.name)) for f in dataclasses.fields(config_cls))
    return {k: v for k, v in values if v is not None}


@dataclasses.dataclass(frozen=True)
class OptionInfo:
    """One option as ``irnbench presets``, docs and errors show it."""

    name: str
    type: str  #: e.g. "int", "float", "int or none", "one of 'ste', 'soft'"
    default: Any
    help: str


def _hints(cls: type[Options]) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _choices(f: dataclasses.Field, tp: Any) -> tuple[Any, ...] | None:
    if "choices" in f.metadata:
        return f.metadata["choices"]
    if typing.get_origin(tp) is Literal:
        return typing.get_args(tp)
    return None


def _split_optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` → (X, True); anything else → (tp, False)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _type_label(f: dataclasses.Field, tp: Any) -> str:
    choices = _choices(f, tp)
    if choices is not None:
        return "one of " + ", ".join(repr(c) for c in choices)
    inner, optional = _split_optional(tp)
    label = getattr(inner, "__name__", str(inner))
    return f"{label} or none" if optional else label


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert_scalar(value: Any, tp: Any) -> Any:
    """``value`` as ``tp`` (int, float, bool or str); ``ValueError`` when it is not one."""
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError
    if isinstance(value, bool):  # True is an int to Python, never to a user
        raise ValueError
    if tp is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int | str):
            return int(value)
        raise ValueError
    if tp is float:
        if isinstance(value, int | float | str):
            return float(value)
        raise ValueError
    if tp is str:
        if isinstance(value, str | os.PathLike):
            return os.fspath(value)
        raise ValueError
    raise TypeError(f"options of type {tp!r} are not supported (int, float, bool, str)")


def _convert(f: dataclasses.Field, tp: Any, value: Any) -> Any:
    inner, optional = _split_optional(tp)
    if optional and (value is None or (isinstance(value, str)
                                       and value.strip().lower() in ("", "none"))):
        return None
    choices = _choices(f, tp)
    if choices is not None:
        if value not in choices:
            raise ValueError
        return value
    return _convert_scalar(value, inner)


def _check_minimum(f: dataclasses.Field, raw: Any, value: Any, owner: str) -> None:
    """A field's ``text_minimum``: a positive value below it, given as text (``--option``), is
    refused (0 and negative values keep their meanings; Python callers, e.g. tests of the tiler
    on tiny images, may go lower)."""
    minimum = f.metadata.get("text_minimum")
    if minimum is None or not isinstance(raw, str) or not isinstance(value, int):
        return
    floor, why = minimum
    if 0 < value < floor:
        raise InvalidSetting(f"{owner} option {f.name!r} is {value}: give at least {floor}, "
                             f"0 (automatic) or -1 (never); {why}")


def describe_options(cls: type[Options]) -> list[OptionInfo]:
    """Every option of an ``Options`` class: name, type, default and help."""
    hints = _hints(cls)
    return [OptionInfo(f.name, _type_label(f, hints[f.name]), f.default,
                       f.metadata.get("help", "")) for f in dataclasses.fields(cls)]


def format_options(cls: type[Options], owner: str) -> list[str]:
    """The lines ``irnbench presets METHOD`` prints for a method's options (none: none)."""
    infos = describe_options(cls)
    if not infos:
        return []
    lines = [f"{owner} options (--option KEY=VALUE):"]
    lines += [f"  {o.name:<16} {o.type} = {o.default!r}  — {o.help}" for o in infos]
    return lines


def parse_options(cls: type[Options], values: Mapping[str, Any],
                  owner: str) -> tuple[Options, dict[str, Any]]:
    """Validate and convert ``values`` into ``cls``; also return the given ones, converted.

    ``owner`` names the method (or preset) in errors. An unknown name, or a value that is not
    of the field's type (strings are parsed: ``"512"`` is an int, ``"true"`` a bool), raises
    ``InvalidSetting`` naming the option, the expected type and the accepted names; so does a
    ``ValueError`` of the class's own ``__post_init__`` (range checks).
    """
    hints = _hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        accepted = ", ".join(known) if known else "no options"
        raise InvalidSetting(f"{owner} has no option {', '.join(map(repr, unknown))} "
                             f"(it takes: {accepted})")
    given: dict[str, Any] = {}
    for name, value in values.items():
        f = known[name]
        try:
            given[name] = _convert(f, hints[name], value)
        except (ValueError, OverflowError):
            raise InvalidSetting(f"{owner} option {name!r} expects "
                                 f"{_type_label(f, hints[name])}; got {value!r}") from None
        _check_minimum(f, value, given[name], owner)
    try:
        return cls(**given), given
    except InvalidSetting:
        raise
    except ValueError as exc:  # a range check in the class's ``__post_init__``
        raise InvalidSetting(f"{owner}: {exc}") from None


def parse_pairs(pairs: Iterable[str]) -> dict[str, str]:
    """``["tile=512", "config=cpu"]`` (``--option KEY=VALUE``) → ``{"tile": "512", …}``."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidSetting(f"--option expects KEY=VALUE; got {pair!r}")
        out[key.strip()] = value.strip()
    return out
