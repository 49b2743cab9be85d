"""Datasets too large for memory (ImageNet-style folders): decoded and augmented per image in
DataLoader worker processes, with the same label split and two-stream batches as in-memory data.

Training views get the paper's Appendix B.2.2 augmentation: random resized crop to 224, rotation
by up to 10 degrees, horizontal flip and colour jitter. Evaluation resizes to 256 and centre-crops 224.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..errors import DataError
from .augment import Normalizer
from .batch import NO_LABEL
from .dataset import source_summary
from .folders import class_names, group_by_split
from .image_files import folder_entries
from .sampler import TwoStreamBatches

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class FolderIndex:
    """File lists of an image folder ``train/<class>/*`` + ``test/<class>/*`` (nothing decoded)."""

    name: str
    classes: list[str]
    train_files: list[Path]
    train_labels: torch.Tensor
    test_files: list[Path]
    test_labels: torch.Tensor
    image_size: int = 224
    train_ids: list[str] = field(default_factory=list)
    format: str = "streamed-folder"
    streamed: ClassVar[bool] = True
    """Each batch is decoded from its files in DataLoader workers (``data.feed.StreamedFeed``)."""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (3, self.image_size, self.image_size)

    @property
    def pile_size(self) -> int:
        """Streamed folders take no unlabeled pile."""
        return 0

    def summary(self) -> dict:
        """Splits, image shape (the crops') and per-class counts, as plain values."""
        return source_summary(self)


def index_image_folder(path: str | Path, image_size: int = 224) -> FolderIndex:
    """Index ``path/train/<class>/*`` and ``path/test/<class>/*`` (or ``path/val/...``) without decoding."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(
            f"{path}: a streamed folder is a folder (not a file or an archive) with train/ and test/ (or val/) sub-folders"
        )
    splits = group_by_split(folder_entries(path, read=False), str(path))
    if "flat" in splits or "test" not in splits:
        raise DataError(f"{path}: a streamed folder needs train/ and test/ (or val/) sub-folders")
    if splits.get("unlabeled"):
        raise DataError(
            f"{path}: streamed folders do not take an unlabeled pile yet: read it with --data-format image-folder, "
            "or move the unlabeled/ folder out"
        )
    classes = class_names(splits, str(path))
    lists = {}
    for split in ("train", "test"):
        files, labels = [], []
        for label, name in enumerate(classes):
            members = sorted(splits[split].get(name, []))
            if split == "train" and not members:
                raise DataError(f"{path / 'train' / name}: empty class folder (no images)")
            files += [file for _, file in members]
            labels += [label] * len(members)
        lists[split] = (files, labels)
    (train_files, train_labels), (test_files, test_labels) = lists["train"], lists["test"]
    return FolderIndex(
        name=path.name,
        classes=classes,
        train_files=train_files,
        train_labels=torch.tensor(train_labels),
        test_files=test_files,
        test_labels=torch.tensor(test_labels),
        image_size=image_size,
        train_ids=[f.relative_to(path / "train").as_posix() for f in train_files],
    )


def imagenet_normalizer() -> Normalizer:
    """The normalization streamed views use, as a ``Normalizer`` (for checkpoints and prediction)."""
    normalizer = Normalizer("standardize")
    normalizer.stats = {"mean": torch.tensor(IMAGENET_MEAN), "std": torch.tensor(IMAGENET_STD)}
    return normalizer


def open_rgb(path: Path):
    """The image at ``path`` as RGB; a ``DataError`` naming the file if it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise DataError(f"{path}: not a readable image ({error})") from None


def _to_tensor(image) -> torch.Tensor:
    array = np.asarray(image, dtype=np.float32) / 255.0
    mean, std = np.asarray(IMAGENET_MEAN, np.float32), np.asarray(IMAGENET_STD, np.float32)
    return torch.from_numpy(((array - mean) / std).transpose(2, 0, 1).copy())


def random_resized_crop(image, size: int, rng: random.Random, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    """Crop a random area fraction in ``scale`` with aspect ratio in ``ratio``, resized to ``size``."""
    from PIL import Image

    width, height = image.size
    for _ in range(10):
        area = width * height * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w, h = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < w <= width and 0 < h <= height:
            left, top = rng.randint(0, width - w), rng.randint(0, height - h)
            return image.resize((size, size), Image.BILINEAR, box=(left, top, left + w, top + h))
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return image.resize((size, size), Image.BILINEAR, box=(left, top, left + side, top + side))


def train_view(image, size: int, rng: random.Random) -> torch.Tensor:
    """Appendix B.2.2: random resized crop, rotation up to 10 degrees, flip, colour jitter."""
    from PIL import Image, ImageEnhance

    view = image.rotate(rng.uniform(-10, 10), resample=Image.BILINEAR)
    view = random_resized_crop(view, size, rng)
    if rng.random() < 0.5:
        view = view.transpose(Image.FLIP_LEFT_RIGHT)
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        view = enhancer(view).enhance(rng.uniform(0.6, 1.4))
    return _to_tensor(view)


def eval_view(image, size: int) -> torch.Tensor:
    """Resize the short side to ``size * 8 / 7`` and centre-crop ``size``."""
    from PIL import Image

    short = round(size * 8 / 7)
    width, height = image.size
    scale = short / min(width, height)
    image = image.resize((max(size, round(width * scale)), max(size, round(height * scale))), Image.BILINEAR)
    left, top = (image.size[0] - size) // 2, (image.size[1] - size) // 2
    return _to_tensor(image.crop((left, top, left + size, top + size)))


class TrainViews(Dataset):
    """Item ``(index, use_label)`` -> ``(views..., label or NO_LABEL, index)``, augmented per image."""

    def __init__(self, index: FolderIndex, masked_labels: torch.Tensor, view_count: int, seed: int) -> None:
        self.index, self.labels, self.view_count, self.seed = index, masked_labels, view_count, seed

    def __len__(self) -> int:
        return len(self.index.train_files)

    def __getitem__(self, item: tuple[int, bool, int]):
        position, use_label, step = item
        rng = random.Random(hash((self.seed, step, position)))
        image = open_rgb(self.index.train_files[position])
        views = [train_view(image, self.index.image_size, rng) for _ in range(self.view_count)]
        label = int(self.labels[position]) if use_label else NO_LABEL
        return (*views, label, position)


class TestViews(Dataset):
    """Evaluation images (resize and centre crop) with their labels."""

    def __init__(self, index: FolderIndex) -> None:
        self.index = index

    def __len__(self) -> int:
        return len(self.index.test_files)

    def __getitem__(self, position: int):
        image = open_rgb(self.index.test_files[position])
        return eval_view(image, self.index.image_size), int(self.index.test_labels[position])


class StepBatchSampler(Sampler):
    """Index batches of the two-stream sampler from step ``start`` on, as ``(index, use_label, step)``
    items, each process taking its shard."""

    def __init__(self, batches: TwoStreamBatches, start: int, rank: int = 0, world_size: int = 1) -> None:
        self.batches, self.start, self.rank, self.world_size = batches, start, rank, world_size

    def __iter__(self) -> Iterator[list[tuple[int, bool, int]]]:
        step = self.start
        while True:
            batch = self.batches.batch(step)
            if self.world_size > 1:
                batch = batch.shard(self.rank, self.world_size)
            yield [(int(i), bool(labeled), step) for i, labeled in zip(batch.indices, batch.labeled)]
            step += 1

    def __len__(self) -> int:  # endless; DataLoader only needs a number
        return 2**62


def train_loader(
    index: FolderIndex,
    masked_labels: torch.Tensor,
    batches: TwoStreamBatches,
    view_count: int,
    seed: int,
    start: int,
    workers: int,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """An endless loader of augmented two-stream batches from step ``start`` (for resuming)."""
    return DataLoader(
        TrainViews(index, masked_labels, view_count, seed),
        batch_sampler=StepBatchSampler(batches, start, rank, world_size),
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=workers > 0,
    )


def evaluation_loader(index: FolderIndex, batch_size: int, workers: int) -> DataLoader:
    """The evaluation images in order, in batches."""
    return DataLoader(TestViews(index), batch_size=batch_size, num_workers=workers)
