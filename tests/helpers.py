"""Test helpers shared by several test modules (import them as ``from helpers import …``)."""

from __future__ import annotations

import torch

from irnbench.methods import Method
from irnbench.training.presets import Preset

#: ``train_method`` keywords for a quick offline CPU run on the bundled training photos.
TINY = dict(datasets="mini-train", device="cpu", progress=False, install=False)


class TinyAE(Method):
    """A tiny trainable rescaler (one conv down, one conv up): fast enough for many steps."""

    name = "test-tiny-ae"
    tasks = ("rescale",)
    presets = {
        "smoke": Preset("smoke", iterations=8, batch_size=2, crop=16, lr=1e-2, warmup=2,
                        milestones=(6,), grad_clip=10.0, val_every=4, checkpoint_every=2),
    }

    def __init__(self, task, **options):
        super().__init__(task, **options)
        s = task.setting["scale"]
        self.down = torch.nn.Conv2d(3, 3, s, stride=s)
        self.up = torch.nn.ConvTranspose2d(3, 3, s, stride=s)

    def degrade(self, x):
        return self.down(x)

    def restore(self, y, **channel_info):
        return self.up(y)

    def training_loss(self, batch, task):
        y = self.degrade(batch["hr"])
        guide = ((y - batch["lr_ref"]) ** 2).mean()
        rec = (self.restore(task.channel(y, train=True)) - batch["hr"]).abs().mean()
        return {"total": rec + guide, "rec": rec, "guide": guide}
