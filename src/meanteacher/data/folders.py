"""Image folders and archives: ``train/<class>/*`` and ``test/<class>/*`` (or ``val/``), or plain
``<class>/*`` folders, read from a folder or a .tar/.tar.gz/.zip archive. ``group_by_split`` is the one
parser of this layout, used for in-memory datasets and for streamed ones alike."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError, DataWarning
from .cache import cached
from .dataset import IMAGE_SUFFIXES, Dataset, archive_stem, is_archive
from .image_files import archive_entries, decode_image, folder_entries, source_fingerprint
from .pile import decode_pile, is_unlabeled_folder, warn_unreadable

Members = dict[str, list[tuple[str, Any]]]
"""class name -> [(image id ``class/file``, the file's bytes or path)]"""
PILE = ""
"""The one key of the ``"unlabeled"`` split's members."""


TEST_SPLIT_NAMES = ("test", "val", "valid", "validation")
"""Folder names taken as the test split, in this order of preference."""
HELD_OUT_EVERY = 5
"""Without a test folder, every 5th image of each class (in name order) is held out as the test set."""


def group_by_split(entries: Iterator[tuple[str, Any]], source: str) -> dict[str, Members]:
    """Group files as split -> class -> [(id, payload)] from paths ending in ``split/class/file``; files
    in plain ``class/file`` folders (no split folders at all) form the split ``"flat"``, which is the
    training split when there is no other. The first of ``TEST_SPLIT_NAMES`` present is the ``"test"``
    split. A payload of None is a folder: it names a class that may be empty. Files below a folder named
    ``unlabeled`` (``is_unlabeled_folder``), at any depth, form the split ``"unlabeled"`` under the one key
    ``PILE``: the pile, never a class."""
    splits: dict[str, Members] = {}
    for name, data in entries:
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if any(p.startswith(".") or p == "__MACOSX" for p in parts):
            continue
        pile_at = next((i for i, p in enumerate(parts[:-1]) if is_unlabeled_folder(p)), None)
        if pile_at is not None or (data is None and parts and is_unlabeled_folder(parts[-1])):
            if data is not None:
                splits.setdefault("unlabeled", {}).setdefault(PILE, []).append(("/".join(parts[pile_at:]), data))
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


def _hold_out_test(
    train: dict[str, list[tuple[str, bytes]]],
) -> tuple[dict[str, list[tuple[str, bytes]]], dict[str, list[tuple[str, bytes]]]]:
    """Every ``HELD_OUT_EVERY``-th image of each class (in name order) as the test split, the rest for training."""
    kept, held = {}, {}
    for label, files in train.items():
        files = sorted(files)
        kept[label] = [f for i, f in enumerate(files) if i % HELD_OUT_EVERY != HELD_OUT_EVERY - 1]
        held_files = files[HELD_OUT_EVERY - 1 :: HELD_OUT_EVERY]
        if held_files:
            held[label] = held_files
    return kept, held


def _decode_split(
    members: Members, classes: list[str], where: str, image_size: int | None
) -> tuple[list[np.ndarray], np.ndarray, list[str], int]:
    """The split's images, labels and ids, and how many images were brought down to ``image_size``."""
    images, labels, ids, downscaled = [], [], [], 0
    for label, name in enumerate(classes):
        files = sorted(members.get(name, []))
        if not files:
            raise DataError(f"{where}/{name}: empty class folder (no images)")
        for image_id, data in files:
            image, fitted = decode_image(f"{where}/{image_id}", data, image_size)
            images.append(image)
            downscaled += fitted
            labels.append(label)
            ids.append(image_id)
    return images, np.asarray(labels, dtype=np.int64), ids, downscaled


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


def _decode_image_folder(path: Path, test_path: Path | None, image_size: int | None) -> dict:
    entries = archive_entries(path) if is_archive(path) else folder_entries(path, read=False)
    splits = group_by_split(entries, str(path))
    if test_path is not None:
        test_entries = archive_entries(test_path) if is_archive(test_path) else folder_entries(test_path, read=False)
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
        raise DataError(
            f"{path}: no images found (expected train/<class>/<image> and test/<class>/<image>, or <class>/<image> folders)"
        )
    held_out = 0
    if not splits.get("test"):
        splits["train"], splits["test"] = _hold_out_test(splits["train"])
        held_out = sum(len(files) for files in splits["test"].values())
        if not held_out:
            raise DataError(
                f"{path}: no test folder, and too few images to hold out every {HELD_OUT_EVERY}th as a test set"
            )
    classes = class_names(splits, str(path))
    train_images, train_labels, train_ids, downscaled = _decode_split(
        splits["train"], classes, f"{path}:train", image_size
    )
    test_classes = [c for c in classes if c in splits["test"]]
    test_images, test_labels, _, test_downscaled = _decode_split(
        splits["test"], test_classes, f"{path}:test", image_size
    )
    test_labels = np.asarray([classes.index(test_classes[i]) for i in test_labels], dtype=np.int64)
    train_images, test_images, resized = _uniform(train_images, test_images)
    fields = {}
    if splits.get("unlabeled"):
        pile = decode_pile(
            sorted(splits["unlabeled"][PILE], key=lambda entry: entry[0]),
            tuple(_to_nchw(train_images[:1]).shape[1:]),
            str(path),
        )
        fields = {
            "unlabeled_images": pile["images"],
            "unlabeled_ids": pile["ids"],
            "unreadable": pile["unreadable"],
            "first_unreadable": pile["first_unreadable"],
        }
    return {
        **fields,
        "resized": resized,
        "downscaled": downscaled + test_downscaled,
        "held_out": held_out,
        "train_images": _to_nchw(train_images),
        "train_labels": torch.from_numpy(train_labels),
        "test_images": _to_nchw(test_images),
        "test_labels": torch.from_numpy(test_labels),
        "classes": classes,
        "train_ids": train_ids,
    }


def class_names(splits: dict[str, Members], source: str) -> list[str]:
    """The classes of the training split, in name order; a one-line error for fewer than two (one class
    is not a classification task) and for a test class that training lacks."""
    classes = sorted(splits["train"])
    if len(classes) < 2:
        found = f"only the class {classes[0]!r}" if classes else "no class"
        raise DataError(f"{source}: {found}; a classifier needs images of two classes or more (one folder per class)")
    unknown = sorted(set(splits.get("test", {})) - set(classes))
    if unknown:
        raise DataError(f"{source}: test classes not in train: {', '.join(unknown)}")
    return classes


def load_image_folder(
    path: str | Path, test_path: str | Path | None = None, use_cache: bool = True, image_size: int | None = None
) -> Dataset:
    """Images in ``train/<class>/*`` and ``test/<class>/*`` (a folder or a .tar/.tar.gz/.zip archive).

    With ``test_path`` the test images come from ``test_path/<class>/*`` and ``path`` may hold the
    class folders directly. With ``image_size`` an image whose shorter side is longer is brought down
    to ``image_size`` x ``image_size`` as it is decoded (``fit_square``), so memory follows the size
    asked, not the files. Decoded tensors are cached, keyed by the sources' sizes and times and the size.
    """
    path = Path(path)
    test = Path(test_path) if test_path is not None else None
    for candidate in (path, test):
        if candidate is not None and not candidate.exists():
            raise DataError(f"{candidate}: no such file or folder")
    if path.is_file() and not is_archive(path):
        raise DataError(f"{path}: not an archive (expected .tar, .tar.gz, .tgz or .zip) nor a folder")
    key = f"{path.name}-{source_fingerprint(path, test)[:24]}" + (f"-s{image_size}" if image_size is not None else "")
    decode = lambda: _decode_image_folder(path, test, image_size)  # noqa: E731 - the cache calls it on a miss
    fields = dict(cached(key, decode) if use_cache else decode())
    resized, held_out, downscaled = fields.pop("resized", 0), fields.pop("held_out", 0), fields.pop("downscaled", 0)
    warn_unreadable(
        {"unreadable": fields.pop("unreadable", 0), "first_unreadable": fields.pop("first_unreadable", "")}, str(path)
    )
    if downscaled:
        warnings.warn(
            f"{path}: {downscaled} images larger than {image_size}x{image_size} were brought down to it as they "
            f"were decoded (shorter side to {image_size}, centre crop); --image-size N sets another size",
            DataWarning,
            stacklevel=2,
        )
    if held_out:
        warnings.warn(
            f"{path}: no test folder: every {HELD_OUT_EVERY}th image of each class ({held_out} images) is held out "
            "as the test set",
            DataWarning,
            stacklevel=2,
        )
    if resized:
        height, width = fields["train_images"].shape[-2:]
        total = len(fields["train_images"]) + len(fields["test_images"])
        warnings.warn(
            f"{path}: {resized} of {total} images differ in size from the most common, {height}x{width}, "
            "and were resized to it",
            DataWarning,
            stacklevel=2,
        )
    return Dataset(name=archive_stem(path.name), **fields)
