"""Training samples: every crop, flip, colour draw and noise a pure function of (seed, index).

So a run does not depend on data-loader state or the world size, and a resumed run sees
exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.utils.data

from irnbench.data.loading import EvalDataset, dataset_fingerprint
from irnbench.errors import InvalidSetting, IrnbenchError
from irnbench.tasks.base import Task
from irnbench.training.allocator import release_free_memory
from irnbench.training.augment import (
    COLOR_CAST,
    SATURATION_GAIN,
    SATURATION_GAIN_CLIPPED,
    color_jitter,
    no_clip_cap,
    saturate_clipped,
)
from irnbench.training.presets import ColorAugment

__all__ = ["BatchSource", "SampleNoise", "TrainingData", "to_float", "to_uint8_exact"]


class SampleNoise:
    """``batch["randn"]``: per-sample Gaussian noise, a pure function of (seed, sample index).

    ``noise(*shape)`` returns ``len(indices) × shape``; row i comes from its own generator seeded
    by (seed, indices[i], n) where n counts the calls on this batch, so every call is fresh noise
    and a sample's noise does not depend on which rank, or which position, draws it.
    """

    def __init__(self, seed: int, indices: Sequence[int], device: torch.device):
        self.seed, self.indices, self.device = seed, list(indices), device
        self.calls = 0

    def __call__(self, *shape: int | Sequence[int], dtype: torch.dtype | None = None
                 ) -> torch.Tensor:
        if len(shape) == 1 and not isinstance(shape[0], int):
            shape = tuple(shape[0])
        call, self.calls = self.calls, self.calls + 1
        rows = []
        for index in self.indices:
            state = np.random.SeedSequence([self.seed, index, call, 0x5EED]).generate_state(2)
            g = torch.Generator(device=self.device).manual_seed(
                int(state[0]) << 32 | int(state[1]))
            rows.append(torch.randn(shape, generator=g, device=self.device, dtype=dtype))
        return torch.stack(rows)



def to_float(img: torch.Tensor) -> torch.Tensor:
    """A stored image (or crop) as float32 in [0, 1]: uint8 by the decoder's own rule, k/255."""
    if img.dtype == torch.uint8:
        return img.to(torch.float32) / 255.0  # the very op of ``irnbench.data.decode``
    return img


def to_uint8_exact(img: torch.Tensor) -> torch.Tensor:
    """``img`` as uint8 when that is lossless (``to_float`` gives it back bit for bit), else
    unchanged: decoded images hold k/255 values, a 4th of the bytes as uint8."""
    u8 = torch.empty(img.shape, dtype=torch.uint8)
    rows = 128  # a block of rows at a time: no whole-image float temporaries
    for c in range(img.shape[0]):
        for r in range(0, img.shape[1], rows):
            part = img[c, r : r + rows]
            u8[c, r : r + rows] = (part * 255.0).round_().clamp_(0, 255)
            if not torch.equal(to_float(u8[c, r : r + rows]), part):
                return img
    return u8


class _FloatView(Sequence):
    """Read-only float32 view of stored images: item i is converted when it is asked for."""

    def __init__(self, stored: list[torch.Tensor]):
        self._stored = stored

    def __len__(self) -> int:
        return len(self._stored)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [to_float(t) for t in self._stored[i]]
        return to_float(self._stored[i])

    def __iter__(self) -> Iterator[torch.Tensor]:
        return (to_float(t) for t in self._stored)


class TrainingData:
    """HR images of a training set, their whole-image references, and a held-out slice.

    The reference (e.g. the bicubic LR) is computed once from the whole image, as the official
    IRN code does, and crops of HR and reference are taken at aligned positions. HR images are
    held as uint8 (``stored``; decoded images are k/255, so this is lossless and a 4th of the
    float32 bytes) and each crop is converted to float when it is sampled; ``images`` and
    ``val_images`` convert whole images on access. The references stay float32 as computed
    (they are not k/255 values; ×4 they take a 4th of the uint8 HR's bytes).
    """

    def __init__(self, dataset: EvalDataset, task: Task, val_images: int | None = None):
        self.name = dataset.name
        self.task = task
        stored, refs, names = [], [], []
        for rec in dataset:
            img = rec.load()
            if img is None or min(img.shape[-2:]) < task.min_size():
                continue
            hr = task.prepare(img.unsqueeze(0))[0]
            with torch.no_grad():  # from the float image, exactly as before uint8 storage
                refs.append(task.reference(hr.unsqueeze(0))[0])
            stored.append(to_uint8_exact(hr))
            names.append(rec.name)
            del img, hr
            release_free_memory()  # the float copies' holes: keep RSS to what is held
        if len(stored) < 2:
            raise IrnbenchError(f"training set {dataset.name!r} needs at least 2 usable images")
        n_val = val_images if val_images is not None else max(1, round(0.1 * len(stored)))
        n_train = len(stored) - n_val
        self.val_names, self.val_stored = names[n_train:], stored[n_train:]
        self.train_names, self.stored = names[:n_train], stored[:n_train]
        self.images: Sequence[torch.Tensor] = _FloatView(self.stored)
        self.val_images: Sequence[torch.Tensor] = _FloatView(self.val_stored)
        self.refs = refs[:n_train]  # validation scores whole images: no reference needed
        del refs
        release_free_memory()
        self.factor = self.stored[0].shape[-1] // self.refs[0].shape[-1]
        self.fingerprint = dataset_fingerprint(dataset.records)  # as every run records it

    def sample(self, index: int, seed: int, crop: int, augment: bool,
               color: ColorAugment | None = None) -> tuple[torch.Tensor, ...]:
        """Training sample number ``index``: a pure function of (seed, index).

        ``color`` draws after the crop and flips, so turning it on leaves those alone.
        With ``color.clip`` a gain past the no-clip cap (computed on the crop in its original
        channel order, as the shipped ``cpu-sat``/``cpu-cast`` weights were trained; the
        reordered crop's cap can differ, and then ``color_jitter`` caps the gain instead of
        clipping) is applied in full and clipped, and the
        reference is recomputed by ``task.reference`` on the clipped crop plus a margin of the
        clipped image around it, so it equals the whole-image reference of the clipped image.
        A gain that clips nothing inside the crop takes ``color_jitter``'s exact linear path;
        its reference is that of the unclipped image, which differs (by about 1e-4, at the LR
        border) where the margin alone would clip. ``color.cast`` (with ``color.clip``) also adds a
        random offset to each channel and always recomputes the reference that way.
        ``color.permute=False`` keeps the channel order (the permutation is still drawn, so the
        other draws do not move).
        """
        rng = np.random.default_rng([seed, index])
        i = int(rng.integers(len(self.stored)))
        hr, ref = self.stored[i], self.refs[i]
        f = self.factor
        h, w = hr.shape[-2:]
        c = min(crop, h - h % f, w - w % f)
        c -= c % f
        top = int(rng.integers(0, (h - c) // f + 1)) * f
        left = int(rng.integers(0, (w - c) // f + 1)) * f
        hr_c = to_float(hr[:, top : top + c, left : left + c])  # only the crop becomes float
        ref_c = ref[:, top // f : (top + c) // f, left // f : (left + c) // f]
        flips = rng.random(3) < 0.5 if augment else (False, False, False)
        if color is not None:
            if ref_c.shape[0] not in (1, 3) or hr_c.shape[0] != 3:
                raise InvalidSetting(
                    "ColorAugment needs an RGB HR and a reference computed channel by channel "
                    f"(rescale, compress) or its luma (decolorize); this task's has "
                    f"{ref_c.shape[0]} channel(s)"
                )
            perm = rng.permutation(3)
            if not color.permute:
                perm = np.arange(3)
            gain = float(rng.uniform(*(SATURATION_GAIN_CLIPPED if color.clip
                                       else SATURATION_GAIN)))
            cast = tuple(float(v) for v in rng.uniform(-COLOR_CAST, COLOR_CAST, 3)) \
                if color.cast else ()
            # Both maps act pixel by pixel, so applying them before the flips changes nothing.
            if color.cast or (color.clip and gain > 1.0 and gain > no_clip_cap(hr_c)):
                hr_c, ref_c = self._clipped_pair(i, top, left, c, perm, gain, cast)
            else:
                hr_c, ref_c = color_jitter(hr_c, ref_c, perm, gain)
        hflip, vflip, rot = flips
        out = []
        for t in (hr_c, ref_c):
            if hflip:
                t = t.flip(-1)
            if vflip:
                t = t.flip(-2)
            if rot:
                t = t.transpose(-1, -2)
            out.append(t)
        hr_c, ref_c = out
        return hr_c.contiguous(), ref_c.contiguous()

    #: HR margin (in LR pixels, times the factor) around a clipped crop for its reference: the
    #: bicubic kernel of a 1/f downscale reaches 2f HR pixels; 4 LR pixels leave room.
    CLIP_MARGIN_LR = 4

    def _clipped_pair(self, i: int, top: int, left: int, c: int, perm: Sequence[int],
                      gain: float, cast: Sequence[float] = ()
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """HR crop of the clipped, saturated image ``i`` and that image's reference at the crop."""
        hr = self.stored[i]
        f = self.factor
        h, w = hr.shape[-2:]
        m = self.CLIP_MARGIN_LR * f
        t0, l0 = max(0, top - m), max(0, left - m)
        t1, l1 = min(h - h % f, top + c + m), min(w - w % f, left + c + m)
        region = saturate_clipped(to_float(hr[:, t0:t1, l0:l1]), perm, gain, cast)
        with torch.no_grad():
            ref = self.task.reference(region.unsqueeze(0))[0]
        hr_c = region[:, top - t0 : top - t0 + c, left - l0 : left - l0 + c]
        if ref.shape[-1] == region.shape[-1]:  # a full-size guide (decolorize's luma)
            return hr_c, ref[:, top - t0 : top - t0 + c, left - l0 : left - l0 + c]
        r_t, r_l = (top - t0) // f, (left - l0) // f
        return hr_c, ref[:, r_t : r_t + c // f, r_l : r_l + c // f]

    def batch(self, step: int, size: int, seed: int, crop: int, augment: bool,
              indices: Sequence[int] | None = None, color: ColorAugment | None = None
              ) -> dict[str, torch.Tensor]:
        """The global batch of ``step`` (or only the given positions of it, for DDP ranks).

        ``sample_index`` holds the global sample index of each row.
        """
        positions = range(size) if indices is None else indices
        index = [step * size + p for p in positions]
        pairs = [self.sample(i, seed, crop, augment, color) for i in index]
        return {"hr": torch.stack([p[0] for p in pairs]),
                "lr_ref": torch.stack([p[1] for p in pairs]),
                "sample_index": torch.tensor(index, dtype=torch.int64)}


class _StepDataset(torch.utils.data.Dataset):
    """Item ``step``: what ``fetch(step)`` returns (a DataLoader over steps, one batch each)."""

    def __init__(self, fetch: Callable[[int], dict[str, torch.Tensor]]):
        self.fetch = fetch

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        return self.fetch(step)


class BatchSource:
    """The batches of ``steps``, in order: fetched inline (``workers=0``) or sampled ahead by
    DataLoader worker processes (prefetch, pinned on CUDA).

    A batch is a pure function of (seed, step), so the number of workers never changes what
    training sees. The loader gets its own generator: the global torch RNG (checkpointed and
    used by methods) is left untouched.
    """

    def __init__(self, fetch: Callable[[int], dict[str, torch.Tensor]], steps: range,
                 workers: int = 0, pin_memory: bool = False, prefetch: int = 2):
        if workers < 0:
            raise InvalidSetting(f"workers must be ≥ 0, got {workers}")
        self.fetch, self.steps, self.workers = fetch, steps, workers
        self._next = steps.start
        self._it: Iterator[dict[str, torch.Tensor]] | None = None
        if workers and len(steps):
            loader = torch.utils.data.DataLoader(
                _StepDataset(fetch), batch_size=None, sampler=steps, num_workers=workers,
                prefetch_factor=prefetch, pin_memory=pin_memory,
                generator=torch.Generator().manual_seed(0),
                # fork shares the uint8 images copy-on-write instead of pickling them
                multiprocessing_context="fork" if sys.platform.startswith("linux") else None)
            self._it = iter(loader)

    def get(self, step: int) -> dict[str, torch.Tensor]:
        """The batch of ``step``, which must be the next one of ``steps``."""
        if step != self._next or step not in self.steps:
            raise RuntimeError(f"batch of step {step} asked for; the next one is {self._next}")
        self._next += 1
        return self.fetch(step) if self._it is None else next(self._it)

    def close(self) -> None:
        """Stop the workers (also done when the source is garbage-collected)."""
        it, self._it = self._it, None
        shutdown = getattr(it, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
