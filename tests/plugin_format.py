"""A data format that lives outside the package, in one file: NumPy ``.npz`` arrays (``x_train``,
``y_train``, ``x_test``, ``y_test`` as ``N x H x W`` or ``N x C x H x W`` uint8 images and integer labels).

Importing this module registers it as ``npz``, so that ``--data file.npz`` is recognised;
``--data-format tests.plugin_format:NpzArrays`` finds it without that. ``tests/test_plugins.py`` trains on it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from meanteacher.data.dataset import Dataset
from meanteacher.data.formats import DataFormat, LoadOptions, register_format
from meanteacher.errors import DataError


@register_format
class NpzArrays(DataFormat):
    name = "npz"
    description = "NumPy .npz arrays x_train, y_train, x_test, y_test"

    @classmethod
    def detects(cls, path: Path) -> bool:
        return path.suffix == ".npz" and path.is_file()

    @classmethod
    def load(cls, path: Path, options: LoadOptions) -> Dataset:
        try:
            arrays = np.load(path)
            images = {split: torch.from_numpy(arrays[f"x_{split}"]).to(torch.uint8) for split in ("train", "test")}
            labels = {split: torch.from_numpy(arrays[f"y_{split}"]).long() for split in ("train", "test")}
        except (OSError, ValueError, KeyError) as error:
            raise DataError(f"{path}: not an npz dataset ({error})") from None
        images = {split: x.unsqueeze(1) if x.dim() == 3 else x for split, x in images.items()}
        classes = [str(c) for c in range(int(labels["train"].max()) + 1)]
        return Dataset(path.stem, images["train"], labels["train"], images["test"], labels["test"], classes)
