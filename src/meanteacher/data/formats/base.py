"""What a data format is, and the registry that finds one by name, by reference or by looking at a path.

A format is a class: its ``name``, a ``description`` for ``meanteacher data``, ``detects(path)`` and
``load(path, options)``, which returns a :class:`~meanteacher.data.dataset.Dataset` (a streamed format, one
too large for memory, its index: ``streamed``). ``register_format``
makes it known; a format of one's own can live in any file (``tests/plugin_format.py`` shows one).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ...errors import DataError
from ...plugins import import_reference
from ..dataset import Dataset


@dataclass(frozen=True)
class LoadOptions:
    """What a run asks of a reader beyond the path; a format uses what applies to it."""

    test_path: Path | None = None
    extra: bool = False
    """Also read the format's extra unlabeled images (SVHN's ``extra_32x32.mat``)."""
    image_size: int | None = None
    """Bring larger images down to this size as they are decoded (image folders)."""


class DataFormat:
    """One way a dataset is stored. Subclass it, set ``name`` and ``description``, write ``detects`` and
    ``load``, and decorate the class with ``register_format``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    catch_all: ClassVar[bool] = False
    """Tried only after every other format has declined the path (the image folder)."""
    builtin: ClassVar[bool] = False
    """A dataset shipped with the package, named by its ``name`` rather than by a path."""
    streamed: ClassVar[bool] = False
    """Too large for memory: ``load`` indexes the files (a ``data.streaming.FolderIndex``) and each batch is
    decoded from them during training. Such a format is asked for by name, never detected."""

    @classmethod
    def detects(cls, path: Path) -> bool:
        """Whether ``path`` holds this format (a quick look, no full read)."""
        raise NotImplementedError

    @classmethod
    def load(cls, path: Path, options: LoadOptions) -> Dataset:
        """The dataset at ``path``; ``DataError`` naming the problem when it cannot be read."""
        raise NotImplementedError


FORMATS: dict[str, type[DataFormat]] = {}
"""Every format by its name; ``load_dataset`` tries them in ``_detection_order``."""

_detection_order: list[type[DataFormat]] = []


def register_format(cls: type[DataFormat]) -> type[DataFormat]:
    """Make a format known by its ``name`` (a class decorator). Formats registered later are tried
    first, before the built-in ones, so that a format of one's own is seen before the image folder."""
    if cls.name in FORMATS and FORMATS[cls.name] is not cls:
        raise ValueError(f"a data format named {cls.name!r} is registered already")
    if cls.name not in FORMATS:
        FORMATS[cls.name] = cls
        _detection_order.insert(0, cls)
    return cls


def format_class(name: str) -> type[DataFormat]:
    """The format ``name`` names: a registered one, or ``"package.module:Class"`` (a ``DataFormat``
    subclass in the user's own code, imported). Raises ``ValueError`` naming what is wrong."""
    if name in FORMATS:
        return FORMATS[name]
    if ":" not in name:
        known = ", ".join(cls.name for cls in _detection_order)
        raise ValueError(f"unknown data format {name!r}; expected one of: {known}, or package.module:Class")
    cls = import_reference(name, "data format")
    if not (isinstance(cls, type) and issubclass(cls, DataFormat)):
        raise ValueError(f"data format {name!r} is not a subclass of meanteacher.data.formats.DataFormat")
    return cls


def is_streamed(data_format: str) -> bool:
    """Whether the format ``data_format`` names (a name or a reference, as ``format_class`` takes) streams
    its images; "auto" never does."""
    return data_format != "auto" and format_class(data_format).streamed


def detect_format(path: str | Path) -> type[DataFormat]:
    """The format of what ``path`` holds: the first registered one that detects it, the catch-all ones
    last; ``DataError`` when the path does not exist and no format claims it (a built-in name)."""
    path = Path(path)
    for cls in _detection_order:
        if not cls.catch_all and not cls.streamed and cls.detects(path):
            return cls
    if not path.exists():
        builtin = [cls.name for cls in _detection_order if cls.builtin]
        raise DataError(f"{path}: no such file or folder (built-in datasets: {', '.join(builtin)})")
    for cls in _detection_order:
        if cls.catch_all and not cls.streamed and cls.detects(path):
            return cls
    raise DataError(f"{path}: no data format recognises it (known: {', '.join(c.name for c in _detection_order)})")
