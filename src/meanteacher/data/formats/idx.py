"""MNIST-style idx files (``train-images-idx3-ubyte`` and ``t10k-...``, plain or .gz) in a folder."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from ...errors import DataError
from ..dataset import Dataset
from .base import DataFormat, LoadOptions


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
        zero, dtype_code, dims = struct.unpack(">HBB", data[:4])
        if zero != 0 or dtype_code != 0x08:
            raise ValueError("bad magic number")
        shape = struct.unpack(">" + "I" * dims, data[4 : 4 + 4 * dims])
        array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims)
        return array.reshape(shape)
    except (OSError, ValueError, struct.error, EOFError) as error:
        raise DataError(f"{path}: not an idx file ({error})") from None


def _find_idx(path: Path, prefix: str, kind: str) -> Path:
    for candidate in sorted(path.iterdir()):
        if candidate.name.startswith(prefix) and kind in candidate.name:
            return candidate
    raise DataError(f"{path}: idx split missing: {prefix}-{kind}[.gz]")


def load_idx(path: str | Path) -> Dataset:
    """MNIST-style ``train-images-idx3-ubyte`` / ``t10k-...`` files, plain or .gz."""
    path = Path(path)
    arrays = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = _read_idx(_find_idx(path, prefix, "images-idx3"))
        labels = _read_idx(_find_idx(path, prefix, "labels-idx1")).astype(np.int64)
        if len(images) != len(labels):
            raise DataError(f"{path}: {split} has {len(images)} images but {len(labels)} labels")
        arrays[split] = (torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.copy()))
    classes = [str(i) for i in range(int(max(arrays["train"][1].max(), arrays["test"][1].max())) + 1)]
    return Dataset(path.name or "idx", *arrays["train"], *arrays["test"], classes)


class IdxFiles(DataFormat):
    name = "idx"
    description = "MNIST-style idx files (train-images-idx3-ubyte, t10k-..., plain or .gz)"

    @classmethod
    def detects(cls, path: Path) -> bool:
        return path.is_dir() and any("idx3-ubyte" in p.name for p in path.iterdir())

    @classmethod
    def load(cls, path: Path, options: LoadOptions) -> Dataset:
        return load_idx(path)
