"""Dataset sources decoded into in-memory uint8 tensors.

Every loader returns a :class:`Dataset`: train and test images as ``N x C x H x W`` uint8 tensors,
int64 labels and class names. ``load_dataset`` picks the loader from what ``path`` holds.
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import tarfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .dataset import Dataset
from .folders import load_image_folder
from .pile import check_pile_paths, load_pile

BUILTIN_DATASETS = ("digits",)


# ---------------------------------------------------------------- built-in: handwritten digits


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


# ---------------------------------------------------------------- CIFAR pickles


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


# ---------------------------------------------------------------- SVHN .mat


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


# ---------------------------------------------------------------- MNIST-style idx


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


# ---------------------------------------------------------------- dispatch


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


def load_dataset(
    path: str | Path,
    test_path: str | Path | None = None,
    extra: bool = False,
    image_size: int | None = None,
    unlabeled: Sequence[str | Path] = (),
) -> Dataset:
    """Load whatever ``path`` holds: ``"digits"`` (built in), CIFAR pickles, SVHN .mat, idx files,
    or an image folder / archive (its images brought down to ``image_size``, see ``load_image_folder``),
    with the images of the ``unlabeled`` paths added to its unlabeled pile (``data.pile.load_pile``)."""
    check_pile_paths(unlabeled)
    dataset = _load_labeled(path, test_path, extra, image_size)
    if unlabeled:
        pile = load_pile(unlabeled, dataset.image_shape)
        dataset.add_pile(pile["images"], pile["ids"])
    return dataset


def _load_labeled(path: str | Path, test_path: str | Path | None, extra: bool, image_size: int | None) -> Dataset:
    if str(path) in BUILTIN_DATASETS:
        return load_digits()
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder (built-in datasets: {', '.join(BUILTIN_DATASETS)})")
    if path.is_dir():
        names = {p.name for p in path.iterdir()}
        if "data_batch_1" in names or {"train", "test", "meta"} <= names and (path / "meta").is_file():
            return load_cifar(path)
        if any(n.endswith("_32x32.mat") for n in names):
            return load_svhn(path, extra=extra)
        if any("idx3-ubyte" in n for n in names):
            return load_idx(path)
    elif path.name.lower().endswith((".tar.gz", ".tgz")) and _looks_like_cifar_archive(path):
        return load_cifar(path)
    return load_image_folder(path, test_path, image_size=image_size)
