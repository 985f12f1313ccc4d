"""The authors' released CAR checkpoints (``{2,4}x/kgn.pth`` + ``usn.pth``) and their mapping.

sunwj/CAR saves ``nn.DataParallel`` state dicts (``module.`` prefixes, stripped on load): ``kgn``
is the kernel generation net (DSN: ``sub_mean``, ``ds_1/2/4/8``, ``res_4``, ``kernels_trunk``,
``kernels_weight``, ``offsets_trunk``, ``offsets_{h,v}_generation``), ``usn`` the EDSR upscaler
(``sub_mean``, ``add_mean``, ``head``, ``body``, ``tail``). Sequential indices of the release
count its padding and activation layers; irnbench's ``ResamplerNet`` and ``EDSR`` group them
differently, so the index maps below translate one to the other (the ``paper`` configuration,
which is the released model).
"""

from __future__ import annotations

import re

from irnbench.plugin import ModelCard, OfficialCheckpoint, OfficialFile, task_key

__all__ = ["car_official", "DOWNLOAD"]

DOWNLOAD = ("https://mega.nz/#!XzIm3YhT!jbIOOOGBOiKtv3VAOD782Mz7nK1L_kma-BzR-RhboW4 (MEGA), "
            "linked from the README of https://github.com/sunwj/CAR")

#: Released trunk index → irnbench trunk index: 3 × [pad, conv, ReLU], upsample block, pad,
#: conv, ReLU against 3 × [padded conv, ReLU], 1×1 conv, shuffle, padded conv, ReLU.
_TRUNK = {"1": "0.1", "4": "2.1", "7": "4.1", "9.upsample.0": "6", "11": "8.1"}
#: Released head index → irnbench head index: [pad, conv, ReLU, pad, conv(, tanh)].
_HEAD = {"1": "0.1", "4": "2.1"}
_HEADS = {"kernels_weight": "kernels_head", "offsets_h_generation": "offsets_h_head",
          "offsets_v_generation": "offsets_v_head"}
_KGN = [
    (re.compile(r"^sub_mean\.(weight|bias)$"), lambda m: f"sub_mean.{m[1]}"),
    (re.compile(r"^ds_1\.1\.(weight|bias)$"), lambda m: f"enc.1.{m[1]}"),
    (re.compile(r"^ds_2\.downsample\.1\.(weight|bias)$"), lambda m: f"enc.3.conv.{m[1]}"),
    (re.compile(r"^ds_4\.downsample\.1\.(weight|bias)$"), lambda m: f"enc.4.conv.{m[1]}"),
    (re.compile(r"^res_4\.(\d+)\.transform\.([14])\.(weight|bias)$"),
     lambda m: f"res.{m[1]}.body.{'0' if m[2] == '1' else '2'}.1.{m[3]}"),
    (re.compile(r"^ds_8\.downsample\.1\.(weight|bias)$"), lambda m: f"down8.conv.{m[1]}"),
    (re.compile(r"^(kernels|offsets)_trunk\.(\d+(?:\.upsample\.0)?)\.(weight|bias)$"),
     lambda m: f"{m[1]}_trunk.{_TRUNK[m[2]]}.{m[3]}" if m[2] in _TRUNK else None),
    (re.compile(r"^(kernels_weight|offsets_[hv]_generation)\.(\d+)\.(weight|bias)$"),
     lambda m: f"{_HEADS[m[1]]}.{_HEAD[m[2]]}.{m[3]}" if m[2] in _HEAD else None),
]
_USN = [
    (re.compile(r"^(sub_mean|add_mean)\.(weight|bias)$"), lambda m: f"{m[1]}.{m[2]}"),
    (re.compile(r"^head\.0\.(weight|bias)$"), lambda m: f"head.{m[1]}"),
    (re.compile(r"^body\.(\d+)\.body\.([02])\.(weight|bias)$"),
     lambda m: f"body.{m[1]}.body.{m[2]}.{m[3]}"),
    (re.compile(r"^body\.(\d+)\.(weight|bias)$"), lambda m: f"body.{m[1]}.{m[2]}"),
    (re.compile(r"^tail\.0\.(\d+)\.(weight|bias)$"), lambda m: f"upsample.{m[1]}.{m[2]}"),
    (re.compile(r"^tail\.1\.(weight|bias)$"), lambda m: f"tail.{m[1]}"),
]


def _apply(rules, prefix: str, key: str) -> str | None:
    for pattern, target in rules:
        m = pattern.match(key)
        if m:
            name = target(m)
            return prefix + name if name else None
    return None


def _rename(file: str, key: str) -> str | None:
    """``kgn.pth`` → ``resampler.*``, ``usn.pth`` → ``upscaler.*``."""
    if file.endswith("kgn.pth"):
        return _apply(_KGN, "resampler.", key)
    return _apply(_USN, "upscaler.", key)


def _car(card: ModelCard, scale: int) -> OfficialCheckpoint:
    return OfficialCheckpoint(
        task="rescale", setting={"scale": scale},
        files=(OfficialFile(f"{scale}x/kgn.pth", "resampler.", "CAR's kernel generation net"),
               OfficialFile(f"{scale}x/usn.pth", "upscaler.", f"EDSR ×{scale} upscaler")),
        rename=_rename, repository=card.code, download=DOWNLOAD, licence=card.licence,
        paper=card.citation, options={"config": "paper"}, config_keys=("arch",),
    )


def car_official(card: ModelCard) -> dict[str, OfficialCheckpoint]:
    """The ×2 and ×4 releases; repository, licence and paper from the method's card."""
    return {task_key("rescale", scale=s): _car(card, s) for s in (2, 4)}
