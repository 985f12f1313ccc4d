"""Training presets: a method's schedules (``Preset``) and the colour augmentation of their crops.

Plain records with no training code, so the method interface and plugins can declare presets
without importing the training loop; ``preset_config`` is what runs record of them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["ColorAugment", "Preset", "LEGACY_PRESET_KEYS", "preset_config", "read_preset_config"]


@dataclass(frozen=True)
class ColorAugment:
    """Colour augmentation of a preset's training crops (``Preset.color``; ``None``: off).

    Every sample draws a channel order and a saturation gain about the luma (``color_jitter``).
    ``permute=False`` keeps the photo's channel order (the order is still drawn, so the other
    draws do not move), for methods that learn a colour prior. ``clip``: gains up to 3 applied
    in full with HR values clipped to [0, 1] (``saturate_clipped``; the reference recomputed from
    the clipped image) instead of capped, so training sees saturated colours. ``cast`` (needs
    ``clip``): a random offset per channel before clipping, which makes bright saturated colours
    (yellows) that gains alone do not.
    """

    permute: bool = True
    clip: bool = False
    cast: bool = False

    def __post_init__(self) -> None:
        if self.cast and not self.clip:
            raise ValueError("ColorAugment: cast only acts with clip")

    def describe(self) -> str:
        """``augment+clip+cast`` (and ``no permute``), as ``irnbench presets`` shows it."""
        flags = ["augment", *(f for f, on in (("clip", self.clip), ("cast", self.cast)) if on)]
        return "+".join(flags) + ("" if self.permute else "+no permute")

    @staticmethod
    def from_flags(cfg: Mapping[str, Any]) -> ColorAugment | None:
        """The value recorded as the four flags ``color_augment``/``color_clip``/``color_cast``/
        ``color_permute`` by runs made before ``ColorAugment`` (absent flags: their defaults)."""
        if not cfg.get("color_augment"):
            return None
        return ColorAugment(permute=bool(cfg.get("color_permute", True)),
                            clip=bool(cfg.get("color_clip", False)),
                            cast=bool(cfg.get("color_cast", False)))


@dataclass(frozen=True)
class Preset:
    """A training schedule that belongs to a method (``paper``, ``cpu``, ``smoke``)."""

    name: str
    iterations: int
    batch_size: int
    crop: int
    lr: float
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8  #: Adam's epsilon
    weight_decay: float = 0.0
    milestones: tuple[int, ...] = ()
    gamma: float = 0.5
    warmup: int = 0
    grad_clip: float | None = None
    val_every: int = 0
    #: Side of the centre crop of each held-out image that validation scores; ``0``: the whole
    #: image; ``None``: ``min(256, max(64, 2·crop))`` (the rule of runs made before this field).
    val_side: int | None = None
    checkpoint_every: int = 0
    augment: bool = True
    #: Colour augmentation of the training crops (see ``ColorAugment``); ``None``: off.
    color: ColorAugment | None = None
    #: A chain step: the preset whose weights this one fine-tunes. Training it needs
    #: ``--init PATH`` (sha256-checked; never an implicit "current shipped" file), so the
    #: recorded commands of a chain, run in order, rebuild it. ``""``: it starts from scratch.
    continues: str = ""
    options: dict[str, Any] = field(default_factory=dict)  #: method-specific (model size…)


#: ``Preset`` fields of runs made before ``ColorAugment`` and explicit ``--init``.
LEGACY_PRESET_KEYS = ("color_augment", "color_clip", "color_cast", "color_permute", "init_from")


def preset_config(p: Preset) -> dict[str, Any]:
    """The JSON record of a preset that runs keep (``preset_config`` in checkpoints/sidecars)."""
    return json.loads(json.dumps(asdict(p)))


def read_preset_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """A recorded ``preset_config`` in today's fields: the four colour flags of older runs become
    ``color`` (as ``asdict`` writes a ``ColorAugment``), their ``init_from`` is dropped."""
    if not any(k in cfg for k in LEGACY_PRESET_KEYS):
        return dict(cfg)
    out = {k: v for k, v in cfg.items() if k not in LEGACY_PRESET_KEYS}
    color = ColorAugment.from_flags(cfg)
    out["color"] = None if color is None else asdict(color)
    return out


