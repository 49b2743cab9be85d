"""SVHN's ``train_32x32.mat``, ``test_32x32.mat`` and ``extra_32x32.mat`` in a folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...errors import DataError
from ..dataset import Dataset
from .base import DataFormat, LoadOptions


def _load_svhn_mat(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path))
        images = np.ascontiguousarray(np.transpose(mat["X"], (3, 2, 0, 1)), dtype=np.uint8)
        labels = np.asarray(mat["y"], dtype=np.int64).reshape(-1)
    except (ValueError, KeyError, OSError, TypeError) as error:
        raise DataError(f"{path}: not an SVHN .mat file ({error})") from None
    labels[labels == 10] = 0
    return torch.from_numpy(images), torch.from_numpy(labels)


def load_svhn(path: str | Path, extra: bool = False) -> Dataset:
    """SVHN ``train_32x32.mat`` and ``test_32x32.mat`` (and ``extra_32x32.mat`` as extra unlabeled data)."""
    path = Path(path)
    for split in ("train", "test") + (("extra",) if extra else ()):
        if not (path / f"{split}_32x32.mat").is_file():
            raise DataError(f"{path}: SVHN split missing: {split}_32x32.mat")
    train_images, train_labels = _load_svhn_mat(path / "train_32x32.mat")
    test_images, test_labels = _load_svhn_mat(path / "test_32x32.mat")
    extra_images = _load_svhn_mat(path / "extra_32x32.mat")[0] if extra else None
    classes = [str(d) for d in range(10)]
    return Dataset("svhn", train_images, train_labels, test_images, test_labels, classes, extra_images=extra_images)


class SvhnMat(DataFormat):
    name = "svhn"
    description = "SVHN .mat files (train_32x32.mat, test_32x32.mat, extra_32x32.mat)"

    @classmethod
    def detects(cls, path: Path) -> bool:
        return path.is_dir() and any(p.name.endswith("_32x32.mat") for p in path.iterdir())

    @classmethod
    def load(cls, path: Path, options: LoadOptions) -> Dataset:
        return load_svhn(path, extra=options.extra)
