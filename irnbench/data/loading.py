"""Resolve a ``--datasets`` entry (a registered name or a folder) to images, lazily."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from irnbench.data.cards import DatasetCard, list_image_files
from irnbench.data.decode import load_image
from irnbench.errors import DatasetUnavailable, UnknownNameError

__all__ = ["ImageRecord", "EvalDataset", "resolve_dataset"]


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


def _from_folder(name: str, folder: Path, card: DatasetCard | None) -> EvalDataset:
    files = list_image_files(folder)
    if not files:
        raise DatasetUnavailable(f"no image files in {folder}")
    records = [ImageRecord(p.relative_to(folder).as_posix(), p) for p in files]
    return EvalDataset(name, folder, records, card)


def resolve_dataset(spec: str) -> EvalDataset:
    """A dataset name (see ``irnbench datasets list``) or a path to a folder of images."""
    from irnbench.plugins import registered_datasets

    cards = registered_datasets()
    key = spec.strip()
    if key.lower() in cards:
        card = cards[key.lower()]
        return _from_folder(card.name, card.local_dir(), card)
    path = Path(key).expanduser()
    if path.is_dir():
        return _from_folder(path.resolve().name, path, None)
    if path.exists():
        raise DatasetUnavailable(f"{path} is a file; --datasets takes names or folders")
    raise UnknownNameError("dataset", spec, list(cards), hint="or a folder path")
