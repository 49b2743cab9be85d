"""Dataset sources decoded into in-memory uint8 tensors.

Every loader returns a :class:`Dataset`: train and test images as ``N x C x H x W`` uint8 tensors,
int64 labels and class names. ``load_dataset`` picks the loader from what ``path`` holds.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile
import warnings
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..errors import DataError, DataWarning
from .cache import cached

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")
BUILTIN_DATASETS = ("digits",)


@dataclass
class Dataset:
    """A labeled image dataset held in memory."""

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: list[str]
    train_ids: list[str] = field(default_factory=list)
    extra_images: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if not self.train_ids:
            self.train_ids = [str(i) for i in range(len(self.train_labels))]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_images.shape[1:])

    def summary(self) -> dict:
        """Splits, image shape and per-class counts, as plain values."""
        counts = torch.bincount(self.train_labels, minlength=self.num_classes).tolist()
        test_counts = torch.bincount(self.test_labels, minlength=self.num_classes).tolist()
        return {
            "name": self.name,
            "train": len(self.train_labels),
            "test": len(self.test_labels),
            "extra": 0 if self.extra_images is None else len(self.extra_images),
            "image_shape": list(self.image_shape),
            "channels": self.image_shape[0],
            "classes": self.classes,
            "train_per_class": dict(zip(self.classes, counts)),
            "test_per_class": dict(zip(self.classes, test_counts)),
        }


def _is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


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
    wanted = {"data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
              "batches.meta", "train", "test", "meta"}
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
        parts = [_cifar_arrays(_read_pickle(files[f"data_batch_{i}"], f"data_batch_{i}"), b"labels", f"data_batch_{i}") for i in range(1, 6)]
        train_images = torch.cat([p[0] for p in parts])
        train_labels = torch.cat([p[1] for p in parts])
        test_images, test_labels = _cifar_arrays(_read_pickle(files["test_batch"], "test_batch"), b"labels", "test_batch")
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


# ---------------------------------------------------------------- image folders and archives


def _iter_folder(root: Path) -> Iterator[tuple[str, bytes | None]]:
    """(relative name, bytes) of every file below ``root``; folders come as (name, None)."""
    for entry in sorted(root.rglob("*")):
        name = entry.relative_to(root).as_posix()
        if entry.is_file():
            yield name, entry.read_bytes()
        elif entry.is_dir():
            yield name, None


def _iter_archive(path: Path) -> Iterator[tuple[str, bytes | None]]:
    """Like ``_iter_folder`` for the members of a .tar, .tar.gz or .zip archive."""
    try:
        if path.name.lower().endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    yield info.filename, None if info.is_dir() else archive.read(info)
        else:
            with tarfile.open(path) as archive:
                for member in archive:
                    if member.isfile():
                        yield member.name, archive.extractfile(member).read()
                    elif member.isdir():
                        yield member.name, None
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as error:
        detail = " ".join(str(error).split())
        if isinstance(error, tarfile.ReadError) and "could not be opened" in detail:
            detail = "neither a tar file nor one compressed with gzip, bzip2 or xz"
        raise DataError(f"{path}: not a readable archive ({detail})") from None


def _decode(name: str, data: bytes) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            if image.mode not in ("L", "RGB"):
                image = image.convert("RGBA" if "A" in image.mode else "RGB").convert("RGB")
            return np.asarray(image)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise DataError(f"{name}: not a readable image ({error})") from None


TEST_SPLIT_NAMES = ("test", "val", "valid", "validation")
"""Folder names taken as the test split, in this order of preference."""
HELD_OUT_EVERY = 5
"""Without a test folder, every 5th image of each class (in name order) is held out as the test set."""


def _split_members(entries: Iterator[tuple[str, bytes | None]], source: str) -> dict[str, dict[str, list[tuple[str, bytes]]]]:
    """Group files as split -> class -> [(id, bytes)] from paths ending in ``split/class/file``; files in
    plain ``class/file`` folders (no split folders at all) form the split ``"flat"``."""
    splits: dict[str, dict[str, list[tuple[str, bytes]]]] = {}
    for name, data in entries:
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if any(p.startswith(".") or p == "__MACOSX" for p in parts):
            continue
        if data is None:
            if len(parts) >= 2 and parts[-2] in ("train", *TEST_SPLIT_NAMES):
                splits.setdefault(parts[-2], {}).setdefault(parts[-1], [])
            continue
        if len(parts) < 2:
            continue
        split = parts[-3] if len(parts) >= 3 and parts[-3] in ("train", *TEST_SPLIT_NAMES) else "flat"
        label, filename = parts[-2], parts[-1]
        if not filename.lower().endswith(IMAGE_SUFFIXES):
            if split == "flat":
                continue  # files beside the class folders (a README, a labels file) are not images to check
            raise DataError(f"{source}: {name}: not an image file (expected one of {', '.join(IMAGE_SUFFIXES)})")
        splits.setdefault(split, {}).setdefault(label, []).append((f"{label}/{filename}", data))
    test = next((name for name in TEST_SPLIT_NAMES if splits.get(name)), None)
    if test is not None:
        splits["test"] = splits[test]
    if "train" not in splits and "test" not in splits and splits.get("flat"):
        splits["train"] = splits["flat"]
    return splits


def _hold_out_test(train: dict[str, list[tuple[str, bytes]]]) -> tuple[dict[str, list[tuple[str, bytes]]], dict[str, list[tuple[str, bytes]]]]:
    """Every ``HELD_OUT_EVERY``-th image of each class (in name order) as the test split, the rest for training."""
    kept, held = {}, {}
    for label, files in train.items():
        files = sorted(files)
        kept[label] = [f for i, f in enumerate(files) if i % HELD_OUT_EVERY != HELD_OUT_EVERY - 1]
        held_files = files[HELD_OUT_EVERY - 1 :: HELD_OUT_EVERY]
        if held_files:
            held[label] = held_files
    return kept, held


def _decode_split(members: dict[str, list[tuple[str, bytes]]], classes: list[str], where: str) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    images, labels, ids = [], [], []
    for label, name in enumerate(classes):
        files = sorted(members.get(name, []))
        if not files:
            raise DataError(f"{where}/{name}: empty class folder (no images)")
        for image_id, data in files:
            images.append(_decode(f"{where}/{image_id}", data))
            labels.append(label)
            ids.append(image_id)
    return images, np.asarray(labels, dtype=np.int64), ids


def _to_nchw(images: np.ndarray) -> torch.Tensor:
    tensor = torch.from_numpy(images)
    return tensor.unsqueeze(1).contiguous() if tensor.dim() == 3 else tensor.permute(0, 3, 1, 2).contiguous()


def _uniform(train: list[np.ndarray], test: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, int]:
    """Both splits stacked as arrays of one shape: grayscale images turned into RGB when any image is in
    colour, and images of another size resized (bilinear, antialiased) to the most common size of the
    training images (the smaller of equally common ones). Returns the arrays and how many images were resized."""
    from collections import Counter

    from PIL import Image

    sizes = Counter(a.shape[:2] for a in train)
    target = max(sizes, key=lambda size: (sizes[size], -size[0] * size[1]))
    color = any(a.ndim == 3 for a in train + test)
    resized = 0

    def fit(image: np.ndarray) -> np.ndarray:
        nonlocal resized
        if image.shape[:2] != target:
            image = np.asarray(Image.fromarray(image).resize((target[1], target[0]), Image.BILINEAR))
            resized += 1
        return np.repeat(image[..., None], 3, axis=2) if color and image.ndim == 2 else image

    return np.stack([fit(a) for a in train]), np.stack([fit(a) for a in test]), resized


def _decode_image_folder(path: Path, test_path: Path | None) -> dict:
    entries = _iter_archive(path) if _is_archive(path) else _iter_folder(path)
    splits = _split_members(entries, str(path))
    if test_path is not None:
        test_entries = _iter_archive(test_path) if _is_archive(test_path) else _iter_folder(test_path)
        test_members: dict[str, list] = {}
        for name, data in test_entries:
            parts = [p for p in name.split("/") if p]
            if data is None:
                if len(parts) == 1:
                    test_members.setdefault(parts[0], [])
            elif len(parts) >= 2 and not any(p.startswith(".") for p in parts):
                if not parts[-1].lower().endswith(IMAGE_SUFFIXES):
                    raise DataError(f"{test_path}: {name}: not an image file")
                test_members.setdefault(parts[-2], []).append((f"{parts[-2]}/{parts[-1]}", data))
        splits["test"] = test_members
    if not splits.get("train"):
        raise DataError(f"{path}: no images found (expected train/<class>/<image> and test/<class>/<image>, or <class>/<image> folders)")
    held_out = 0
    if not splits.get("test"):
        splits["train"], splits["test"] = _hold_out_test(splits["train"])
        held_out = sum(len(files) for files in splits["test"].values())
        if not held_out:
            raise DataError(f"{path}: no test folder, and too few images to hold out every {HELD_OUT_EVERY}th as a test set")
    classes = sorted(splits["train"])
    unknown = sorted(set(splits["test"]) - set(classes))
    if unknown:
        raise DataError(f"{path}: test classes not in train: {', '.join(unknown)}")
    train_images, train_labels, train_ids = _decode_split(splits["train"], classes, f"{path}:train")
    test_classes = [c for c in classes if c in splits["test"]]
    test_images, test_labels, _ = _decode_split(splits["test"], test_classes, f"{path}:test")
    test_labels = np.asarray([classes.index(test_classes[i]) for i in test_labels], dtype=np.int64)
    train_images, test_images, resized = _uniform(train_images, test_images)
    return {
        "resized": resized,
        "held_out": held_out,
        "train_images": _to_nchw(train_images),
        "train_labels": torch.from_numpy(train_labels),
        "test_images": _to_nchw(test_images),
        "test_labels": torch.from_numpy(test_labels),
        "classes": classes,
        "train_ids": train_ids,
    }


def _source_fingerprint(*paths: Path | None) -> str:
    digest = hashlib.sha256()
    for path in paths:
        if path is None:
            continue
        digest.update(str(path.resolve()).encode())
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            stat = file.stat()
            digest.update(f"{file}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()


def load_image_folder(path: str | Path, test_path: str | Path | None = None, use_cache: bool = True) -> Dataset:
    """Images in ``train/<class>/*`` and ``test/<class>/*`` (a folder or a .tar/.tar.gz/.zip archive).

    With ``test_path`` the test images come from ``test_path/<class>/*`` and ``path`` may hold the
    class folders directly. Decoded tensors are cached, keyed by the sources' sizes and times.
    """
    path = Path(path)
    test = Path(test_path) if test_path is not None else None
    for candidate in (path, test):
        if candidate is not None and not candidate.exists():
            raise DataError(f"{candidate}: no such file or folder")
    if path.is_file() and not _is_archive(path):
        raise DataError(f"{path}: not an archive (expected .tar, .tar.gz, .tgz or .zip) nor a folder")
    key = f"{path.name}-{_source_fingerprint(path, test)[:24]}"
    fields = dict(cached(key, lambda: _decode_image_folder(path, test)) if use_cache else _decode_image_folder(path, test))
    resized, held_out = fields.pop("resized", 0), fields.pop("held_out", 0)
    if held_out:
        warnings.warn(f"{path}: no test folder: every {HELD_OUT_EVERY}th image of each class ({held_out} images) is held out "
                      "as the test set", DataWarning, stacklevel=2)
    if resized:
        height, width = fields["train_images"].shape[-2:]
        total = len(fields["train_images"]) + len(fields["test_images"])
        warnings.warn(f"{path}: {resized} of {total} images differ in size from the most common, {height}x{width}, "
                      "and were resized to it", DataWarning, stacklevel=2)
    name = path.name
    for suffix in ARCHIVE_SUFFIXES:
        name = name.removesuffix(suffix)
    return Dataset(name=name, **fields)


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


def load_dataset(path: str | Path, test_path: str | Path | None = None, extra: bool = False) -> Dataset:
    """Load whatever ``path`` holds: ``"digits"`` (built in), CIFAR pickles, SVHN .mat, idx files,
    or an image folder / archive."""
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
    return load_image_folder(path, test_path)
