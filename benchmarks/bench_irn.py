"""IRN speed and memory benchmarks (not tests): each figure is printed as a ratio against a plain
reference path measured in the same run, on the same machine.

- dense blocks: degrade + restore of one 512² image, today's ``DenseBlock`` (its default path:
  the Winograd kernel where it builds; and its oneDNN pieces path) against the block before its
  inference path (``DenseBlockReference``: every conv reads a fresh concatenation) and against
  the official network's computation (NCHW, plain blocks), same weights (perturbed, so that the
  outputs differ), interleaved repeats, medians, the largest output differences and, in fresh
  subprocesses, the extra peak memory of each;
- inference: degrade + restore of one 512² image, fp32 in the NCHW layout with the plain blocks
  (reference: the official network's computation) vs the default path (fp32; the couplings
  switch to channels_last on CPU, ``inference_layout``, and the dense blocks run their inference
  path) and vs bf16 autocast + channels_last;
- training step: batch 8, crop 64, fp32 (reference) vs bf16 autocast + channels_last;
- heap policy: the default inference path on a 512×768 image (``mini``'s size) in two fresh
  subprocesses, glibc's default heap (reference) vs
  ``irnbench.training.allocator.keep_freed_memory`` (what ``irnbench run`` and ``eval`` apply);
- peak memory: degrade + restore of a 2048² image, untiled (reference) vs tiled, and tiled with
  the kept heap, each measured in a fresh subprocess as the peak resident set during the pass
  minus the resident set just before it (Linux: the kernel's peak mark is reset first).

Usage: ``python benchmarks/bench_irn.py [--scales 2,4] [--repeat 3] [--side 2048]
[--skip-memory | --skip-timing] [--blocks-only | --skip-blocks]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch


def _model(scale: int, tile: int = -1):
    """IRN with fresh weights; ``tile`` < 0 forces untiled inference (the reference path)."""
    import irnbench

    torch.manual_seed(0)
    return irnbench.create_method("irn", scale=scale, pretrained=False, tile=tile).eval()


def _perturbed_pair(scale: int, tile: int = -1):
    """(IRN with today's blocks, the same weights with ``DenseBlockReference``): the fresh
    weights perturbed (conv5 starts at zero, which would hide most differences; the cost is the
    same either way)."""
    from irnbench_plugins.irn import InvRescaleNet
    from irnbench_plugins.irn.blocks import DenseBlockReference

    new, old = _model(scale, tile), _model(scale, tile)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in new.net.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.02)
    old.net = InvRescaleNet(scale, subnet=DenseBlockReference).eval()
    old.net.load_state_dict(new.net.state_dict(), strict=True)
    return new, old


#: The dense-block variants timed side by side: (key, label).
BLOCK_VARIANTS = (
    ("official", "official network (NCHW, plain blocks)"),
    ("old", "DenseBlockReference"),
    ("pieces", "DenseBlock, oneDNN pieces (IRNBENCH_WINOGRAD=0)"),
    ("new", "DenseBlock, default path"),
)


def bench_blocks(scale: int, repeat: int, cpu_time: bool = False) -> dict[str, float]:
    """The official computation, today's blocks without and with the Winograd kernel, against
    ``DenseBlockReference``, on degrade + restore of a 512² image: interleaved (the order
    rotating), medians, and the default path's largest differences from the old blocks, of the
    LR and of the HR (relative to its largest magnitude). ``cpu_time``: the process's CPU time
    instead of wall time (steadier while other jobs share the cores; meant for one thread)."""
    from irnbench_plugins.irn.blocks import nchw_inference

    clock = time.process_time if cpu_time else time.perf_counter
    new, old = _perturbed_pair(scale)
    x = torch.rand(1, 3, 512, 512, generator=torch.Generator().manual_seed(2))
    z = torch.randn(1, 3 * scale * scale - 3, 512 // scale, 512 // scale,
                    generator=torch.Generator().manual_seed(3))

    default_winograd = os.environ.get("IRNBENCH_WINOGRAD", "1")

    @torch.no_grad()
    def run(key):
        if key == "official":
            with nchw_inference():
                return run("old")
        os.environ["IRNBENCH_WINOGRAD"] = "0" if key == "pieces" else default_winograd
        m = old if key == "old" else new
        y = m.degrade(x)
        return y, m.restore_with_z(y, z)

    try:
        outs = {key: run(key) for key, _ in BLOCK_VARIANTS}  # also the warm-up
        times: dict[str, list[float]] = {key: [] for key, _ in BLOCK_VARIANTS}
        keys = [key for key, _ in BLOCK_VARIANTS]
        for r in range(repeat):
            for key in keys[r % len(keys):] + keys[:r % len(keys)]:
                t = clock()
                run(key)
                times[key].append(clock() - t)
    finally:
        os.environ["IRNBENCH_WINOGRAD"] = default_winograd
    (y_new, hr_new), (y_old, hr_old) = outs["new"], outs["old"]
    return {**{key: statistics.median(v) for key, v in times.items()},
            "lr_diff": (y_new - y_old).abs().max().item(),
            "hr_rel_diff": ((hr_new - hr_old).abs().max() / hr_old.abs().max()).item()}


def _print_blocks(scale: int, r: dict[str, float], repeat: int, cpu_time: bool,
                  keep_heap: bool) -> None:
    clock = "CPU s" if cpu_time else "s"
    heap = ", heap kept" if keep_heap else ""
    what = f"inference 512², fp32{heap}, {clock} (median of {repeat}, interleaved)"
    labels = dict(BLOCK_VARIANTS)
    for ref, key in (("old", "pieces"), ("old", "new"), ("official", "new")):
        extra = (f"; max diff LR {r['lr_diff']:.1e}, HR {r['hr_rel_diff']:.1e} rel."
                 if (ref, key) == ("old", "new") else "")
        print(f"| x{scale} | {what} | {labels[ref]} {r[ref]:.3f} | {labels[key]} {r[key]:.3f} | "
              f"{r[key] / r[ref]:.2f} ({r[ref] / r[key]:.2f}x faster{extra}) |")


def _dense_block_path() -> str:
    from irnbench.ops import winograd

    if winograd.available():
        return f"Winograd F(2x2, 3x3) kernel ({winograd.kernel_path().name})"
    return f"oneDNN pieces (Winograd kernel unavailable: {winograd.unavailable_reason()})"


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
    """``mode``: "nchw" (fp32, NCHW throughout, plain blocks), "default" (what ``run`` does),
    "bf16"."""
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


def _memory_child(scale: int, side: int, tile: int, blocks: int = 0) -> None:
    """``blocks``: 0 the model as created, 1 / 2 the perturbed pair's new / old blocks."""
    _apply_heap_policy()
    m = _perturbed_pair(scale, tile)[blocks - 1] if blocks else _model(scale, tile)
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


def bench_memory(scale: int, side: int, tile: int, keep_heap: bool = False, blocks: int = 0
                 ) -> float:
    out = subprocess.run([sys.executable, __file__, "--memory-child", str(scale), str(side),
                          str(tile), str(blocks)], capture_output=True, text=True, check=True,
                         env=_child_env(keep_heap))
    return json.loads(out.stdout.strip().splitlines()[-1])["extra_mib"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", default="2,4")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--side", type=int, default=2048)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-timing", action="store_true", help="peak memory rows only")
    ap.add_argument("--blocks-only", action="store_true", help="the dense-block rows only")
    ap.add_argument("--skip-blocks", action="store_true")
    ap.add_argument("--cpu-time", action="store_true",
                    help="dense-block rows in process CPU time, not wall time (use 1 thread)")
    ap.add_argument("--keep-heap", action="store_true",
                    help="keep freed memory in the heap (what `irnbench run` does) in this process")
    ap.add_argument("--memory-child", nargs=4, type=int, help=argparse.SUPPRESS)
    ap.add_argument("--timing-child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.keep_heap:
        _apply_heap_policy()
    if args.memory_child:
        _memory_child(*args.memory_child)
        return
    if args.timing_child:
        _timing_child(*args.timing_child)
        return
    print(f"# machine: {platform.machine()} {platform.processor() or ''}, "
          f"{torch.get_num_threads()} torch threads, torch {torch.__version__}, "
          f"load average {_load()} at the start")
    print(f"# dense blocks' default path: {_dense_block_path()}")
    print("| scale | measure | reference (fp32 NCHW / untiled / old blocks) | variant | "
          "variant ÷ reference |")
    print("|---|---|---|---|---|")
    for scale in [int(s) for s in args.scales.split(",")]:
        if not args.skip_blocks and not args.skip_timing:
            repeat = max(args.repeat, 2)
            r = bench_blocks(scale, repeat, args.cpu_time)
            _print_blocks(scale, r, repeat, args.cpu_time, args.keep_heap)
        if not args.skip_blocks and not args.skip_memory:
            a = bench_memory(scale, 512, -1, blocks=2)
            b = bench_memory(scale, 512, -1, blocks=1)
            print(f"| x{scale} | extra memory 512², MiB | DenseBlockReference {a:.0f} | "
                  f"DenseBlock {b:.0f} | {b / a:.2f} |")
        sys.stdout.flush()
        if args.blocks_only:
            continue
        if not args.skip_timing:
            a = bench_inference(scale, args.repeat, "nchw")
            for mode, label in (("default", "fp32 default (channels_last, split dense blocks)"),
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
    print(f"# load average {_load()} at the end")


def _load() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


if __name__ == "__main__":
    main()
