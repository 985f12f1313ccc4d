"""The authors' released SAIN checkpoints and how their tensors map onto ``SAINet``.

github.com/yang-jin-hai/SAIN commits its weights in ``experiments/pretrained_models/`` as
``torch.save(state_dict)`` of the unwrapped ``SAINet`` (its loader strips a leading ``module.``
and loads strictly). ``SAINet`` keeps the official module names, so the mapping is the identity;
what this module adds is the checking: every tensor mapped, every shape equal, and the frozen
Haar weights equal to the Haar constants.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from irnbench.plugin import CheckpointError, ModelCard, OfficialCheckpoint, OfficialFile, task_key
from irnbench_plugins.irn.blocks import HaarDownsampling

from .model import SAINet

__all__ = [
    "COMMIT", "OFFICIAL_FILES", "ReleasedFile", "official_key", "official_state_dict",
    "build_official", "check_haar", "map_state_dict", "strip_module_prefix", "sain_official",
    "pinned_checkpoint",
]

#: The commit whose code and weights the mapping was written against (the repository is the
#: method's card's ``code``).
COMMIT = "e361d7a0d34b31468f1e47b3e4f181b0e2ca7d46"

#: At most this many keys are named in one error.
_SHOWN_KEYS = 5

State = dict[str, torch.Tensor]


@dataclass(frozen=True)
class ReleasedFile:
    """A released file: its path in the repository, its git blob SHA-1 (``git hash-object``)
    and the network's constructor arguments in the file's test yml."""

    path: str
    blob: str
    args: dict[str, Any]


#: The released files at ``COMMIT`` (``SAINet`` arguments from the test ymls
#: ``test_SAIN_{JPEG,WebP}_g_5_e_*_v_*_x*.yml``).
OFFICIAL_FILES: dict[str, ReleasedFile] = {
    "SAINx2_JPEG.pth": ReleasedFile(
        path="experiments/pretrained_models/SAINx2_JPEG.pth",
        blob="96647627e347d65aa9004577b3072a0f3079db80",
        args={"scale": 2, "e_blocks": 5, "v_blocks": 3, "gmm_components": 5}),
    "SAINx4_JPEG.pth": ReleasedFile(
        path="experiments/pretrained_models/SAINx4_JPEG.pth",
        blob="6cbd6b4f992f72a8b06b464ff724c46380631988",
        args={"scale": 4, "e_blocks": 10, "v_blocks": 6, "gmm_components": 5}),
    "SAINx2_WebP.pth": ReleasedFile(
        path="experiments/pretrained_models/SAINx2_WebP.pth",
        blob="8ded1d7557e239a1f39e7cd30aa762ccd1012676",
        args={"scale": 2, "e_blocks": 5, "v_blocks": 3, "gmm_components": 5}),
}

_SAIN_KEY = re.compile(
    r"^(haar_operations\.\d+\.haar_weights"
    r"|down_operations\.\d+\.[EFGH]\.conv[1-5]\.(weight|bias)"
    r"|comp_operations\.\d+\.[FGH]\.conv[1-5]\.(weight|bias)"
    r"|gmm\.gmm_para)$"
)


def build_official(file: str) -> SAINet:
    """The ``SAINet`` a released file (e.g. ``SAINx4_JPEG.pth``) fills, freshly initialised."""
    if file not in OFFICIAL_FILES:
        raise CheckpointError(f"unknown SAIN release {file!r}; known: "
                              f"{', '.join(OFFICIAL_FILES)}")
    return SAINet(**OFFICIAL_FILES[file].args)


def official_key(key: str) -> str | None:
    """The ``SAINet`` key of an official tensor name (the same name), or ``None`` if the name
    is not one of SAINet's."""
    return key if _SAIN_KEY.match(key) else None


def strip_module_prefix(state: Mapping[str, torch.Tensor]) -> State:
    """The state with a leading ``module.`` (DataParallel/DDP) removed from each key."""
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


def _shown(keys: list[str]) -> str:
    more = f" (+{len(keys) - _SHOWN_KEYS} more)" if len(keys) > _SHOWN_KEYS else ""
    return ", ".join(keys[:_SHOWN_KEYS]) + more


def check_haar(state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Raise ``CheckpointError`` unless every ``*haar_weights`` tensor holds the Haar constants.

    The official files store them as 4C×1×2×2 ±1 kernels (entry 4c + k is kernel k of input
    channel c; the /4 is applied after the convolution), exactly ``HaarDownsampling``'s.
    """
    bad = []
    for key, value in state.items():
        if not key.endswith("haar_weights"):
            continue
        shape = tuple(value.shape)
        if len(shape) != 4 or shape[0] % 4 or shape[1:] != (1, 2, 2):
            bad.append(f"{key} {list(shape)}")
            continue
        expected = HaarDownsampling(shape[0] // 4).haar_weights.detach()
        if not torch.equal(value.detach().to("cpu", expected.dtype), expected):
            bad.append(key)
    if bad:
        raise CheckpointError(f"{source}: not the Haar constants (±1 2×2 kernels): "
                              f"{_shown(bad)}")


def map_state_dict(
    state: Mapping[str, torch.Tensor],
    model: nn.Module,
    rename: Callable[[str], str | None],
    source: str = "checkpoint",
) -> State:
    """``model``'s state dict filled from an official ``state`` through ``rename``.

    A leading ``module.`` is stripped first. Every source tensor must map to a distinct key of
    ``model`` with the same shape, every key of ``model`` must be filled, and Haar weights must
    be the Haar constants; otherwise one ``CheckpointError`` names up to 5 keys per problem.
    """
    state = strip_module_prefix(state)
    targets = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    out: State = {}
    unused, clashes = [], []
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            unused.append(f"{key} (not a tensor)")
            continue
        target = rename(key)
        if target is None or target not in targets:
            unused.append(key)
        elif target in out or tuple(value.shape) != targets[target]:
            clashes.append(f"{key} {list(value.shape)} → {target} {list(targets[target])}")
        else:
            out[target] = value
    missing = [k for k in targets if k not in out]
    problems = [f"{label}: {_shown(keys)}" for label, keys in
                (("unused", unused), ("wrong shape", clashes), ("not filled", missing)) if keys]
    if problems:
        raise CheckpointError(f"{source} does not fit {type(model).__name__}: "
                              f"{'; '.join(problems)}")
    check_haar(out, source)
    return out


def official_state_dict(state: Mapping[str, torch.Tensor], model: SAINet,
                        source: str = "checkpoint") -> State:
    """``model``'s state dict from an official SAIN state dict (checked; see ``map_state_dict``).

    ``model.load_state_dict(official_state_dict(torch.load(f, weights_only=True), model))``.
    """
    return map_state_dict(state, model, official_key, source)


# -- the importable checkpoints (``irnbench weights import sain FILE --task rescale --scale S``)
def _pinned_file(name: str, released: ReleasedFile, what: str, repository: str,
                 commit: str) -> OfficialFile:
    """A released file that fills the method's ``net.``, with its immutable URL at ``commit``."""
    return OfficialFile(name, "net.", what, url=f"https://{repository}/raw/{commit}/{released.path}",
                        commit=commit, git_blob_sha1=released.blob)


def pinned_checkpoint(
    scale: int,
    file: str,
    what: str,
    *,
    card: ModelCard,
    released: Mapping[str, ReleasedFile],
    key: Callable[[str], str | None],
    commit: str,
    variants: Mapping[str, tuple[str, str]] | None = None,
) -> OfficialCheckpoint:
    """The ``OfficialCheckpoint`` of a one-file rescale ×``scale`` release committed in the git
    repository of the method's ``card`` (which also gives the licence and paper): it fills the
    method's ``net.`` through ``key`` (the official name → the network's, ``None`` if foreign),
    its Haar weights must be the Haar constants, and every file is pinned (URL at ``commit``,
    git blob SHA-1). ``variants``: tag → (file, what) of other releases with the same tensors."""

    def rename(_file: str, name: str) -> str | None:
        target = key(name)
        return None if target is None else "net." + target

    def pinned(name: str, text: str) -> OfficialFile:
        return _pinned_file(name, released[name], text, card.code, commit)

    return OfficialCheckpoint(
        task="rescale", setting={"scale": scale}, files=(pinned(file, what),), rename=rename,
        repository=card.code, download=f"https://{card.code}", licence=card.licence,
        paper=card.citation, check=check_haar,
        variants={tag: pinned(name, text) for tag, (name, text) in (variants or {}).items()},
    )


def _sain(card: ModelCard, scale: int, **variants: tuple[str, str]) -> OfficialCheckpoint:
    blocks = OFFICIAL_FILES[f"SAINx{scale}_JPEG.pth"].args
    what = (f"SAIN ×{scale} SAINet ({blocks['e_blocks']} Enhanced + {blocks['v_blocks']} Vanilla "
            "blocks), trained with JPEG at QF 75")
    return pinned_checkpoint(scale, f"SAINx{scale}_JPEG.pth", what, card=card,
                             released=OFFICIAL_FILES, key=official_key, commit=COMMIT,
                             variants=variants)


def sain_official(card: ModelCard) -> dict[str, OfficialCheckpoint]:
    """SAIN ×2 and ×4 (JPEG); ``SAINx2_WebP.pth`` has the ×2 tensors: import it with ``--tag
    webp``."""
    return {
        task_key("rescale", scale=2): _sain(card, 2, webp=("SAINx2_WebP.pth", "SAIN ×2 SAINet "
                                                            "trained with WebP at quality 75")),
        task_key("rescale", scale=4): _sain(card, 4),
    }
