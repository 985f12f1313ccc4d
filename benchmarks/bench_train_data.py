"""Training data pipeline benchmark (not a test): crops per second beside the model's step time.

Loads a training set as ``irnbench train`` does (uint8 images, whole-image references), then
measures, in the same run on the same machine:

- the data pipeline: the preset's batches (crop, flips, colour draws, reference crops) fetched
  inline (0 workers) and by DataLoader workers, as crops per second after a warm-up;
- the model: one training step (forward, backward, Adam) on such a batch on ``--device``;

and says which one bounds training. With workers the two overlap, so a step costs about the
larger of the two; inline, their sum. ``--make-data DIR`` first writes ``--count`` synthetic
smooth photos (2040×1356, DIV2K's size) into DIR and uses them.

Usage: ``python benchmarks/bench_train_data.py --datasets DIR --plugin irn --scale 4
--preset paper [--workers 0,2] [--batches 40] [--device auto] [--skip-step]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np
import torch


def make_photos(folder: Path, count: int, size: tuple[int, int] = (2040, 1356),
                seed: int = 0) -> Path:
    """Write ``count`` random but smooth RGB PNGs (``size`` = W, H) into ``folder``."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    for i in range(count):
        path = folder / f"synthetic_{i:04d}.png"
        if path.exists():
            continue
        coarse = rng.uniform(0, 255, (h // 40 + 2, w // 40 + 2, 3)).astype(np.uint8)
        img = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), np.float32)
        img += rng.normal(0, 4, img.shape).astype(np.float32)  # some fine texture
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, compress_level=1)
    return folder


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                        platform.processor())
    except OSError:
        return platform.processor()


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def crops_per_second(fetch, batch_size: int, workers: int, batches: int) -> float:
    """Steady-state crops/s of ``fetch`` through a ``BatchSource`` with ``workers``."""
    from irnbench.training.data import BatchSource

    warm = max(2, 2 * workers)  # the workers start and fill their prefetch queue
    source = BatchSource(fetch, range(warm + batches), workers)
    try:
        for step in range(warm):
            source.get(step)
        t = time.perf_counter()
        for step in range(warm, warm + batches):
            source.get(step)
        return batches * batch_size / (time.perf_counter() - t)
    finally:
        source.close()


def step_seconds(args, task, preset, batch: dict, repeat: int) -> float:
    """Best time of one training step (forward, backward, Adam step) on ``args.device``."""
    import irnbench
    from irnbench.device import resolve_device
    from irnbench.training.data import SampleNoise

    dev = resolve_device(args.device)
    torch.manual_seed(0)
    model = irnbench.create_method(args.plugin, task, pretrained=False,
                                   **preset.options).to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=preset.lr)
    batch = {k: v.to(dev) for k, v in batch.items()}
    batch["global_batch"] = preset.batch_size
    best = float("inf")
    for i in range(repeat + 1):  # the first one warms up (kernel selection, allocations)
        b = dict(batch, generator=torch.Generator(device=dev).manual_seed(i),
                 randn=SampleNoise(i, range(preset.batch_size), dev))
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        loss = model.training_loss(b, task)["total"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i:
            best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", help="training set: a dataset name or an image folder")
    ap.add_argument("--make-data", type=Path, metavar="DIR",
                    help="write --count synthetic 2040×1356 photos into DIR and use them")
    ap.add_argument("--count", type=int, default=60)
    ap.add_argument("--plugin", default="irn")
    ap.add_argument("--task", default="rescale")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--workers", default="0,2", help="worker counts to measure, e.g. 0,1,2")
    ap.add_argument("--batches", type=int, default=40, help="timed batches per worker count")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeat", type=int, default=2, help="timed training steps (best of)")
    ap.add_argument("--skip-step", action="store_true", help="data pipeline only")
    args = ap.parse_args()
    if args.make_data:
        t = time.perf_counter()
        args.datasets = str(make_photos(args.make_data, args.count))
        print(f"data: {args.count} synthetic photos in {args.datasets} "
              f"({time.perf_counter() - t:.0f} s)")
    if not args.datasets:
        ap.error("--datasets (or --make-data) is required")

    import irnbench
    from irnbench.data.loading import resolve_dataset
    from irnbench.registry import get_method_class
    from irnbench.training.data import TrainingData
    from irnbench.training.loop import batch_fetcher

    setting = {"scale": args.scale} if args.task in ("rescale", "compress") else {}
    task = get_method_class(args.plugin).weights_task(irnbench.create_task(args.task, **setting))
    preset = get_method_class(args.plugin).presets_for(task)[args.preset]
    print(f"machine: {platform.machine()} {_cpu_name()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    t = time.perf_counter()
    data = TrainingData(resolve_dataset(args.datasets), task)
    print(f"loaded {len(data.stored)} training + {len(data.val_stored)} held-out images in "
          f"{time.perf_counter() - t:.1f} s; peak RSS so far {_max_rss_mib():.0f} MiB")
    fetch = batch_fetcher(data, preset, seed=0)
    b, c = preset.batch_size, preset.crop
    step = None if args.skip_step else step_seconds(args, task, preset, fetch(0), args.repeat)
    print(f"\n{args.plugin} {task.setting_label} preset {args.preset!r}: batch {b}, crop {c}²")
    print("| workers | data: crops/s | data: s per batch | model: s per step | bound |")
    print("|---|---|---|---|---|")
    for workers in (int(w) for w in args.workers.split(",")):
        rate = crops_per_second(fetch, b, workers, args.batches)
        per_batch = b / rate
        if step is None:
            bound, step_txt = "-", "-"
        else:
            step_txt = f"{step:.3f}"
            bound = (f"model ({step / per_batch:.1f}× the data time)" if per_batch < step
                     else f"data ({per_batch / step:.1f}× the step time)")
        print(f"| {workers} | {rate:.0f} | {per_batch:.4f} | {step_txt} | {bound} |")


if __name__ == "__main__":
    main()
