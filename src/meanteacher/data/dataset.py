"""A dataset held in memory, and the file suffixes the readers know."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")


@dataclass
class Dataset:
    """A labeled image dataset held in memory, with extra unlabeled images: SVHN's ``extra`` set
    (``extra_images``) and the unlabeled pile (``unlabeled_images``, see ``data.pile``)."""

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: list[str]
    train_ids: list[str] = field(default_factory=list)
    extra_images: torch.Tensor | None = None
    unlabeled_images: torch.Tensor | None = None
    unlabeled_ids: list[str] = field(default_factory=list)
    format: str = ""
    """The name of the data format it was read by (``data.formats``)."""
    streamed: ClassVar[bool] = False
    """Held in memory (a streamed source decodes each batch from its files: ``data.streaming.FolderIndex``)."""

    def __post_init__(self) -> None:
        if not self.train_ids:
            self.train_ids = [str(i) for i in range(len(self.train_labels))]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def pile_size(self) -> int:
        """How many images the unlabeled pile holds."""
        return 0 if self.unlabeled_images is None else len(self.unlabeled_images)

    def add_pile(self, images: torch.Tensor, ids: list[str]) -> None:
        """Append ``images`` (of this dataset's image shape) and their names to the unlabeled pile."""
        if self.unlabeled_images is not None:
            images, ids = torch.cat([self.unlabeled_images, images]), self.unlabeled_ids + ids
        self.unlabeled_images, self.unlabeled_ids = images, list(ids)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_images.shape[1:])

    def summary(self) -> dict:
        """Splits, image shape and per-class counts, as plain values."""
        extra = 0 if self.extra_images is None else len(self.extra_images)
        return source_summary(self, extra)


def source_summary(source, extra: int = 0) -> dict:
    """What ``meanteacher data`` shows of a source (a ``Dataset`` or a streamed one): its name and format,
    the sizes of its splits, its image shape and its per-class counts, as plain values."""
    counts = torch.bincount(source.train_labels, minlength=source.num_classes).tolist()
    test_counts = torch.bincount(source.test_labels, minlength=source.num_classes).tolist()
    return {
        "name": source.name,
        "format": source.format,
        "train": len(source.train_labels),
        "test": len(source.test_labels),
        "extra": extra,
        "unlabeled": source.pile_size,
        "image_shape": list(source.image_shape),
        "channels": source.image_shape[0],
        "classes": source.classes,
        "train_per_class": dict(zip(source.classes, counts)),
        "test_per_class": dict(zip(source.classes, test_counts)),
    }


def is_archive(path: Path) -> bool:
    """Whether ``path`` is a .tar, .tar.gz, .tgz or .zip file."""
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def archive_stem(name: str) -> str:
    """``name`` without an archive suffix (``cifar10.tar.gz`` -> ``cifar10``)."""
    for suffix in ARCHIVE_SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name
