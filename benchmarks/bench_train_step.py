"""Training-step time of a method's preset under the trainer's speed options (not a test).

Each mode is ``AMP[+cl][+compile]``: AMP is one of ``irnbench.training.amp.AMP_MODES`` (``off`` is
fp32; ``auto`` is bf16 on a GPU that has it, fp16 + GradScaler on an older one, fp32 on CPU),
``cl`` adds channels_last and ``compile`` torch.compiles the training loss, as ``irnbench train
--amp AMP --channels-last --compile`` do. A step is what the trainer does: forward under
autocast, scaled backward, unscale, grad-norm clip, Adam step. The batch is random HR crops of
the preset's size with their bicubic reference, made once: the data path is not timed.

Prints one JSON line per mode (seconds a step: the median of the timed steps; the first steps,
which select kernels and compile, are reported apart) and a table.

Usage: ``python benchmarks/bench_train_step.py --scale 4 --preset paper --device cuda
--modes off,auto,fp16,auto+compile [--steps 20] [--warmup 5]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _batch(preset, scale: int, dev: torch.device, channels_last: bool) -> dict:
    from irnbench.ops.imresize import imresize
    from irnbench.training.data import SampleNoise

    g = torch.Generator().manual_seed(0)
    hr = torch.rand(preset.batch_size, 3, preset.crop, preset.crop, generator=g)
    batch = {"hr": hr, "lr_ref": imresize(hr, 1 / scale)}
    batch = {k: v.to(dev) for k, v in batch.items()}
    if channels_last:
        batch = {k: v.contiguous(memory_format=torch.channels_last) for k, v in batch.items()}
    batch["global_batch"] = preset.batch_size
    batch["randn"] = SampleNoise(0, list(range(preset.batch_size)), dev)
    batch["generator"] = torch.Generator(device=dev).manual_seed(0)
    return batch


def time_mode(method: str, scale: int, preset_name: str, dev: torch.device, mode: str,
              steps: int, warmup: int) -> dict:
    """Time ``steps`` training steps after ``warmup`` untimed ones in one mode."""
    import irnbench
    from irnbench.registry import get_method_class
    from irnbench.training.amp import amp_dtype, resolve_amp

    amp, *flags = mode.split("+")
    amp = resolve_amp(amp, dev)
    cl, comp = "cl" in flags, "compile" in flags
    task = irnbench.create_task("rescale", scale=scale)
    preset = get_method_class(method).presets_for(task)[preset_name]
    torch.manual_seed(0)
    model = irnbench.create_method(method, task, pretrained=False, **preset.options).to(dev)
    if cl:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=preset.lr)
    scaler = torch.amp.GradScaler(dev.type, enabled=amp == "fp16")
    loss_fn = torch.compile(model.training_loss) if comp else model.training_loss
    dtype = amp_dtype(amp)
    batch = _batch(preset, scale, dev, cl)

    def step() -> None:
        with torch.autocast(dev.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = loss_fn(batch, task)["total"]
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(params, preset.grad_clip or float("inf"))
        scaler.step(opt)
        scaler.update()

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    _sync(dev)
    first = time.perf_counter() - t0
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        _sync(dev)
        times.append(time.perf_counter() - t)
    s = statistics.median(times)
    return {"method": method, "scale": scale, "preset": preset_name, "mode": mode,
            "amp": amp, "channels_last": cl, "compile": comp, "device": str(dev),
            "batch": preset.batch_size, "crop": preset.crop, "warmup_steps": warmup,
            "warmup_s": round(first, 3), "steps": steps, "s_per_step": round(s, 5),
            "preset_hours": round(s * preset.iterations / 3600, 2),
            "peak_gib": round(torch.cuda.max_memory_allocated(dev) / 2**30, 2)
            if dev.type == "cuda" else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="irn")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--modes", default="off,auto,auto+compile")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--json", default=None, help="Also append the JSON lines to this file.")
    args = ap.parse_args()
    from irnbench.device import describe_device, resolve_device

    dev = resolve_device(args.device)
    print(f"# {describe_device(dev)}, torch {torch.__version__}", flush=True)
    rows = []
    for mode in args.modes.split(","):
        row = time_mode(args.method, args.scale, args.preset, dev, mode, args.steps,
                        args.warmup)
        rows.append(row)
        line = json.dumps(row)
        print(line, flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(line + "\n")
    print(f"{'mode':<16}{'amp':<6}{'s/step':>10}{'first steps s':>15}{'preset h':>10}")
    for r in rows:
        print(f"{r['mode']:<16}{r['amp']:<6}{r['s_per_step']:>10.4f}{r['warmup_s']:>15.1f}"
              f"{r['preset_hours']:>10.1f}")


if __name__ == "__main__":
    main()
