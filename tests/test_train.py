"""The training runner: determinism, resume after a kill, NaN guard, checkpoints, presets."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import helpers
import pytest
import torch
from conftest import make_plugin
from helpers import TinyAE
from safetensors.torch import load_file

import irnbench
from irnbench.errors import InvalidSetting
from irnbench.ops.imresize import imresize
from irnbench.registry import get_method_class
from irnbench.training.augment import color_jitter
from irnbench.training.loop import NonFiniteLoss, lr_factor, train_method, validate, validation_side
from irnbench.training.presets import ColorAugment, Preset

#: ``helpers.TINY`` on ``tiny_train_set`` (four small crops of ``mini-train``; set for each test
#: below): what these tests check of the runner does not depend on the photos' size.
TINY = dict(helpers.TINY)


@pytest.fixture(autouse=True)
def _tiny_training_set(tiny_train_set):
    """Not through ``monkeypatch``: tests that call ``monkeypatch.undo()`` keep the set."""
    TINY["datasets"] = tiny_train_set
    yield
    TINY["datasets"] = helpers.TINY["datasets"]


def test_lr_schedule():
    p = Preset("x", iterations=10, batch_size=1, crop=8, lr=1.0, warmup=4, milestones=(6, 8))
    assert [lr_factor(s, p) for s in range(10)] == [0.25, 0.5, 0.75, 1, 1, 1, 0.5, 0.5, .25, .25]


def test_training_samples_are_pure_functions_of_index(mini_train_data):
    task = irnbench.create_task("rescale", scale=2)
    data = mini_train_data(task)
    a = data.batch(3, 4, seed=1, crop=32, augment=True)
    b = data.batch(3, 4, seed=1, crop=32, augment=True)
    assert torch.equal(a["hr"], b["hr"]) and torch.equal(a["lr_ref"], b["lr_ref"])
    # a rank's share of the global batch is the same samples (world-size independence)
    part = data.batch(3, 4, seed=1, crop=32, augment=True, indices=[1, 3])
    assert torch.equal(part["hr"], a["hr"][[1, 3]])
    # LR crops are aligned crops of the whole-image bicubic LR
    plain = data.batch(0, 1, seed=0, crop=32, augment=False)
    assert plain["lr_ref"].shape[-1] == 16
    assert len(data.val_images) >= 1 and not set(data.val_names) & set(data.train_names)


def test_whole_image_reference_is_cropped_not_recomputed(mini_train_data):
    task = irnbench.create_task("rescale", scale=2)
    data = mini_train_data(task)
    assert torch.allclose(data.refs[0], imresize(data.images[0].unsqueeze(0), 0.5)[0])


def test_validation_scores_whole_held_out_images_or_centre_crops(mini_train_data):
    task = irnbench.create_task("rescale", scale=2)
    data = mini_train_data(task)
    torch.manual_seed(0)
    model = TinyAE(task)
    seen, degrade = [], model.degrade
    model.degrade = lambda x: (seen.append(tuple(x.shape[-2:])), degrade(x))[1]
    whole = validate(model, task, data, torch.device("cpu"), 0)
    crop = validate(model, task, data, torch.device("cpu"), 64)
    n = len(data.val_images)
    assert seen == [tuple(im.shape[-2:]) for im in data.val_images] + [(64, 64)] * n
    assert min(seen[0]) > 64 and whole != crop
    # a preset's val_side: None keeps the rule of older runs, 0 = whole images
    assert validation_side(Preset("p", 1, 1, crop=32, lr=1.0)) == 64
    assert validation_side(Preset("p", 1, 1, crop=144, lr=1.0)) == 256
    assert validation_side(Preset("p", 1, 1, crop=32, lr=1.0, val_side=0)) == 0
    with pytest.raises(InvalidSetting, match="val_side"):
        validation_side(Preset("p", 1, 1, crop=32, lr=1.0, val_side=-1))
    fine_tunes = [p for p in get_method_class("irn").presets.values() if p.continues]
    assert fine_tunes and all(p.val_side == 0 for p in fine_tunes)
    for name in ("irn", "irn-color", "tar", "car", "irn-crm"):  # a chain step names a preset
        presets = get_method_class(name).presets
        assert all(p.continues in presets for p in presets.values() if p.continues)


def test_color_jitter_commutes_with_the_bicubic_reference():
    """One linear colour map per pixel: jittering the reference = recomputing it (no clipping)."""
    task = irnbench.create_task("rescale", scale=2)
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(3, 32, 32, generator=g) * 0.8 + 0.1
    ref = task.reference(hr[None])[0]
    for perm, gain in (((2, 0, 1), 0.5), ((1, 2, 0), 1.7), ((0, 1, 2), 50.0)):
        hr_j, ref_j = color_jitter(hr, ref, perm, gain)
        assert 0 <= float(hr_j.min()) and float(hr_j.max()) <= 1  # the gain cap: nothing clipped
        assert torch.allclose(task.reference(hr_j[None])[0], ref_j, atol=1e-5)
    # gain 50 is capped exactly where the first channel reaches 0 or 1
    hr_j, _ = color_jitter(hr, ref, (0, 1, 2), 50.0)
    assert min(float(hr_j.min()), 1 - float(hr_j.max())) < 1e-5
    # the luma is kept; the channels are reordered
    luma = torch.tensor((0.299, 0.587, 0.114)).view(3, 1, 1)
    hr_j, _ = color_jitter(hr, ref, (2, 0, 1), 1.5)
    assert torch.allclose((hr_j * luma).sum(0), (hr[[2, 0, 1]] * luma).sum(0), atol=1e-6)
    assert torch.allclose(color_jitter(hr, ref, (2, 0, 1), 1.0)[0], hr[[2, 0, 1]])


def test_color_augment_is_pure_and_leaves_the_crops_alone(mini_train_data):
    task = irnbench.create_task("rescale", scale=2)
    data = mini_train_data(task)
    a = data.batch(2, 6, seed=0, crop=32, augment=True, color=ColorAugment())
    b = data.batch(2, 6, seed=0, crop=32, augment=True, color=ColorAugment())
    plain = data.batch(2, 6, seed=0, crop=32, augment=True)
    assert torch.equal(a["hr"], b["hr"]) and torch.equal(a["lr_ref"], b["lr_ref"])
    assert not torch.equal(a["hr"], plain["hr"])
    # same crops and flips: the jitter keeps the luma of some channel order of the plain crop
    luma = torch.tensor((0.299, 0.587, 0.114)).view(1, 3, 1, 1)
    perms = [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]
    for i in range(6):
        y = (a["hr"][i : i + 1] * luma).sum(1)
        assert any(torch.allclose(y, (plain["hr"][i : i + 1, list(p)] * luma).sum(1), atol=1e-5)
                   for p in perms)


def test_color_augment_recomputes_the_decolorize_guide(mini_train_data):
    """Decolorize: the 1-channel guide is the luma of the jittered crop, not a permuted copy."""
    grey = irnbench.create_task("decolorize")
    data = mini_train_data(grey)
    luma = torch.tensor((0.299, 0.587, 0.114)).view(3, 1, 1)
    changed = 0
    for i in range(8):
        hr, ref = data.sample(i, 0, 32, True, ColorAugment())
        plain_hr, plain_ref = data.sample(i, 0, 32, True)
        assert ref.shape == (1, 32, 32) and 0 <= float(hr.min()) and float(hr.max()) <= 1
        assert torch.allclose(ref, grey.reference(hr[None])[0], atol=1e-5)
        changed += not torch.allclose(ref, plain_ref, atol=1e-4)
        assert torch.allclose((hr * luma).sum(0, keepdim=True), ref, atol=1e-5)
    assert changed  # channel orders change the luma of some crops
    # a 1-channel reference that is not the HR's luma is refused rather than silently replaced
    hr = torch.rand(3, 8, 8)
    with pytest.raises(InvalidSetting, match="luma"):
        color_jitter(hr, torch.zeros(1, 8, 8), (0, 1, 2), 1.5)


@pytest.mark.parametrize("scale,cast", [(2, False), (4, False), (2, True)])
def test_color_clip_reference_is_the_whole_image_reference_of_the_clipped_image(
        scale, cast, tiny_train_set):
    """A clipped crop's bicubic LR equals the whole clipped image's, cropped (not a crop's own).

    The sample is replayed by hand (crop, channel order, gain from the same random stream), so a
    reference computed from the crop alone (with its own borders) would fail at the LR edges.
    Small photos (``tiny_train_set``): each clipped sample recomputes a whole image's reference.
    """
    import numpy as np

    from irnbench.data.loading import resolve_dataset
    from irnbench.training.augment import (
        COLOR_CAST,
        SATURATION_GAIN_CLIPPED,
        no_clip_cap,
        saturate_clipped,
    )
    from irnbench.training.data import TrainingData

    task = irnbench.create_task("rescale", scale=scale)
    data = TrainingData(resolve_dataset(tiny_train_set), task)
    f, c, clipped = data.factor, 32, 0
    for index in range(40):
        hr, ref = data.sample(index, 0, c, False, ColorAugment(clip=True, cast=cast))
        assert 0 <= float(hr.min()) and float(hr.max()) <= 1 + 1e-6
        rng = np.random.default_rng([0, index])
        image = data.images[int(rng.integers(len(data.images)))]
        h, w = image.shape[-2:]
        top = int(rng.integers(0, (h - c) // f + 1)) * f
        left = int(rng.integers(0, (w - c) // f + 1)) * f
        perm, gain = rng.permutation(3), float(rng.uniform(*SATURATION_GAIN_CLIPPED))
        offsets = tuple(rng.uniform(-COLOR_CAST, COLOR_CAST, 3)) if cast else ()
        if not cast and gain <= max(1.0, no_clip_cap(image[:, top : top + c, left : left + c])):
            continue  # nothing in the crop clips: color_jitter's exact linear map is used
        clipped += 1
        whole = saturate_clipped(image, perm, gain, offsets)
        assert torch.equal(hr, whole[:, top : top + c, left : left + c])
        want = task.reference(whole[None])[0][:, top // f :, left // f :][:, : c // f, : c // f]
        assert torch.allclose(ref, want, atol=1e-5)
        own = task.reference(hr[None])[0]
        assert not torch.allclose(ref, own, atol=1e-4)  # a crop-only reference differs
    assert clipped >= 5


def test_color_clip_makes_the_saturated_colours_the_cap_never_does(mini_train_data):
    task = irnbench.create_task("rescale", scale=2)
    data = mini_train_data(task)

    def saturated(clip: bool) -> float:
        hr = data.batch(0, 48, seed=1, crop=32, augment=True,
                        color=ColorAugment(clip=clip))["hr"]
        return float(((hr.amax(1) - hr.amin(1)) > 0.9).float().mean())

    assert saturated(True) > max(0.05, 2 * saturated(False))


def test_color_cast_makes_bright_saturated_yellows(mini_train_data):
    """The kodim23 failure colour: R and G high, B near 0; gains alone make (almost) none."""
    task = irnbench.create_task("rescale", scale=2)
    data = mini_train_data(task)

    def yellow(cast: bool) -> float:
        hr = data.batch(0, 64, seed=1, crop=32, augment=True,
                        color=ColorAugment(clip=True, cast=cast))["hr"]
        # any channel order: two channels high, the third near 0
        hi = (hr > 0.6).sum(1) == 2
        return float((hi & (hr.amin(1) < 0.2) & (hr.amax(1) > 0.75)).float().mean())

    assert yellow(True) > max(0.002, 10 * yellow(False))  # measured: 0.006 against 0.0001


def test_color_permute_off_keeps_the_hues_and_the_other_draws(mini_train_data):
    """``ColorAugment(permute=False)``: each sample is the same crop, gain and clipping as with
    permutations on, in the photo's own channel order (a red stays red), replayed by hand."""
    import numpy as np

    from irnbench.training.augment import SATURATION_GAIN_CLIPPED, no_clip_cap, saturate_clipped

    task = irnbench.create_task("decolorize")
    data = mini_train_data(task)
    clipped = reordered = 0
    for index in range(24):
        hr, ref = data.sample(index, 0, 32, False, ColorAugment(permute=False, clip=True))
        hr_p, _ = data.sample(index, 0, 32, False, ColorAugment(clip=True))
        rng = np.random.default_rng([0, index])
        i = int(rng.integers(len(data.images)))
        image, guide = data.images[i], data.refs[i]
        h, w = image.shape[-2:]
        top, left = int(rng.integers(0, h - 32 + 1)), int(rng.integers(0, w - 32 + 1))
        perm, gain = rng.permutation(3), float(rng.uniform(*SATURATION_GAIN_CLIPPED))
        crop = image[:, top : top + 32, left : left + 32]
        if gain > 1.0 and gain > no_clip_cap(crop):
            clipped += 1
            want = saturate_clipped(crop, (0, 1, 2), gain)
        else:
            want = color_jitter(crop, guide[:, top : top + 32, left : left + 32], (0, 1, 2),
                                gain)[0]
        assert torch.allclose(hr, want, atol=1e-6)
        assert torch.allclose(ref, task.reference(hr[None])[0], atol=1e-5)
        if list(perm) == [0, 1, 2]:
            assert torch.equal(hr, hr_p)
        else:
            reordered += not torch.equal(hr, hr_p)
    assert clipped >= 3 and reordered >= 3


def test_color_augment_is_one_frozen_value():
    """One ``ColorAugment`` replaces the four linked flags: a cast needs clipping, the value
    cannot change after the preset is built, and the old sidecar flags map onto it."""
    import dataclasses

    with pytest.raises(ValueError, match="cast only acts with clip"):
        ColorAugment(cast=True)
    c = ColorAugment(clip=True, cast=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.clip = False  # type: ignore[misc]
    assert c.describe() == "augment+clip+cast"
    assert ColorAugment(permute=False).describe() == "augment+no permute"
    p = Preset(name="x", iterations=1, batch_size=1, crop=8, lr=1e-3, color=c)
    assert not any(f.name.startswith("color_") for f in dataclasses.fields(p))
    assert ColorAugment.from_flags({"color_augment": False, "color_clip": False}) is None
    assert ColorAugment.from_flags({"color_augment": True, "color_clip": True,
                                    "color_cast": True}) == c
    assert ColorAugment.from_flags({"color_augment": True, "color_permute": False}) == \
        ColorAugment(permute=False)


def test_resume_equals_uninterrupted(tiny, tmp_path):
    full = train_method("test-tiny-ae", "rescale", scale=2, preset="smoke", out=tmp_path / "a",
                        **TINY)
    part = train_method("test-tiny-ae", "rescale", scale=2, preset="smoke", out=tmp_path / "b",
                        iterations=5, **TINY)
    assert part.iterations == 5
    resumed = train_method("test-tiny-ae", "rescale", scale=2, preset="smoke",
                           out=tmp_path / "b", resume=True, **TINY)
    wa, wb = load_file(str(full.weights)), load_file(str(resumed.weights))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k  # bit-for-bit on CPU
    side = json.loads(resumed.weights.with_suffix(".json").read_text())
    assert side["iteration"] == 8 and len(side["commands"]) == 2
    assert "not the paper's model" in side["label"]


def test_resume_rejects_other_settings(tiny, tmp_path, monkeypatch):
    train_method("test-tiny-ae", "rescale", scale=2, preset="smoke", out=tmp_path / "a",
                 iterations=2, **TINY)
    with pytest.raises(irnbench.errors.IrnbenchError, match="task_key"):
        train_method("test-tiny-ae", "rescale", scale=4, preset="smoke", out=tmp_path / "a",
                     resume=True, **TINY)
    side = json.loads((tmp_path / "a" / "checkpoint.json").read_text())
    assert side["preset_config"]["lr"] == 1e-2 and side["preset_config"]["crop"] == 16
    # a preset whose numbers changed since the checkpoint (same name) is refused
    changed = dict(TinyAE.presets)
    changed["smoke"] = Preset("smoke", iterations=8, batch_size=2, crop=32, lr=1e-3)
    monkeypatch.setattr(TinyAE, "presets", changed)
    with pytest.raises(irnbench.errors.IrnbenchError, match="changed since the checkpoint.*crop"):
        train_method("test-tiny-ae", "rescale", scale=2, preset="smoke", out=tmp_path / "a",
                     resume=True, **TINY)



def test_resume_reads_the_colour_flags_of_older_checkpoints(tiny, tmp_path, monkeypatch):
    """Checkpoints from before ``ColorAugment`` record four colour flags and ``init_from``: they
    resume under the same colour augmentation and are refused under another (the flags are read
    as ``color``, not skipped as fields of one side only)."""
    from dataclasses import replace

    from safetensors.torch import save

    colour = replace(TinyAE.presets["smoke"], color=ColorAugment())
    monkeypatch.setattr(TinyAE, "presets", {"smoke": colour})
    train_method("test-tiny-ae", "rescale", scale=2, preset="smoke", out=tmp_path / "a",
                 iterations=2, **TINY)
    ckpt = tmp_path / "a" / "checkpoint.safetensors"
    assert ckpt.exists()
    meta = json.loads(json.loads(ckpt.read_bytes()[8 : 8 + int.from_bytes(
        ckpt.read_bytes()[:8], "little")])["__metadata__"]["irnbench"])
    cfg = {k: v for k, v in meta["preset_config"].items() if k not in ("color", "continues")}
    meta["preset_config"] = {**cfg, "color_augment": True, "color_clip": False,
                             "color_cast": False, "color_permute": True, "init_from": ""}
    ckpt.write_bytes(save(load_file(str(ckpt)), metadata={"irnbench": json.dumps(meta)}))
    clipped = replace(colour, color=ColorAugment(clip=True))
    monkeypatch.setattr(TinyAE, "presets", {"smoke": clipped})
    with pytest.raises(irnbench.errors.IrnbenchError, match="changed since the checkpoint.*color"):
        train_method("test-tiny-ae", "rescale", scale=2, preset="smoke", out=tmp_path / "a",
                     resume=True, iterations=3, **TINY)
    monkeypatch.setattr(TinyAE, "presets", {"smoke": colour})
    res = train_method("test-tiny-ae", "rescale", scale=2, preset="smoke", out=tmp_path / "a",
                       resume=True, iterations=3, **TINY)
    assert res.iterations == 3

class Poisoned(TinyAE):
    """Its loss turns NaN from the fourth call on."""

    name = "test-poisoned"

    def training_loss(self, batch, task):
        losses = super().training_loss(batch, task)
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls > 3:
            losses["total"] = losses["total"] * float("nan")
        return losses


def _train_until_non_finite(register_plugin, cls, out, match: str) -> None:
    """Register ``cls`` and train it with ``max_bad_steps=3``: the NaN guard must stop it."""
    register_plugin(make_plugin(irnbench_register_methods=lambda register: register(cls)),
                    cls.name)
    with pytest.raises(NonFiniteLoss, match=match):
        train_method(cls.name, "rescale", scale=2, preset="smoke", out=out, max_bad_steps=3,
                     **TINY)


def test_nan_steps_are_skipped_then_stop(register_plugin, tmp_path):
    _train_until_non_finite(register_plugin, Poisoned, tmp_path / "n", "non-finite")
    # the last good state (3 good steps) was checkpointed and loads
    side = json.loads((tmp_path / "n" / "checkpoint.json").read_text())
    assert side["iteration"] == 3
    assert load_file(str(tmp_path / "n" / "checkpoint.safetensors"))


def _disk_full_after(monkeypatch, prefix: str, ok_writes: int) -> list[str]:
    """Make ``os.replace`` onto files named ``prefix*`` fail with ENOSPC after ``ok_writes``."""
    import errno

    real, seen = os.replace, []

    def replace(src, dst, *args, **kwargs):
        if os.path.basename(dst).startswith(prefix):
            seen.append(os.path.basename(dst))
            if len(seen) > ok_writes:
                raise OSError(errno.ENOSPC, "No space left on device", str(src))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    return seen


def test_failed_checkpoint_write_keeps_the_previous_one(tiny, tmp_path, monkeypatch):
    """Disk full after the first checkpoint (tensors + sidecar): training goes on with a warning
    naming the intact checkpoint, which still loads; no temp file is left behind."""
    from irnbench.training.state import CheckpointWriteWarning, read_checkpoint_meta

    seen = _disk_full_after(monkeypatch, "checkpoint.", ok_writes=2)
    with pytest.warns(CheckpointWriteWarning) as record:
        res = train_method("test-tiny-ae", "rescale", scale=2, preset="smoke",
                           out=tmp_path / "f", **TINY)
    msgs = [str(w.message) for w in record]
    assert len(msgs) >= 3 and all("(iteration 2)" in m for m in msgs)  # 4, 6, 8
    assert re.search(r"iteration 4 could not be written .*No space left.*previous checkpoint "
                     r"\(iteration 2\) in .*checkpoint.safetensors is intact", msgs[0]), msgs[0]
    assert len(seen) > 2 and res.weights.exists()  # later writes were tried; the run finished
    folder = tmp_path / "f"
    assert not list(folder.glob("*.tmp"))
    assert read_checkpoint_meta(folder / "checkpoint.safetensors")["iteration"] == 2
    assert json.loads((folder / "checkpoint.json").read_text())["iteration"] == 2
    monkeypatch.undo()
    # the old checkpoint resumes: to the same weights as an uninterrupted run
    again = train_method("test-tiny-ae", "rescale", scale=2, preset="smoke", out=folder,
                         resume=True, **TINY)
    full = train_method("test-tiny-ae", "rescale", scale=2, preset="smoke", out=tmp_path / "u",
                        **TINY)
    wa, wb = load_file(str(full.weights)), load_file(str(again.weights))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_failed_final_weights_write_is_an_error(tiny, tmp_path, monkeypatch):
    _disk_full_after(monkeypatch, "weights.", ok_writes=0)
    with pytest.raises(irnbench.errors.IrnbenchError,
                       match="final weights could not be written.*iteration 8.*intact"):
        train_method("test-tiny-ae", "rescale", scale=2, preset="smoke", out=tmp_path / "w",
                     **TINY)
    assert not (tmp_path / "w" / "weights.safetensors").exists()
    assert not list((tmp_path / "w").glob("*.tmp"))


def test_checkpoint_files_and_install(tiny, tmp_path):
    res = train_method("test-tiny-ae", "rescale", scale=2, preset="smoke", out=tmp_path / "c",
                       **{**TINY, "install": True})
    side = json.loads((tmp_path / "c" / "checkpoint.json").read_text())
    for key in ("method", "task", "setting", "preset", "iteration", "data", "irnbench_version",
                "sha256", "history"):
        assert key in side
    assert side["data"]["fingerprint"] and side["iteration"] == 8
    assert not list((tmp_path / "c").glob("*.tmp"))
    # a smoke preset never installs, even when asked: nothing a later run resolves changes
    assert res.installed is None and not irnbench.weights_available("test-tiny-ae", scale=2)
    m = irnbench.create_method("test-tiny-ae", scale=2, weights=res.weights)
    assert "smoke preset" in m.weights_label and m.weights_tag == ""


def test_init_fine_tunes_from_weights_and_records_them(tiny, tmp_path, monkeypatch):
    base = train_method("test-tiny-ae", "rescale", scale=2, preset="smoke", out=tmp_path / "a",
                        **TINY)
    # zero steps: the fine-tune's weights are exactly the ones it started from
    ft = train_method("test-tiny-ae", "rescale", scale=2, preset="smoke", out=tmp_path / "b",
                      init=base.weights, iterations=0, **TINY)
    wa, wb = load_file(str(base.weights)), load_file(str(ft.weights))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    side = json.loads(ft.weights.with_suffix(".json").read_text())
    assert side["init"]["sha256"] == json.loads(
        base.weights.with_suffix(".json").read_text())["sha256"]
    assert side["steps_in_all"] == 8 and "smoke preset + smoke preset, 8 steps in all" in side[
        "label"]
    # four steps on top: the steps add up, and resume must name the same starting weights
    train_method("test-tiny-ae", "rescale", scale=2, preset="smoke", out=tmp_path / "c",
                 init=base.weights, iterations=4, **TINY)
    with pytest.raises(irnbench.errors.IrnbenchError, match="same --init"):
        train_method("test-tiny-ae", "rescale", scale=2, preset="smoke", out=tmp_path / "c",
                     resume=True, iterations=6, **TINY)
    res = train_method("test-tiny-ae", "rescale", scale=2, preset="smoke", out=tmp_path / "c",
                       init=base.weights, resume=True, iterations=6, **TINY)
    assert json.loads(res.weights.with_suffix(".json").read_text())["steps_in_all"] == 14
    # a fine-tune of a fine-tune: the label names the whole chain and counts all its steps
    again = train_method("test-tiny-ae", "rescale", scale=2, preset="smoke", out=tmp_path / "d",
                         init=res.weights, iterations=1, **TINY)
    assert json.loads(again.weights.with_suffix(".json").read_text())["label"] == (
        "irnbench smoke preset + smoke preset + smoke preset, 15 steps in all "
        "(not the paper's model)")
    # weights of another setting are refused
    with pytest.raises(irnbench.errors.IrnbenchError, match="does not fit|rescale-x2"):
        train_method("test-tiny-ae", "rescale", scale=4, preset="smoke", out=tmp_path / "x4",
                     init=base.weights, iterations=1, **TINY)
    # without a sidecar, the tensor shapes decide: a clear error, not a torch traceback
    bare = tmp_path / "bare.safetensors"
    bare.write_bytes(base.weights.read_bytes())
    with pytest.raises(irnbench.errors.WeightsNotFound, match="does not fit.*size mismatch"):
        train_method("test-tiny-ae", "rescale", scale=4, preset="smoke", out=tmp_path / "x4",
                     init=bare, iterations=1, **TINY)
    # a chain-step preset names its predecessor and needs --init: no implicit starting weights
    presets = {**TinyAE.presets, "ft": Preset("ft", iterations=2, batch_size=2, crop=16,
                                              lr=1e-3, continues="smoke")}
    monkeypatch.setattr(TinyAE, "presets", presets)
    with pytest.raises(InvalidSetting, match="fine-tunes 'smoke' weights.*--init"):
        train_method("test-tiny-ae", "rescale", scale=2, preset="ft", out=tmp_path / "e", **TINY)
    assert not (tmp_path / "e").exists()


def test_init_sha256_refuses_other_weights(tiny, tmp_path):
    """``--init-sha256`` names the starting weights: another file is refused before anything is
    trained or written; the recorded command of a CLI run always carries the digest."""
    base = train_method("test-tiny-ae", "rescale", scale=2, preset="smoke", out=tmp_path / "a",
                        iterations=2, **TINY)
    digest = json.loads(base.weights.with_suffix(".json").read_text())["sha256"]
    other = "0" * 64 if digest[0] != "0" else "1" * 64
    for wrong in (other, other[:12]):
        with pytest.raises(InvalidSetting, match="not the expected"):
            train_method("test-tiny-ae", "rescale", scale=2, preset="smoke", iterations=1,
                         out=tmp_path / "b", init=base.weights, init_sha256=wrong, **TINY)
    assert not (tmp_path / "b").exists()
    with pytest.raises(InvalidSetting, match="12 to 64 hex"):
        train_method("test-tiny-ae", "rescale", scale=2, preset="smoke", iterations=1,
                     out=tmp_path / "b", init=base.weights, init_sha256=digest[:6], **TINY)
    with pytest.raises(InvalidSetting, match="--init-sha256 checks"):
        train_method("test-tiny-ae", "rescale", scale=2, preset="smoke", iterations=1,
                     out=tmp_path / "b", init_sha256=digest, **TINY)
    cmd = f"irnbench train --plugin test-tiny-ae --init {base.weights}"
    ok = train_method("test-tiny-ae", "rescale", scale=2, preset="smoke", iterations=1,
                      out=tmp_path / "c", init=base.weights, init_sha256=digest[:12].upper(),
                      command=cmd, **TINY)
    side = json.loads(ok.weights.with_suffix(".json").read_text())
    assert side["init"]["sha256"] == digest
    assert side["commands"] == [f"{cmd} --init-sha256 {digest}"]


def test_chain_steps_need_an_explicit_init(tmp_path):
    """irn's ``cpu-long-plain`` continued the ×4 ``cpu`` weights. It once started from whatever
    ×4 file shipped, which is now its own output: without ``--init`` it is refused."""
    from irnbench.registry import get_method_class

    cls = get_method_class("irn")
    with pytest.raises(InvalidSetting, match="fine-tunes 'cpu' weights.*--init"):
        train_method("irn", "rescale", scale=4, preset="cpu-long-plain", out=tmp_path / "ft",
                     iterations=0, **TINY)
    shipped = cls.package_dir() / cls.pretrained_cfgs["rescale-x4"].file
    sha = cls.pretrained_cfgs["rescale-x4"].sha256
    res = train_method("irn", "rescale", scale=4, preset="cpu-long-plain", out=tmp_path / "ft",
                       iterations=0, init=shipped, init_sha256=sha[:16], **TINY)
    got, want = load_file(str(res.weights)), load_file(str(shipped))
    assert all(torch.equal(got[k], want[k]) for k in want)
    side = json.loads(res.weights.with_suffix(".json").read_text())
    assert side["init"]["source"] == "explicit" and side["init"]["sha256"] == sha
    assert side["preset_config"]["continues"] == "cpu" and side["preset_config"]["color"] is None


def test_unknown_preset_and_untrainable(tiny):
    with pytest.raises(InvalidSetting, match="presets: smoke"):
        train_method("test-tiny-ae", "rescale", scale=2, preset="nope", **TINY)
    with pytest.raises(InvalidSetting, match="nothing to train"):
        train_method("bicubic", "rescale", scale=2, preset="cpu", **TINY)


def test_irn_smoke_preset_trains_and_resumes(tmp_path):
    """The real IRN on its smoke preset: the loss is finite and resume is exact."""
    kw = dict(scale=2, preset="smoke", **TINY)
    full = train_method("irn", "rescale", out=tmp_path / "a", **kw)
    train_method("irn", "rescale", out=tmp_path / "b", iterations=3, **kw)
    resumed = train_method("irn", "rescale", out=tmp_path / "b", resume=True, **kw)
    wa, wb = load_file(str(full.weights)), load_file(str(resumed.weights))
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) <= 1e-6
    assert all(torch.isfinite(torch.tensor(h["total"])) for h in full.history)


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    """A CLI training run killed with SIGKILL resumes to the uninterrupted run's weights.

    Bitwise equality is promised for one intra-op thread (as every shipped run trained). With
    two, ``torch.exp`` in the couplings returned other last bits for the same input in the
    resumed process in about half the tries (apparently MKL's vector math), and this test failed
    CI (see the ``irnbench.training.loop`` docstring and the README's ``--resume`` paragraph).
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "irnbench", "train", "--plugin", "irn", "--scale", "2",
            "--preset", "smoke", "--device", "cpu", "--quiet", "--no-install",
            "--iterations", "12"]
    subprocess.run(base + ["--out", str(tmp_path / "full")], check=True, env=env)
    # the killed run samples in 2 DataLoader workers, the resumed one in 1: no difference
    proc = subprocess.Popen(base + ["--out", str(tmp_path / "killed"), "--workers", "2"],
                            env=env)
    ckpt = tmp_path / "killed" / "checkpoint.json"
    deadline = time.time() + 300
    while not ckpt.exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    subprocess.run(base + ["--out", str(tmp_path / "killed"), "--resume", "--workers", "1"],
                   check=True, env=env)
    wa = load_file(str(tmp_path / "full" / "weights.safetensors"))
    wb = load_file(str(tmp_path / "killed" / "weights.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_run_stops_with_train_command_or_trains_when_asked(tiny, tmp_path):
    from click.testing import CliRunner
    from PIL import Image

    from irnbench.cli import cli

    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.new("RGB", (64, 48), (90, 30, 200)).save(folder / "a.png")
    args = ["run", "--plugins", "test-tiny-ae", "--scale", "2", "--datasets", str(folder),
            "--quiet", "--out", str(tmp_path / "run")]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "irnbench train --plugin test-tiny-ae --task rescale --scale 2 --preset cpu" in (
        res.output)
    res = CliRunner().invoke(cli, args + ["--train-missing", "--preset", "smoke"])
    assert res.exit_code == 0, res.output
    assert "test-tiny-ae [measured]" in res.output
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["trained"] == ["test-tiny-ae x2 (smoke)"]


class NanAux(TinyAE):
    """A logged-only loss term that is NaN while the optimised ``total`` stays finite."""

    name = "test-nan-aux"

    def training_loss(self, batch, task):
        losses = super().training_loss(batch, task)
        return {"aux": torch.tensor(float("nan")), **losses}


def test_non_finite_guard_looks_at_total_not_the_first_key(register_plugin, tmp_path):
    """Only ``total`` is optimised: a NaN in another (logged) term must not skip the step."""
    register_plugin(make_plugin(irnbench_register_methods=lambda register: register(NanAux)),
                    "test-nan-aux")
    res = train_method("test-nan-aux", "rescale", scale=2, preset="smoke", out=tmp_path / "n",
                       **TINY)
    assert res.iterations == 8 and res.history and res.history[-1]["step"] == 8


class NanTotal(TinyAE):
    """``total`` is NaN by a constant term (so its gradients stay finite) while the first loss
    key, ``rec``, is finite: only a guard that reads ``total`` sees it."""

    name = "test-nan-total"

    def training_loss(self, batch, task):
        losses = super().training_loss(batch, task)
        return {"rec": losses["rec"], "guide": losses["guide"],
                "total": losses["total"] + torch.tensor(float("nan"))}


def test_non_finite_total_is_caught_when_the_first_key_is_finite(register_plugin, tmp_path):
    _train_until_non_finite(register_plugin, NanTotal, tmp_path / "n",
                            "3 non-finite steps in a row at step 2")


@pytest.mark.parametrize("plugin", ["test-tiny-ae", pytest.param("irn", marks=pytest.mark.slow)])
def test_smoke_chain_rebuilds_from_its_recorded_commands(plugin, tiny, tmp_path, monkeypatch):
    """A two-step ``smoke`` chain (train, then an ``--init`` fine-tune) rerun from the commands
    its sidecar records, in a clean cache, gives the same sha256 (one intra-op thread); a
    replayed step whose predecessor differs is refused and leaves the earlier output alone.
    The tiny model keeps it fast; the real IRN (exp couplings) runs with the slow tests."""
    import shlex

    from click.testing import CliRunner

    from irnbench.cli import cli
    from irnbench.weights import chain_commands, sha256_file

    def irnbench_cli(cmd: str) -> str:
        args = shlex.split(cmd)[1:]
        monkeypatch.setattr(sys, "argv", ["irnbench", *args])  # what the run records
        res = CliRunner().invoke(cli, args)
        return f"{res.exit_code}: {res.output}"

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        monkeypatch.setenv("IRNBENCH_HOME", str(tmp_path / "home1"))
        a, b = tmp_path / "chain" / "a", tmp_path / "chain" / "b"
        base = (f"irnbench train --plugin {plugin} --scale 2 --preset smoke --iterations 3 "
                f"--datasets {TINY['datasets']} --device cpu --quiet")
        assert irnbench_cli(f"{base} --out {a}").startswith("0:")
        assert irnbench_cli(f"{base} --out {b} --init {a}/weights.safetensors").startswith("0:")
        side = json.loads((b / "weights.json").read_text())
        cmds = chain_commands(side)
        assert cmds == [f"{base} --out {a}", f"{base} --out {b} --init {a}/weights.safetensors "
                        f"--init-sha256 {side['init']['sha256']}"]
        (tmp_path / "chain").rename(tmp_path / "first")
        monkeypatch.setenv("IRNBENCH_HOME", str(tmp_path / "home2"))  # a clean cache
        for cmd in cmds:
            assert irnbench_cli(cmd).startswith("0:")
        assert sha256_file(b / "weights.safetensors") == side["sha256"]
        assert json.loads((b / "weights.json").read_text())["sha256"] == side["sha256"]
        # the same replay from other starting weights: refused, the step's output untouched
        # (without --overwrite the existing run folder alone refuses it)
        wrong = cmds[1].replace(side["init"]["sha256"], "0" * 64)
        before = (b / "weights.safetensors").read_bytes()
        assert "--overwrite" in irnbench_cli(wrong)
        out = irnbench_cli(wrong + " --overwrite")
        assert not out.startswith("0:") and "not the expected" in out
        assert (b / "weights.safetensors").read_bytes() == before
    finally:
        torch.set_num_threads(threads)


class WithInputs(TinyAE):
    """Declares a weights file it depends on besides ``--init`` (as irn-crm's frozen IRN)."""

    name = "test-with-inputs"

    def training_inputs(self):
        return {"frozen_thing": {"sha256": "ab" * 32}}


def test_training_inputs_are_recorded_in_checkpoint_and_sidecar(register_plugin, tmp_path):
    register_plugin(make_plugin(irnbench_register_methods=lambda register: register(WithInputs)),
                    "test-with-inputs")
    res = train_method("test-with-inputs", "rescale", scale=2, preset="smoke", out=tmp_path / "w",
                       **TINY)
    for name in ("weights.json", "checkpoint.json"):
        side = json.loads((tmp_path / "w" / name).read_text())
        assert side["inputs"] == {"frozen_thing": {"sha256": "ab" * 32}}, name
    assert res.iterations == 8
