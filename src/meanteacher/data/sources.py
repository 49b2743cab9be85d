"""Loading a dataset: the format that ``path`` holds (``data.formats``), plus the unlabeled pile.

Every format returns a :class:`Dataset`: train and test images as ``N x C x H x W`` uint8 tensors,
int64 labels and class names.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import DataError
from .dataset import Dataset
from .formats import LoadOptions, detect_format, format_class
from .pile import check_pile_paths, load_pile
from .streaming import FolderIndex

DataSource = Dataset | FolderIndex
"""A run's data: its images held in memory (``Dataset``), or the index of a streamed folder's files
(``data.streaming.FolderIndex``: ``streamed``)."""


def load_dataset(
    path: str | Path,
    test_path: str | Path | None = None,
    extra: bool = False,
    image_size: int | None = None,
    unlabeled: Sequence[str | Path] = (),
    data_format: str = "auto",
) -> DataSource:
    """Load what ``path`` holds, read by ``data_format`` ("auto": the format that recognises it, see
    ``data.formats``; or a format's name or ``package.module:Class``), with the images of the
    ``unlabeled`` paths added to its unlabeled pile (``data.pile.load_pile``). ``image_size`` brings the
    images of a folder down as they are decoded (a streamed folder's crops); ``extra`` adds SVHN's extra
    images. A streamed format gives the index of its files (``data.streaming.FolderIndex``)."""
    check_pile_paths(unlabeled)
    if data_format == "auto":
        reader = detect_format(path)
    else:
        try:
            reader = format_class(data_format)
        except ValueError as error:
            raise DataError(str(error)) from None
    if reader.streamed and unlabeled:
        raise DataError(f"{path}: a streamed folder takes no unlabeled pile (--unlabeled) yet")
    test = Path(test_path) if test_path is not None else None
    dataset = reader.load(Path(path), LoadOptions(test_path=test, extra=extra, image_size=image_size))
    dataset.format = reader.name
    if unlabeled:
        pile = load_pile(unlabeled, dataset.image_shape)
        dataset.add_pile(pile["images"], pile["ids"])
    return dataset
