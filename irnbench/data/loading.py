"""Resolve a ``--datasets`` entry (a registered name or a folder) to images, lazily."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from irnbench.data.cards import DatasetCard, list_image_files
from irnbench.data.decode import load_image
from irnbench.errors import DatasetUnavailable, UnknownNameError
from irnbench.weights import sha256_file

__all__ = ["ImageRecord", "EvalDataset", "dataset_fingerprint", "iter_images",
           "resolve_dataset"]


@dataclass(frozen=True)
class ImageRecord:
    name: str  #: path relative to the dataset root, POSIX style
    path: Path

    def load(self) -> torch.Tensor | None:
        """Decoded float32 ``3×H×W`` image, or ``None`` (warned) when unreadable."""
        return load_image(self.path)


@dataclass
class EvalDataset:
    name: str
    root: Path
    records: list[ImageRecord]
    card: DatasetCard | None = None

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[ImageRecord]:
        return iter(self.records)

    @property
    def fingerprint(self) -> str:
        """Content fingerprint of the set's image files (see :func:`dataset_fingerprint`)."""
        return dataset_fingerprint(self.records)


def dataset_fingerprint(records: Iterable[ImageRecord]) -> str:
    """sha256 (hex) over the sorted (name, file sha256) pairs of ``records``: names the content
    of a set wherever it lies (the bytes hashed are those of ``TrainingData.fingerprint``)."""
    h = hashlib.sha256()
    for name, path in sorted((r.name, r.path) for r in records):
        h.update(name.encode())
        h.update(sha256_file(path).encode())
    return h.hexdigest()


def _from_folder(name: str, folder: Path, card: DatasetCard | None) -> EvalDataset:
    files = list_image_files(folder)
    if not files:
        raise DatasetUnavailable(f"no image files in {folder}")
    records = [ImageRecord(p.relative_to(folder).as_posix(), p) for p in files]
    return EvalDataset(name, folder, records, card)


def resolve_dataset(spec: str) -> EvalDataset:
    """A dataset name (see ``irnbench datasets list``) or a path to a folder of images.

    Hub and URL sets are fetched on demand (a no-op once cached: see :mod:`irnbench.data.hub`).
    A path may also be a pre-downloaded card archive (e.g. ``Set5_HR.tar.gz``) or a folder
    holding one: it is verified and extracted into the cache by the same code as a fetch.
    """
    from irnbench.data import hub
    from irnbench.plugins import registered_datasets

    cards = registered_datasets()
    key = spec.strip()
    if key.lower() in cards:
        card = cards[key.lower()]
        if hub.source_kind(card) in ("hub", "url"):
            return _from_folder(card.name, hub.fetch(card), card)  # no-op when cached
        return _from_folder(card.name, card.local_dir(), card)
    path = Path(key).expanduser()
    if path.is_dir() and list_image_files(path):
        return _from_folder(path.resolve().name, path, None)
    if path.is_dir() or path.is_file():
        return _from_archives(path, cards)
    raise UnknownNameError("dataset", spec, list(cards), hint="or a folder path")


def _from_archives(path: Path, cards: dict[str, DatasetCard]) -> EvalDataset:
    """A pre-downloaded card archive, or a folder holding some: verified, extracted, cached."""
    from irnbench.data import hub

    installed = hub.install_from_path(path, cards)
    known = sorted(n for c in cards.values() if (n := hub.archive_name(c)))
    if not installed:
        what = "archive" if path.is_file() else "folder (no images and no card archive in it)"
        raise DatasetUnavailable(
            f"{path}: unusable {what}; --datasets takes names, folders of images, or "
            f"pre-downloaded card archives ({', '.join(known)})"
        )
    if len(installed) > 1:
        names = ",".join(c.name for c in installed)
        raise DatasetUnavailable(
            f"{path} holds several card archives; installed {names} into the cache: "
            f"run with --datasets {names}"
        )
    card = installed[0]
    return _from_folder(card.name, hub.cached_dir(card.name) / "images", card)


def iter_images(spec: str, names: Collection[str] | None = None
                ) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, 3×H×W image)`` for each readable image of a dataset (unreadable ones are warned
    and skipped); ``names`` keeps the images whose name, with or without its extension, is in
    it (the diagnostic scripts' ``--images``)."""
    for rec in resolve_dataset(spec):
        if names and rec.name not in names and rec.name.rsplit(".", 1)[0] not in names:
            continue
        img = rec.load()
        if img is not None:
            yield rec.name, img
