"""The authors' released T-IRN / T-SAIN checkpoints and how their tensors map onto irnbench's.

github.com/Jingwei-Bao/T-InvBlocks commits its weights in ``experiments/pretrained_TIRN/`` and
``experiments/pretrained_TSAIN/`` as ``torch.save(state_dict)`` of the unwrapped network (its
loader strips a leading ``module.`` and loads strictly). ``TIRN`` and ``TSAIN`` keep the
official module names, so the mapping is the identity, checked as for SAIN (every tensor
mapped, shapes equal, Haar weights equal to the Haar constants).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from irnbench.plugin import CheckpointError, ModelCard, OfficialCheckpoint, task_key
from irnbench_plugins.sain.official import ReleasedFile, map_state_dict, pinned_checkpoint

from .model import TIRN, TSAIN, TriBranchRescaleNet

__all__ = [
    "COMMIT", "OFFICIAL_FILES", "official_key", "official_state_dict", "build_official",
    "tinvblocks_official",
]

#: The commit whose code and weights the mapping was written against (the repository is the
#: methods' cards' ``code``).
COMMIT = "3590f069420ae2e88d4e2804a4b93c4e3dc5530d"

#: The released files at ``COMMIT``; ``args`` are those of ``TIRN`` / ``TSAIN`` (official
#: classes TIRN_2, TIRN_4, TSAIN_2, TSAIN_4 with the block counts of their test ymls).
OFFICIAL_FILES: dict[str, ReleasedFile] = {
    "TIRNx2.pth": ReleasedFile("experiments/pretrained_TIRN/TIRNx2.pth",
                               "35236f32ba0eeae6f922a31e1b6cb7b2332c59a5",
                               {"net": "TIRN", "scale": 2}),
    "TIRNx4.pth": ReleasedFile("experiments/pretrained_TIRN/TIRNx4.pth",
                               "cfc9dff89fe6669ff21e71640f1e52047c7340cd",
                               {"net": "TIRN", "scale": 4}),
    "TSAINx2.pth": ReleasedFile("experiments/pretrained_TSAIN/TSAINx2.pth",
                                "123f6a38fb9ceb48aa76626f82688ec8c10a3bb6",
                                {"net": "TSAIN", "scale": 2}),
    "TSAINx4.pth": ReleasedFile("experiments/pretrained_TSAIN/TSAINx4.pth",
                                "12bde229a5a50118ef3c9dc9c0d36a5a9e81eec9",
                                {"net": "TSAIN", "scale": 4}),
}

_NETS = {"TIRN": TIRN, "TSAIN": TSAIN}

_KEY = re.compile(
    r"^(haar_operations(_2)?\.0\.haar_weights"
    r"|(down_operations(_2)?|comp_operations)\.\d+\.[E-L]\.conv[1-5]\.(weight|bias))$"
)


def build_official(file: str) -> TriBranchRescaleNet:
    """The network a released file (e.g. ``TSAINx4.pth``) fills, freshly initialised."""
    if file not in OFFICIAL_FILES:
        raise CheckpointError(f"unknown T-InvBlocks release {file!r}; known: "
                              f"{', '.join(OFFICIAL_FILES)}")
    args = dict(OFFICIAL_FILES[file].args)
    return _NETS[args.pop("net")](**args)


def official_key(key: str) -> str | None:
    """The irnbench key of an official tensor name (the same name), or ``None`` if the name is
    not one of the tri-branch networks'."""
    return key if _KEY.match(key) else None


def official_state_dict(state: Mapping[str, torch.Tensor], model: TriBranchRescaleNet,
                        source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """``model``'s state dict from an official T-IRN / T-SAIN state dict, checked (a leading
    ``module.`` is stripped; unmapped, missing or wrong-shape keys and non-Haar Haar weights
    raise ``CheckpointError`` naming up to 5 keys)."""
    return map_state_dict(state, model, official_key, source)


# -- the importable checkpoints (``irnbench weights import tirn FILE --task rescale --scale S``)
_WHAT = {
    "TIRNx2.pth": "T-IRN ×2 (official TIRN_2: 3 tri-branch blocks)",
    "TIRNx4.pth": "T-IRN ×4 (official TIRN_4: 3 + 4 tri-branch blocks)",
    "TSAINx2.pth": "T-SAIN ×2 (official TSAIN_2: 3 tri-branch blocks + 1 comp block), trained "
                   "with JPEG at QF 75",
    "TSAINx4.pth": "T-SAIN ×4 (official TSAIN_4: 3 + 3 tri-branch blocks + 2 comp blocks), "
                   "trained with JPEG at QF 75",
}


def tinvblocks_official(card: ModelCard, net: str) -> dict[str, OfficialCheckpoint]:
    """``net``'s (``TIRN`` or ``TSAIN``) ×2 and ×4 releases; repository, licence and paper from
    the method's card."""
    return {
        task_key("rescale", scale=s): pinned_checkpoint(
            s, f"{net}x{s}.pth", _WHAT[f"{net}x{s}.pth"], card=card, released=OFFICIAL_FILES,
            key=official_key, commit=COMMIT)
        for s in (2, 4)
    }
