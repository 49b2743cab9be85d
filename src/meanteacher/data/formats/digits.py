"""The built-in dataset: the UCI optical handwritten digits shipped with the package."""

from __future__ import annotations

import gzip
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ..dataset import Dataset
from .base import DataFormat, LoadOptions


def load_digits() -> Dataset:
    """The UCI optical handwritten digits (1,797 8x8 grayscale images) shipped with the package.

    Every fourth image is the test set (450 images), the rest (1,347) the training set.
    """
    with resources.files("meanteacher.data").joinpath("digits.csv.gz").open("rb") as handle:
        table = np.loadtxt(gzip.open(handle), delimiter=",", dtype=np.int64)
    pixels = torch.from_numpy(table[:, :64] * 255 // 16).to(torch.uint8).reshape(-1, 1, 8, 8)
    labels = torch.from_numpy(table[:, 64])
    test = torch.zeros(len(labels), dtype=torch.bool)
    test[::4] = True
    return Dataset(
        name="digits",
        train_images=pixels[~test].contiguous(),
        train_labels=labels[~test].contiguous(),
        test_images=pixels[test].contiguous(),
        test_labels=labels[test].contiguous(),
        classes=[str(d) for d in range(10)],
    )


class Digits(DataFormat):
    name = "digits"
    description = "the handwritten digits built into the package"
    builtin = True

    @classmethod
    def detects(cls, path: Path) -> bool:
        return str(path) == cls.name

    @classmethod
    def load(cls, path: Path, options: LoadOptions) -> Dataset:
        return load_digits()
