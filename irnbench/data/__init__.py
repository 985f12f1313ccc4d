"""Datasets: cards, decoding rules and image loading for every source."""

from irnbench.data.cards import DatasetCard, datasets_dir, list_image_files
from irnbench.data.decode import DataWarning, decode_image, load_image
from irnbench.data.loading import ImageRecord, iter_images, resolve_dataset

__all__ = [
    "DatasetCard",
    "DataWarning",
    "ImageRecord",
    "datasets_dir",
    "decode_image",
    "iter_images",
    "list_image_files",
    "load_image",
    "resolve_dataset",
]
