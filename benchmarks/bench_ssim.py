"""SSIM speed benchmark (not a test): the metric's default strip-wise pass against one pass over
the whole image, measured side by side in one run on the same images; the two must agree bit for
bit, and the script says so.

Usage: ``python benchmarks/bench_ssim.py [--size 768x512] [--repeat 5] [--threads N]``.
"""

from __future__ import annotations

import argparse
import time

import torch

from irnbench.metrics import SSIM_STRIP_ROWS, _ssim_per_channel, prepare_for_metric


def _best_of(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="768x512", help="W x H of the test image")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    w, h = (int(v) for v in args.size.lower().split("x"))
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, h, w, generator=gen)
    y = (x + 0.05 * torch.randn(1, 3, h, w, generator=gen)).clamp(0, 1)
    print(f"SSIM of a {w}x{h} image, {torch.get_num_threads()} torch threads, best of "
          f"{args.repeat}")
    for label, y_channel in (("Y", True), ("RGB", False)):
        a, b = prepare_for_metric(x, 2, y_channel), prepare_for_metric(y, 2, y_channel)
        whole = _best_of(lambda a=a, b=b: _ssim_per_channel(a, b, strip_rows=0), args.repeat)
        strips = _best_of(lambda a=a, b=b: _ssim_per_channel(a, b), args.repeat)
        same = torch.equal(_ssim_per_channel(a, b, strip_rows=0), _ssim_per_channel(a, b))
        print(f"  {label:3s} one pass {whole * 1e3:7.1f} ms | strips of {SSIM_STRIP_ROWS} rows "
              f"{strips * 1e3:7.1f} ms | speed-up {whole / strips:4.2f}x | bit-identical: {same}")


if __name__ == "__main__":
    main()
