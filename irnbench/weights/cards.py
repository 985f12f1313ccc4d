"""The weights metadata a method class declares: its shipped files (``PretrainedCfg``, timm's
name) and the authors' published checkpoints it can import (``OfficialCheckpoint``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["PretrainedCfg", "OfficialFile", "OfficialCheckpoint"]


@dataclass(frozen=True)
class PretrainedCfg:
    """Shipped weights of one method for one task setting (timm-style)."""

    file: str  #: path relative to the plugin's package folder
    sha256: str
    task_key: str  #: e.g. ``rescale-x4``
    label: str  #: how every table names them, e.g. "irnbench cpu preset (not the paper's model)"
    preset: str = "cpu"
    licence: str = "MIT (irnbench)"
    paper: str = ""
    training: dict[str, Any] = field(default_factory=dict)  #: steps, wall time, commands, data

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class OfficialFile:
    """One file of a published checkpoint and the part of the irnbench model it fills."""

    name: str  #: as released, e.g. ``IRN_x4.pth`` or ``4x/kgn.pth``
    target_prefix: str  #: the irnbench state-dict keys it fills start with this, e.g. ``net.``
    what: str  #: e.g. "IRN ×4 InvRescaleNet"
    #: A pinned source for ``irnbench weights fetch``: an immutable URL (the commit is in its
    #: path), that commit, and the git blob SHA-1 of the file's bytes (``git hash-object``).
    #: Empty for files the authors only link for manual download.
    url: str = ""
    commit: str = ""
    git_blob_sha1: str = ""

    @property
    def fetchable(self) -> bool:
        """Whether the file has a pinned download that ``weights fetch`` can verify."""
        return bool(self.url and self.git_blob_sha1)


@dataclass(frozen=True)
class OfficialCheckpoint:
    """The authors' release of one method for one task setting, and how to convert it.

    ``rename(file_name, key)`` maps a source tensor name (``module.`` already stripped) of the
    file released as ``file_name`` to the irnbench state-dict key it fills (values are copied
    unchanged), or ``None`` when irnbench has no such tensor; ``irnbench.weights.official`` checks
    that the mapping is one to one with equal shapes.
    """

    task: str  #: e.g. ``rescale``
    setting: dict[str, Any]  #: e.g. ``{"scale": 4}``
    files: tuple[OfficialFile, ...]
    rename: Callable[[str, str], str | None]
    repository: str  #: e.g. ``github.com/pkuxmq/Invertible-Image-Rescaling``
    download: str  #: where the authors link the files
    licence: str  #: what the authors state (code licence; the weights' own terms)
    paper: str = ""
    options: dict[str, Any] = field(default_factory=dict)  #: constructor options to build it
    #: irnbench tensors that describe the configuration (filled from the built model)
    config_keys: tuple[str, ...] = ()
    note: str = ""  #: added to the label, e.g. "CRM trained at q = 90"
    #: Other single-file releases with the same tensors, by the tag to import (or fetch) them
    #: under, e.g. IRN+'s ``{"plus": OfficialFile("IRN+_x4.pth", ...)}``.
    variants: dict[str, OfficialFile] = field(default_factory=dict)
    #: Called as ``check(state, file_name)`` on each source file's tensors (``module.``
    #: stripped) before they are mapped; raises ``CheckpointError`` to refuse the file (e.g.
    #: SAIN's check that every ``haar_weights`` holds the Haar constants).
    check: Callable[[Mapping[str, Any], str], None] | None = None

    @property
    def file_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.files)
