"""Test helpers shared by several test modules (import them as ``from helpers import …``)."""

from __future__ import annotations

import io
import json
from pathlib import Path

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


# -- the SAIN / T-InvBlocks checkpoints rebuilt from the manifest -------------------------------
FIXTURES = Path(__file__).parent / "fixtures"
#: Released file → [(key, shape)], in the official order (``fixtures/family_formats.json``).
FAMILY_FORMATS: dict[str, list] = json.loads(
    (FIXTURES / "family_formats.json").read_text())["files"]
SAIN_FILES = ["SAINx2_JPEG.pth", "SAINx4_JPEG.pth", "SAINx2_WebP.pth"]
T_FILES = ["TIRNx2.pth", "TIRNx4.pth", "TSAINx2.pth", "TSAINx4.pth"]
FAMILY_FILES = SAIN_FILES + T_FILES

#: The ±1 Haar kernels [row][col] of the released files (the /4 is applied after the conv).
HAAR = torch.tensor([[[1.0, 1.0], [1.0, 1.0]], [[1.0, -1.0], [1.0, -1.0]],
                     [[1.0, 1.0], [-1.0, -1.0]], [[1.0, -1.0], [-1.0, 1.0]]])


def family_state(file: str) -> dict[str, torch.Tensor]:
    """The rebuilt checkpoint, saved and loaded as the authors' files are (a plain dict): key
    ``i`` drawn from ``Generator().manual_seed(i)``, ``0.02·randn`` except the Haar constants
    (kept) and SAIN's ``gmm.gmm_para`` (``[randn(K), 0.5·randn(K), 0.5·randn(K)]``)."""
    state = {}
    for i, (key, shape) in enumerate(FAMILY_FORMATS[file]):
        g = torch.Generator().manual_seed(i)
        if key.endswith("haar_weights"):
            state[key] = HAAR.unsqueeze(1).repeat(shape[0] // 4, 1, 1, 1)
        elif key == "gmm.gmm_para":
            k = shape[1]
            state[key] = torch.stack([torch.randn(k, generator=g),
                                      0.5 * torch.randn(k, generator=g),
                                      0.5 * torch.randn(k, generator=g)])
        else:
            state[key] = 0.02 * torch.randn(shape, generator=g)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def family_reference(file: str) -> dict[str, torch.Tensor]:
    """The official networks' outputs for ``family_state(file)`` (``fixtures/family_refs/``)."""
    return torch.load(FIXTURES / "family_refs" / f"{file[:-4]}.ref.pt", weights_only=True)
