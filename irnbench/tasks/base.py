"""The task interface: what a degradation–restoration task owns.

A task holds its setting (e.g. ``scale=4``), prepares HR images (modcrop), computes the
reference the degraded image is guided towards, runs the channel, and scores a restoration
under its metric protocol. Methods never compute metrics or touch the evaluation channel.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from irnbench.channel import Quantizer, Transmission, train_channel, transmit
from irnbench.errors import InvalidSetting
from irnbench.protocol import STOCHASTIC_DRAWS


class Task:
    """Base class of tasks. Subclasses set ``name``, ``setting_keys`` and the hooks below."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: Setting keywords the task takes (the CLI flags map one to one: ``--scale``, ``--jpeg``,
    #: ``--webp``).
    setting_keys: ClassVar[tuple[str, ...]] = ()
    #: Metric columns this task writes.
    metrics: ClassVar[tuple[str, ...]] = ()
    #: The metric every leaderboard of the task is ranked by, and the metric of its Δ column
    #: (``irnbench.leaderboard``): the one the task's source paper reports first.
    rank_metric: ClassVar[str] = "psnr_y"
    #: How a method × JPEG-quality summary of the task is ranked: ``"mean"`` (the rank metric's
    #: mean over the qualities) or ``"bd_rate"`` (BD-rate of the rank metric against the codec's
    #: own curve, when one was measured; else the mean).
    summary_rank: ClassVar[str] = "mean"
    #: Label of the degraded image in visual comparisons (e.g. "grey"), shown beside the
    #: restorations when it has the HR's size; ``None`` (default): not shown.
    visual_channel: ClassVar[str | None] = None
    #: What the training runner validates with: "psnr_y" or "psnr_rgb" (task crop); history
    #: and weights metadata record it as ``val_<metric>`` / ``final_val_<metric>``.
    validation_metric: ClassVar[str] = "psnr_y"
    #: z draws per image a stochastic method gets when the run does not say (``--draws``):
    #: the number the task's source protocol averages over; ``protocol()`` states it.
    default_draws: ClassVar[int] = STOCHASTIC_DRAWS

    def __init__(self, **setting: Any):
        unknown = set(setting) - set(self.setting_keys)
        if unknown:
            raise InvalidSetting(
                f"task {self.name!r} takes {', '.join(self.setting_keys) or 'no settings'}; "
                f"got {', '.join(sorted(unknown))}"
            )
        self.setting: dict[str, Any] = self.normalize_setting(**setting)

    # -- setting -----------------------------------------------------------------------------
    @classmethod
    def default_settings(cls) -> list[dict[str, Any]]:
        """The settings ``irnbench run`` evaluates when none are given on the command line."""
        return [{}]

    def normalize_setting(self, **setting: Any) -> dict[str, Any]:
        """Validate and fill defaults; returns the canonical setting dict."""
        return dict(setting)

    @property
    def setting_label(self) -> str:
        """Short human label of the setting, e.g. ``x4`` or ``x2 jpeg30,50``."""
        return ",".join(f"{k}={v}" for k, v in self.setting.items()) or "-"

    @property
    def key(self) -> str:
        """File-name-safe key of task + setting, e.g. ``rescale-x4`` (weights are keyed by it)."""
        return self.name

    def cli_args(self) -> str:
        """The CLI flags that recreate this setting, e.g. ``--scale 4``."""
        return ""

    def protocol(self) -> str:
        """One paragraph stating the metric protocol (shown above every table)."""
        raise NotImplementedError

    # -- data --------------------------------------------------------------------------------
    def min_size(self) -> int:
        """The smallest HR side the protocol can score; smaller images are skipped."""
        return 16

    def prepare(self, hr: torch.Tensor) -> torch.Tensor:
        """Crop an HR batch so that the task can use it (e.g. modcrop to the scale)."""
        return hr

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        """The guide the degraded image is compared with (bicubic LR, luma…)."""
        raise NotImplementedError

    # -- channel -----------------------------------------------------------------------------
    def conditions(self) -> list[dict[str, Any]]:
        """Channel conditions evaluated per image, e.g. ``[{"codec": "jpeg", "quality": 30}]``
        (no codec: JPEG); ``[{}]`` = plain uint8."""
        return [{}]

    def conditions_for(self, method: Any) -> list[dict[str, Any]]:
        """The conditions one method is evaluated under (a codec's own curve may sweep more)."""
        return self.conditions()

    def transmit(self, y: torch.Tensor, **condition: Any) -> Transmission:
        """Evaluation channel (uint8, optionally JPEG or WebP)."""
        return transmit(y, condition.get("quality"), condition.get("codec"))

    def channel(
        self,
        y: torch.Tensor,
        train: bool = False,
        quantizer: Quantizer = "ste",
        **condition: Any,
    ) -> torch.Tensor:
        """The channel as a tensor: exact at evaluation, differentiable with ``train=True``."""
        if train:
            return train_channel(y, quantizer, condition.get("quality"), condition.get("codec"))
        return self.transmit(y, **condition).y

    # -- metrics -----------------------------------------------------------------------------
    def score(
        self,
        hr: torch.Tensor,
        restored: torch.Tensor,
        transmission: Transmission,
        reference: torch.Tensor,
    ) -> dict[str, float]:
        """Metrics of one image (batch of 1) under the task's protocol."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.setting_label})"
