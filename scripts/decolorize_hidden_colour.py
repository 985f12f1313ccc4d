"""How much colour a decolorize method hides in its grey image (a control, not the protocol).

    python scripts/decolorize_hidden_colour.py [--plugins irn-color,tar] [--dataset mini]
        [--weights FILE] [--images kodim23,tulips]

For each image (modcropped as the task does) it restores the colour image twice with the same
weights: from the method's own uint8 grey (what ``irnbench run`` scores) and from the plain uint8
luma guide 0.299R + 0.587G + 0.114B, which carries no hidden colour. Both are scored by RGB PSNR
with the task's 2-pixel crop. The difference is the colour the grey image carries: a method that
hides colour (IRN-Color's claim) loses it when given the plain luma; one that only learned a
colour prior (an automatic colouriser) scores the same from both. ``--weights`` applies to a
single plugin. ``irnbench run`` gives the benchmark numbers.
"""

from __future__ import annotations

import argparse

import torch

import irnbench
from irnbench.data import iter_images
from irnbench.metrics import psnr
from irnbench.ops.quantize import quantize


@torch.no_grad()
def hidden_colour(plugins: list[str], dataset: str, weights: str | None,
                  images: set[str] | None) -> dict[str, tuple[float, float]]:
    """Print one row per image and method; return each method's mean (own, plain luma) PSNR."""
    if weights and len(plugins) != 1:
        raise SystemExit("--weights needs exactly one plugin")
    task = irnbench.create_task("decolorize")
    methods = [irnbench.create_method(p, task, weights=weights) for p in plugins]
    for m in methods:
        m.eval()
    print("| image | method | RGB PSNR from its grey | from the plain luma | colour in the grey |")
    print("|---|---|---|---|---|")
    sums: dict[str, list[float]] = {m.name: [0.0, 0.0, 0.0] for m in methods}
    for name, img in iter_images(dataset, images):
        hr = task.prepare(img.unsqueeze(0))
        luma = quantize(task.reference(hr))
        for m in methods:
            own = quantize(m.restore(quantize(m.degrade(hr))))
            plain = quantize(m.restore(luma))
            a = float(psnr(hr, own, task.crop_border, y_channel=False)[0])
            b = float(psnr(hr, plain, task.crop_border, y_channel=False)[0])
            s = sums[m.name]
            s[0], s[1], s[2] = s[0] + a, s[1] + b, s[2] + 1
            print(f"| {name} | {m.name} | {a:.2f} | {b:.2f} | {a - b:+.2f} |")
    means = {k: (v[0] / v[2], v[1] / v[2]) for k, v in sums.items() if v[2]}
    for k, (a, b) in means.items():
        print(f"| **mean** | {k} | {a:.2f} | {b:.2f} | {a - b:+.2f} |")
    return means


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plugins", default="irn-color,tar")
    ap.add_argument("--dataset", default="mini")
    ap.add_argument("--weights", default=None, help="weights file for a single plugin")
    ap.add_argument("--images", default="",
                    help="comma-separated image names, extension optional (default: all)")
    args = ap.parse_args()
    hidden_colour(args.plugins.split(","), args.dataset, args.weights,
                  set(args.images.split(",")) if args.images else None)


if __name__ == "__main__":
    main()
