"""CIFAR-10 and CIFAR-100 in the python-pickle layout: a folder, or the ``.tar.gz`` as downloaded."""

from __future__ import annotations

import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch

from ...errors import DataError
from ..dataset import Dataset
from .base import DataFormat, LoadOptions


def _read_pickle(data: bytes, name: str) -> dict:
    try:
        return pickle.loads(data, encoding="bytes")
    except Exception as error:  # noqa: BLE001 - any unpickling failure is a bad file
        raise DataError(f"{name}: not a CIFAR pickle ({error})") from None


def _cifar_files(path: Path) -> dict[str, bytes]:
    """Basename -> bytes of the CIFAR pickle files in a directory or a .tar.gz archive."""
    wanted = {
        "data_batch_1",
        "data_batch_2",
        "data_batch_3",
        "data_batch_4",
        "data_batch_5",
        "test_batch",
        "batches.meta",
        "train",
        "test",
        "meta",
    }
    files: dict[str, bytes] = {}
    if path.is_dir():
        for name in wanted:
            if (path / name).is_file():
                files[name] = (path / name).read_bytes()
        return files
    try:
        with tarfile.open(path) as archive:
            for member in archive:
                base = os.path.basename(member.name)
                if member.isfile() and base in wanted:
                    files[base] = archive.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise DataError(f"{path}: not a readable archive ({error})") from None
    return files


def _cifar_arrays(batch: dict, label_key: bytes, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except (KeyError, ValueError) as error:
        raise DataError(f"{name}: missing or malformed CIFAR field ({error})") from None
    return torch.from_numpy(data.copy()), torch.from_numpy(labels)


def load_cifar(path: str | Path) -> Dataset:
    """CIFAR-10 or CIFAR-100 (fine labels) in the python-pickle layout: a directory or the .tar.gz."""
    path = Path(path)
    files = _cifar_files(path)
    if "data_batch_1" in files:
        missing = [f"data_batch_{i}" for i in range(1, 6) if f"data_batch_{i}" not in files]
        missing += [n for n in ("test_batch",) if n not in files]
        if missing:
            raise DataError(f"{path}: CIFAR-10 split missing: {', '.join(missing)}")
        parts = [
            _cifar_arrays(_read_pickle(files[f"data_batch_{i}"], f"data_batch_{i}"), b"labels", f"data_batch_{i}")
            for i in range(1, 6)
        ]
        train_images = torch.cat([p[0] for p in parts])
        train_labels = torch.cat([p[1] for p in parts])
        test_images, test_labels = _cifar_arrays(
            _read_pickle(files["test_batch"], "test_batch"), b"labels", "test_batch"
        )
        meta = _read_pickle(files["batches.meta"], "batches.meta") if "batches.meta" in files else {}
        classes = [c.decode() for c in meta.get(b"label_names", [])] or [str(i) for i in range(10)]
        name = "cifar10"
    elif "train" in files and "test" in files:
        train_images, train_labels = _cifar_arrays(_read_pickle(files["train"], "train"), b"fine_labels", "train")
        test_images, test_labels = _cifar_arrays(_read_pickle(files["test"], "test"), b"fine_labels", "test")
        meta = _read_pickle(files["meta"], "meta") if "meta" in files else {}
        classes = [c.decode() for c in meta.get(b"fine_label_names", [])] or [str(i) for i in range(100)]
        name = "cifar100"
    else:
        raise DataError(f"{path}: no CIFAR batches found (expected data_batch_1..5 and test_batch, or train and test)")
    return Dataset(name, train_images, train_labels, test_images, test_labels, classes)


def _looks_like_cifar_archive(path: Path) -> bool:
    try:
        with tarfile.open(path) as archive:
            for index, member in enumerate(archive):
                if "batches-py" in member.name or os.path.basename(member.name) in ("data_batch_1", "test_batch"):
                    return True
                if index > 20:
                    return False
    except (tarfile.TarError, OSError, EOFError):
        return False
    return False


class CifarPickles(DataFormat):
    name = "cifar"
    description = "CIFAR-10 or CIFAR-100 python pickles (a folder or the .tar.gz)"

    @classmethod
    def detects(cls, path: Path) -> bool:
        if path.is_dir():
            names = {p.name for p in path.iterdir()}
            return "data_batch_1" in names or {"train", "test", "meta"} <= names and (path / "meta").is_file()
        return path.name.lower().endswith((".tar.gz", ".tgz")) and _looks_like_cifar_archive(path)

    @classmethod
    def load(cls, path: Path, options: LoadOptions) -> Dataset:
        return load_cifar(path)
