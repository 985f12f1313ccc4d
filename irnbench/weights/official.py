"""Import the authors' published checkpoints as tagged irnbench weights.

``import_checkpoint("irn", ["IRN_x4.pth"], "rescale", scale=4)`` loads each file with
``torch.load(weights_only=True)`` only (a file that needs code to unpickle is refused, and
nothing in it runs), strips DataParallel's ``module.`` prefixes, maps every source tensor to
exactly one irnbench tensor of the same shape (the method's ``OfficialCheckpoint.rename``), and
writes safetensors + a JSON sidecar into the user cache under a tag (``official`` by default)
through ``install_weights``. Other weights under the tag are replaced only with
``replace=True`` (``--replace``), checked before converting; the same files again change
nothing. A file of another method or setting fails with one line that says what it is.
"""

from __future__ import annotations

import datetime as _dt
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from irnbench.errors import CheckpointError
from irnbench.tasks.base import Task
from irnbench.weights.cards import OfficialCheckpoint, OfficialFile
from irnbench.weights.record import (
    WeightsRecord,
    install_weights,
    installed_record,
    refuse_replace,
)
from irnbench.weights.store import cached_path, check_cache, sha256_file
from irnbench.weights.tags import OFFICIAL_TAG, SHIPPED_TAG, check_tag, parse_spec

if TYPE_CHECKING:
    from irnbench.methods import Method

__all__ = ["CheckpointError", "ImportedWeights", "load_checkpoint", "import_checkpoint",
           "map_checkpoint", "official_label"]

#: At most this many keys are named in one error.
_SHOWN_KEYS = 5

State = dict[str, torch.Tensor]


@dataclass
class ImportedWeights:
    path: Path
    label: str
    tag: str
    sha256: str
    changed: bool = True  #: False: these files were imported already (nothing written)


# -- reading -------------------------------------------------------------------------------
def load_checkpoint(path: str | Path) -> State:
    """The tensors of a ``.pth`` file, loaded with ``weights_only=True`` only.

    A file whose unpickling would need code (a class, a function, ``__reduce__``) is refused
    without running any of it; keys lose a leading ``module.`` (DataParallel/DDP); a
    ``{"state_dict": {...}}`` wrapper is unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" in str(exc):
            raise CheckpointError(
                f"refused {path.name}: unpickling it needs code ({_refusal_reason(exc)}); "
                "irnbench loads tensors only (torch.load weights_only=True), so nothing in "
                "it was run"
            ) from None
        raise _unreadable(path, exc) from None
    except Exception as exc:  # noqa: BLE001 - any reader failure is one clear line
        raise _unreadable(path, exc) from None
    return _tensors_of(path, obj)


def _refusal_reason(exc: Exception) -> str:
    for line in str(exc).splitlines():
        line = line.strip()
        if line.startswith(("Trying to load unsupported GLOBAL", "Unsupported")):
            return line.rstrip(".")
    return "a pickle object that is not a tensor"


def _unreadable(path: Path, exc: Exception) -> CheckpointError:
    first = (str(exc).strip().splitlines() or [""])[0][:160]
    return CheckpointError(
        f"{path.name} is not a readable PyTorch checkpoint (truncated or corrupt?): "
        f"{type(exc).__name__}: {first}"
    )


def _tensors_of(path: Path, obj: Any) -> State:
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"],
                                                                       Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path.name} holds a {type(obj).__name__}, not a state dict "
                              "of tensors")
    bad = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path.name}: not tensors: {', '.join(bad[:_SHOWN_KEYS])}")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


# -- mapping -------------------------------------------------------------------------------
def _targets(model: Method, official: OfficialCheckpoint) -> dict[str, tuple[int, ...]]:
    """The shapes of the irnbench tensors an import fills (configuration tensors excluded)."""
    return {k: tuple(v.shape) for k, v in model.state_dict().items()
            if k not in official.config_keys}


def _meta_model(cls: type[Method], task: Task, official: OfficialCheckpoint) -> Method:
    """The model an official checkpoint fills, on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        return cls(task, **official.options)


@dataclass
class _Fit:
    mapped: dict[str, str]  #: irnbench key → source key
    unused: list[str]  #: source keys without a target
    clashes: list[str]  #: source keys whose target is taken or of another shape
    missing: list[str]  #: targets under the file's prefix that no source key fills

    @property
    def ok(self) -> bool:
        return not (self.unused or self.clashes or self.missing)


def _fit(state: Mapping[str, Any], file: OfficialFile, official: OfficialCheckpoint,
         targets: Mapping[str, tuple[int, ...]]) -> _Fit:
    mapped: dict[str, str] = {}
    unused, clashes = [], []
    for key, value in state.items():
        target = official.rename(file.name, key)
        if target is None or target not in targets or not target.startswith(file.target_prefix):
            unused.append(key)
        elif target in mapped or tuple(value.shape) != targets[target]:
            shape = tuple(value.shape)
            clashes.append(f"{key} {list(shape)} → {target} {list(targets[target])}")
        else:
            mapped[target] = key
    missing = [t for t in targets if t.startswith(file.target_prefix) and t not in mapped]
    return _Fit(mapped, unused, clashes, missing)


def map_checkpoint(model: Method, official: OfficialCheckpoint,
                   states: Sequence[tuple[str, State]]) -> tuple[State, list[str]]:
    """irnbench tensors for ``model`` from the source states (``(display name, state)`` pairs
    in any order), and the released file name each state was matched to.

    Each file is matched to the released file it fills; every source tensor must map to
    exactly one irnbench tensor of the same shape and every irnbench tensor must be filled,
    else a ``CheckpointError`` says what the file is or names up to 5 keys.
    """
    targets = _targets(model, official)
    want = f"{model.name} {model.task.name} {model.task.setting_label}"
    roles: dict[str, tuple[str, State, _Fit]] = {}
    for shown, state in states:
        if official.check is not None:
            official.check(state, shown)
        fits = {f.name: _fit(state, f, official, targets) for f in official.files}
        good = [name for name, fit in fits.items() if fit.ok and name not in roles]
        if good:
            roles[good[0]] = (shown, state, fits[good[0]])
            continue
        raise _mismatch(shown, state, want, fits, official)
    missing = [f for f in official.files if f.name not in roles]
    if missing:
        need = " and ".join(f"{f.name} ({f.what})" for f in official.files)
        lack = ", ".join(f"{f.name} ({f.what})" for f in missing)
        raise CheckpointError(f"{want} needs {len(official.files)} files, {need}; missing: "
                              f"{lack}")
    out: State = {}
    for _, state, fit in roles.values():
        out.update({t: state[k] for t, k in fit.mapped.items()})
    released = {shown: role for role, (shown, _, _) in roles.items()}
    return out, [released[shown] for shown, _ in states]


def _mismatch(shown: str, state: State, want: str, fits: Mapping[str, _Fit],
              official: OfficialCheckpoint) -> CheckpointError:
    """One clear line: what the file is (when another known checkpoint fits), else the keys."""
    other = identify(state)
    if other is not None:
        return CheckpointError(f"{shown} is {other}, not {want}")
    fit = min(fits.values(), key=lambda f: len(f.unused) + len(f.clashes) + len(f.missing))
    parts = []
    for label, keys in (("unused", fit.unused), ("wrong shape", fit.clashes),
                        ("not filled", fit.missing)):
        if keys:
            more = f" (+{len(keys) - _SHOWN_KEYS} more)" if len(keys) > _SHOWN_KEYS else ""
            parts.append(f"{label}: {', '.join(keys[:_SHOWN_KEYS])}{more}")
    return CheckpointError(f"{shown} does not fit {want} "
                           f"({' / '.join(official.file_names)}): {'; '.join(parts)}")


def identify(state: State) -> str | None:
    """Which known published file this state fills completely, e.g. "irn's rescale x2
    checkpoint (IRN_x2.pth)", over every registered method's ``official_weights``."""
    from irnbench.plugins import registered_methods
    from irnbench.registry import create_task

    for cls in registered_methods().values():
        for official in cls.official_weights.values():
            task = create_task(official.task, **official.setting)
            try:
                targets = _targets(_meta_model(cls, task, official), official)
            except Exception:  # noqa: BLE001 - a plugin that cannot build on meta is skipped
                continue
            for f in official.files:
                if _fit(state, f, official, targets).ok:
                    flag = f" --scale {official.setting['scale']}" \
                        if "scale" in official.setting else ""
                    return (f"{cls.name}'s {task.name} {task.setting_label} file {f.name} "
                            f"({f.what}; import it with `irnbench weights import {cls.name} "
                            f"... --task {task.name}{flag}`)")
    return None


# -- writing -------------------------------------------------------------------------------
def official_label(files: Sequence[str], note: str = "") -> str:
    """How every table names imported weights: "official checkpoint (FILE[ + FILE])"."""
    text = " + ".join(files)
    return f"official checkpoint ({text}{'; ' + note if note else ''})"


def import_checkpoint(
    method: str,
    files: Sequence[str | Path],
    task: str | Task = "rescale",
    tag: str | None = None,
    provenance: Mapping[str, Mapping[str, Any]] | None = None,
    replace: bool = False,
    **setting: Any,
) -> ImportedWeights:
    """Convert the authors' checkpoint file(s) of ``method`` into tagged irnbench weights.

    ``provenance`` adds fields to a file's ``sources`` entry in the sidecar, by file name
    (``weights fetch``: its URL, commit and git blob SHA-1); the measured sha256 and size win.
    Other weights under the tag are refused before converting unless ``replace``; files with
    the sha256s the installed sidecar records are a no-op (``changed`` False).
    """
    from irnbench.registry import _split_setting, get_method_class

    name, spec_tag = parse_spec(method, tag)
    tag = check_tag(spec_tag or OFFICIAL_TAG)
    if tag == SHIPPED_TAG:
        raise CheckpointError(f"tag {SHIPPED_TAG!r} is irnbench's shipped weights; import "
                              f"under {OFFICIAL_TAG!r} or another name")
    cls = get_method_class(name)
    task_obj, _ = _split_setting(task, setting)
    task_obj = cls.weights_task(task_obj)
    official = cls.official_for(task_obj)
    if official is None:
        known = ", ".join(f"{o.task} {_setting_text(o)}" for o in cls.official_weights.values())
        raise CheckpointError(
            f"{name} has no published checkpoint for {task_obj.name} {task_obj.setting_label}"
            + (f"; it has: {known}" if known else "")
        )
    check_cache()
    paths = [Path(f) for f in files]
    for p in paths:
        if not p.is_file():
            raise CheckpointError(f"checkpoint file not found: {p}")
    digests = [sha256_file(p) for p in paths]
    have = installed_record(cls.name, task_obj.key, tag)
    if have is not None and _same_sources(have, digests):
        path = cached_path(cls.name, task_obj.key, tag)
        return ImportedWeights(path, have.get("label", ""), tag, have.get("sha256", ""), False)
    refuse_replace(cls.name, task_obj.key, tag, replace)  # before converting
    states = [(p.name, load_checkpoint(p)) for p in paths]
    model = cls(task_obj, **official.options)
    tensors, released = map_checkpoint(model, official, states)
    full = model.state_dict()
    full.update(tensors)
    model.load_state_dict(full, strict=True)
    label = official_label([r if Path(r).name == p.name else p.name
                            for p, r in zip(paths, released, strict=True)], official.note)
    sources = [{"file": p.name, "released_as": r, **(provenance or {}).get(p.name, {}),
                "sha256": d, "bytes": p.stat().st_size}
               for p, r, d in zip(paths, released, digests, strict=True)]
    record = WeightsRecord(
        method=cls.name, task=task_obj.name, setting=task_obj.setting, task_key=task_obj.key,
        label=label, preset=OFFICIAL_TAG, tag=tag, extra={
            "sources": sources,
            "origin": {"repository": official.repository, "files": list(official.file_names),
                       "download": official.download},
            "licence": official.licence, "paper": official.paper, "options": official.options,
            "note": official.note, "irnbench_version": _version(),
            "imported": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
    res = install_weights(model.state_dict(), record, replace=replace)
    return ImportedWeights(res.path, res.label, tag, res.sha256, res.changed)


def _same_sources(side: Mapping[str, Any], digests: Sequence[str]) -> bool:
    """Whether an installed sidecar records exactly these source files (by sha256)."""
    sources = side.get("sources") or []
    have = sorted(str(s.get("sha256")) for s in sources if isinstance(s, Mapping))
    return bool(have) and have == sorted(digests) and bool(side.get("sha256"))


def _setting_text(official: OfficialCheckpoint) -> str:
    return " ".join(f"x{v}" if k == "scale" else f"{k}={v}" for k, v in official.setting.items())


def _version() -> str:
    from irnbench import __version__

    return __version__
