"""IRN speed and memory benchmarks (not tests): each figure is printed as a ratio against a plain
reference path measured in the same run, on the same machine.

- inference: degrade + restore of one 512² image, fp32 in the NCHW layout (reference) vs the
  default path (fp32; the couplings switch to channels_last on CPU, ``inference_layout``) and vs
  bf16 autocast + channels_last;
- training step: batch 8, crop 64, fp32 (reference) vs bf16 autocast + channels_last;
- heap policy: the default inference path on a 512×768 image (``mini``'s size) in two fresh
  subprocesses, glibc's default heap (reference) vs
  ``irnbench.training.allocator.keep_freed_memory`` (what ``irnbench run`` and ``eval`` apply);
- peak memory: degrade + restore of a 2048² image, untiled (reference) vs tiled, and tiled with
  the kept heap, each measured in a fresh subprocess as the peak resident set during the pass
  minus the resident set just before it (Linux: the kernel's peak mark is reset first).

Usage: ``python benchmarks/bench_irn.py [--scales 2,4] [--repeat 3] [--side 2048]
[--skip-memory | --skip-timing]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time

import torch


def _model(scale: int, tile: int = -1):
    """IRN with fresh weights; ``tile`` < 0 forces untiled inference (the reference path)."""
    import irnbench

    torch.manual_seed(0)
    return irnbench.create_method("irn", scale=scale, pretrained=False, tile=tile).eval()


def _timeit(fn, repeat: int) -> float:
    fn()  # warm-up (kernel selection for this shape)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_inference(scale: int, repeat: int, mode: str, shape: tuple[int, int] = (512, 512)
                    ) -> float:
    """``mode``: "nchw" (fp32, NCHW throughout), "default" (what ``run`` does), "bf16"."""
    from irnbench_plugins.irn.blocks import nchw_inference

    m = _model(scale)
    x = torch.rand(1, 3, *shape)
    bf16 = mode == "bf16"
    if bf16:
        m = m.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    @torch.no_grad()
    def run():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            m.restore(m.degrade(x), generator=torch.Generator().manual_seed(0))

    if mode == "nchw":
        with nchw_inference():
            return _timeit(run, repeat)
    return _timeit(run, repeat)


def bench_train_step(scale: int, repeat: int, bf16: bool) -> float:
    import irnbench
    from irnbench.ops.imresize import imresize

    m = _model(scale).train()
    task = irnbench.create_task("rescale", scale=scale)
    hr = torch.rand(8, 3, 64, 64)
    batch = {"hr": hr, "lr_ref": imresize(hr, 1 / scale)}
    if bf16:
        m = m.to(memory_format=torch.channels_last)
        batch = {k: v.contiguous(memory_format=torch.channels_last) for k, v in batch.items()}
    opt = torch.optim.Adam(m.parameters(), lr=1e-5)

    def run():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = m.training_loss(batch, task)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()

    return _timeit(run, repeat)


def _status_kib(field: str) -> float | None:
    """A ``/proc/self/status`` field (VmRSS, VmHWM) in KiB; None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (Linux ``clear_refs`` 5); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _child_env(keep_heap: bool) -> dict[str, str]:
    import os

    return {**os.environ, "IRNBENCH_KEEP_FREED_MEMORY": "1" if keep_heap else "0"}


def _apply_heap_policy() -> None:
    from irnbench.training.allocator import keep_freed_memory

    keep_freed_memory()  # a no-op when the parent set IRNBENCH_KEEP_FREED_MEMORY=0


#: The heap rows use the bundled ``mini`` photos' size: its feature maps exceed glibc's largest
#: adaptive mmap threshold (32 MiB), a 512² image's at ×2 mostly do not.
HEAP_SHAPE = (512, 768)


def _timing_child(scale: int, repeat: int) -> None:
    _apply_heap_policy()
    print(json.dumps({"seconds": bench_inference(scale, repeat, "default", HEAP_SHAPE)}))


def bench_heap(scale: int, repeat: int, keep_heap: bool) -> float:
    out = subprocess.run([sys.executable, __file__, "--timing-child", str(scale), str(repeat)],
                         capture_output=True, text=True, check=True, env=_child_env(keep_heap))
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


def _memory_child(scale: int, side: int, tile: int) -> None:
    _apply_heap_policy()
    m = _model(scale, tile)
    x = torch.rand(1, 3, side, side)
    # Peak RSS during the pass minus the resident set just before it. The peak mark is reset
    # first where Linux allows, so that a transient peak of model creation does not count.
    base = _status_kib("VmRSS")
    reset = base is not None and _reset_peak()
    if not reset:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with torch.no_grad():
        m.restore(m.degrade(x), generator=torch.Generator().manual_seed(0))
    peak = _status_kib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"extra_mib": max(0.0, peak - base) / 1024}))


def bench_memory(scale: int, side: int, tile: int, keep_heap: bool = False) -> float:
    out = subprocess.run([sys.executable, __file__, "--memory-child", str(scale), str(side),
                          str(tile)], capture_output=True, text=True, check=True,
                         env=_child_env(keep_heap))
    return json.loads(out.stdout.strip().splitlines()[-1])["extra_mib"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", default="2,4")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--side", type=int, default=2048)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-timing", action="store_true", help="peak memory rows only")
    ap.add_argument("--memory-child", nargs=3, type=int, help=argparse.SUPPRESS)
    ap.add_argument("--timing-child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        _memory_child(*args.memory_child)
        return
    if args.timing_child:
        _timing_child(*args.timing_child)
        return
    print(f"# machine: {platform.machine()} {platform.processor() or ''}, "
          f"{torch.get_num_threads()} torch threads, torch {torch.__version__}")
    print("| scale | measure | reference (fp32 NCHW / untiled) | variant | variant ÷ reference |")
    print("|---|---|---|---|---|")
    for scale in [int(s) for s in args.scales.split(",")]:
        if not args.skip_timing:
            a = bench_inference(scale, args.repeat, "nchw")
            for mode, label in (("default", "fp32 default (channels_last couplings)"),
                                ("bf16", "bf16+channels_last")):
                b = bench_inference(scale, args.repeat, mode)
                print(f"| x{scale} | inference 512², s | {a:.3f} | {label} {b:.3f} | "
                      f"{b / a:.2f} |")
            a = bench_train_step(scale, args.repeat, False)
            b = bench_train_step(scale, args.repeat, True)
            print(f"| x{scale} | train step b8 c64, s | {a:.3f} | bf16+channels_last {b:.3f} | "
                  f"{b / a:.2f} |")
            a = bench_heap(scale, args.repeat, False)
            b = bench_heap(scale, args.repeat, True)
            print(f"| x{scale} | inference 512×768, fp32 default, s (glibc default heap) | "
                  f"{a:.3f} | heap kept {b:.3f} | {b / a:.2f} |")
        if not args.skip_memory:
            a = bench_memory(scale, args.side, -1)
            for keep, label in ((False, "tiled 512"), (True, "tiled 512, heap kept")):
                b = bench_memory(scale, args.side, 512, keep)
                print(f"| x{scale} | extra memory {args.side}², MiB | {a:.0f} | {label} {b:.0f} | "
                      f"{b / a:.2f} |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
