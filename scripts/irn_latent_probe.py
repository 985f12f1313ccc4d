"""Probe how IRN weights use the latent z: per-channel errors at several z temperatures.

    python scripts/irn_latent_probe.py --scale 2 [--weights FILE] [--dataset mini]
        [--temperatures 0,1] [--images kodim23,tulips]

For each image (modcropped as the task does) it prints the forward z's standard deviation, the
LR's mean colour offset from the bicubic LR, and, for each temperature T, the restored image's
per-channel mean error (bias) and RGB-channel PSNR (border crop = scale), z ~ N(0, I)·T drawn
with the protocol's first draw seed. The paper's model varies by less than 0.02 dB between z
draws, and its author counts z = 0 as a valid sample (official repository, issue #26);
irnbench's CPU-budget weights collapse at z = 0 (see README).
This is a diagnostic, not the benchmark protocol: ``irnbench run`` gives the measured numbers.
"""

from __future__ import annotations

import argparse

import torch

import irnbench
from irnbench.data import iter_images
from irnbench.metrics import psnr
from irnbench.ops.quantize import quantize
from irnbench.protocol import DRAW_SEED


@torch.no_grad()
def probe(scale: int, weights: str | None, dataset: str, temperatures: list[float],
          images: set[str] | None) -> None:
    task = irnbench.create_task("rescale", scale=scale)
    method = irnbench.create_method("irn", task, weights=weights)
    print(f"# irn x{scale}, weights: {method.weights_label}")
    print("| image | z std | LR mean − bicubic LR mean (R, G, B) | T | bias (R, G, B) "
          "| PSNR R / G / B, dB |")
    print("|---|---|---|---|---|---|")
    for name, img in iter_images(dataset, images):
        hr = task.prepare(img.unsqueeze(0))
        out = method.net(hr)
        y, z = out[:, :3], out[:, 3:]
        offset = (y - task.reference(hr)).mean((0, 2, 3)).tolist()
        y_q = quantize(y)  # the uint8 LR the channel sends
        for t in temperatures:
            gen = torch.Generator().manual_seed(DRAW_SEED)
            restored = quantize(method.restore(y_q, temperature=t, generator=gen))
            bias = (restored - hr).mean((0, 2, 3)).tolist()
            per_ch = [float(psnr(hr[:, c : c + 1], restored[:, c : c + 1], scale,
                                 y_channel=False)[0]) for c in range(3)]
            print(f"| {name} | {z.std():.4f} | {', '.join(f'{v:+.3f}' for v in offset)} "
                  f"| {t:g} | {', '.join(f'{v:+.3f}' for v in bias)} "
                  f"| {' / '.join(f'{v:.2f}' for v in per_ch)} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--weights", default=None, help="weights file (default: the shipped ones)")
    ap.add_argument("--dataset", default="mini")
    ap.add_argument("--temperatures", default="0,1")
    ap.add_argument("--images", default="",
                    help="comma-separated image names, extension optional (default: all)")
    args = ap.parse_args()
    probe(args.scale, args.weights, args.dataset,
          [float(t) for t in args.temperatures.split(",")],
          set(args.images.split(",")) if args.images else None)


if __name__ == "__main__":
    main()
