"""Weights: tags, where each tagged file lives, its sidecar record, and the import of published
checkpoints.

Every weights file of a method and task setting has a *tag* (timm's ``arch.tag``; see
``irnbench.weights.tags``) and a JSON sidecar (``irnbench.weights.record``). Modules:
``cards`` (what a method class declares), ``tags``, ``store`` (paths, lookup and the cache's
per-setting lock), ``record`` (the sidecar type, its writer and ``install_weights``, the one way
into the cache), ``official`` (import of the authors' files), ``fetch``
(their download from pinned URLs, verified by git blob SHA-1) and ``cli``
(``irnbench weights …``).
"""

from __future__ import annotations

from irnbench.errors import WeightsNotFound
from irnbench.weights.cards import OfficialCheckpoint, OfficialFile, PretrainedCfg
from irnbench.weights.fetch import (
    FetchError,
    FetchUnavailable,
    ManualDownload,
    fetch_weights,
    git_blob_sha1,
    weight_sources,
)
from irnbench.weights.record import (
    SIDECAR_KIND,
    Installed,
    WeightsExist,
    WeightsRecord,
    atomic_write,
    chain_commands,
    install_weights,
    read_sidecar,
    training_budget,
    write_weights,
)
from irnbench.weights.store import (
    cache_weights_dir,
    cache_weights_path,
    cached_path,
    cached_tags,
    legacy_cache_path,
    sha256_file,
    shipped_cfgs,
    user_home,
    verify,
    weights_lock,
)
from irnbench.weights.tags import (
    DEFAULT_TRAIN_TAG,
    OFFICIAL_TAG,
    RESOLUTION_ORDER,
    SHIPPED_TAG,
    check_tag,
    format_spec,
    parse_spec,
)

__all__ = [
    "PretrainedCfg", "OfficialFile", "OfficialCheckpoint", "WeightsRecord", "SIDECAR_KIND",
    "SHIPPED_TAG", "OFFICIAL_TAG", "DEFAULT_TRAIN_TAG", "RESOLUTION_ORDER",
    "parse_spec", "format_spec", "check_tag", "cached_tags", "cached_path", "cache_weights_dir",
    "cache_weights_path", "legacy_cache_path", "user_home", "sha256_file", "verify",
    "shipped_cfgs", "read_sidecar", "chain_commands", "training_budget", "atomic_write",
    "write_weights", "WeightsNotFound", "fetch_weights", "weight_sources", "git_blob_sha1",
    "FetchError", "FetchUnavailable", "ManualDownload", "install_weights", "Installed",
    "WeightsExist", "weights_lock",
]
