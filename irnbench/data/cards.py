"""Dataset cards (``datasets/*.yaml``) and the core plugin that registers them.

A card names a dataset, what it is used for, where it comes from and under which licence. The
bundled sets (``mini`` for evaluation, ``mini-train`` for training) ship in the repository's
``datasets/`` folder so that ``irnbench run`` works offline on a fresh machine. The standard sets
(``source: hub`` or ``source: url``: Set5, Set14, B100, Urban100, DIV2K, Kodak) keep their
download details in extra keys (``hub:``/``url:``, ``sha256:``, ``size:``, ``subdir:``) and are
fetched into the user cache by :mod:`irnbench.data.hub`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from irnbench.data.decode import IMAGE_EXTENSIONS, SKIPPED_EXTENSIONS, DataWarning
from irnbench.errors import DatasetUnavailable
from irnbench.hookspecs import hookimpl

__all__ = ["DatasetCard", "datasets_dir", "load_cards", "list_image_files"]


def datasets_dir() -> Path:
    """The folder holding the cards and bundled sets (``$IRNBENCH_DATASETS`` overrides)."""
    env = os.environ.get("IRNBENCH_DATASETS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "datasets"


@dataclass
class DatasetCard:
    """What irnbench knows about one dataset (the YAML card's fields)."""

    name: str
    description: str = ""
    use: str = "evaluation"
    source: str = "bundled"
    path: str | None = None  #: bundled: folder relative to the cards' folder
    images: int | None = None
    licence: str = ""
    citation: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    card_path: Path | None = None

    @classmethod
    def from_yaml(cls, path: Path) -> DatasetCard:
        data = yaml.safe_load(path.read_text()) or {}
        known = {"name", "description", "use", "source", "path", "images", "licence", "citation"}
        return cls(
            name=str(data["name"]),
            description=str(data.get("description", "")).strip(),
            use=str(data.get("use", "evaluation")),
            source=str(data.get("source", "bundled")),
            path=data.get("path"),
            images=data.get("images"),
            licence=str(data.get("licence", "")).strip(),
            citation=str(data.get("citation", "")).strip(),
            extra={k: v for k, v in data.items() if k not in known},
            card_path=path,
        )

    def local_dir(self) -> Path:
        """Folder of the images of a bundled set."""
        if self.source != "bundled" or not self.path:
            raise DatasetUnavailable(
                f"dataset {self.name!r} is not bundled (source: {self.source}); "
                f"fetch it with `irnbench datasets fetch {self.name}` (or resolve it with "
                f"irnbench.data.resolve_dataset, which fetches on demand)"
            )
        base = self.card_path.parent if self.card_path else datasets_dir()
        folder = base / self.path
        if not folder.is_dir():
            raise DatasetUnavailable(f"bundled dataset folder missing: {folder}")
        return folder


def list_image_files(folder: Path) -> list[Path]:
    """Image files (by extension, case-insensitive) below ``folder``, sorted by relative path;
    a note names the GIF files skipped (palette images, never evaluated)."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    skipped = sorted(p.name for p in files if p.suffix.lower() in SKIPPED_EXTENSIONS)
    if skipped:
        more = f" (+{len(skipped) - 5} more)" if len(skipped) > 5 else ""
        warnings.warn(f"{folder.name}: {len(skipped)} GIF file(s) skipped (at most 256 colours, "
                      f"not evaluation images): {', '.join(skipped[:5])}{more}", DataWarning,
                      stacklevel=2)
    return sorted(p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS)


def load_cards(folder: Path | None = None) -> Iterator[DatasetCard]:
    folder = folder or datasets_dir()
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.yaml")):
        yield DatasetCard.from_yaml(path)


@hookimpl
def irnbench_register_datasets(register):
    for card in load_cards():
        register(card)
