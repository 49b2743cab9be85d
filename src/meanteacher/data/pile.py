"""The unlabeled pile: images without classes that join the unlabeled stream, never a class and never in
the test set. They come from a folder named ``unlabeled`` (or ``unlabelled``, any case) beside the class
folders, and from ``--unlabeled`` paths: a folder of any depth, an archive, or a text file of image paths.
Every image is brought to the run's image shape; unreadable files are skipped with one warning line."""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import torch

from ..errors import DataError, DataWarning
from .cache import cached
from .dataset import is_archive
from .image_files import archive_entries, decode_to_shape, folder_entries, source_fingerprint

UNLABELED_NAMES = ("unlabeled", "unlabelled")
"""Folder names (any case) that hold the pile; the name is reserved: never a class."""
PROGRESS_FROM = 1000
"""Piles of this many images or more show their decoding progress."""
MEMORY_SHARE = 0.8
"""A pile may take at most this share of the memory available when it is decoded."""


def is_unlabeled_folder(name: str) -> bool:
    """Whether a folder of this name holds the unlabeled pile."""
    return name.lower() in UNLABELED_NAMES


def _is_hidden(name: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in name.split("/"))


def check_pile_paths(paths: Sequence[str | Path]) -> None:
    """A one-line error for a pile path that does not exist."""
    for path in paths:
        if not Path(path).exists():
            raise DataError(
                f"{path}: no such file or folder (--unlabeled takes a folder, an archive or a text file of image paths)"
            )


def pile_entries(path: Path) -> Iterator[tuple[str, bytes | Path]]:
    """(name, bytes or path) of every file of a pile given as a folder (any depth), an archive, or a text
    file of image paths (one a line, relative to the text file's folder; ``#`` starts a comment)."""
    if path.is_dir() or is_archive(path):
        entries = folder_entries(path, read=False) if path.is_dir() else archive_entries(path)
        for name, data in entries:
            if data is not None and not _is_hidden(name):
                yield f"{path}/{name}", data
        return
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not a folder, an archive or a text file of image paths ({error})") from None
    for line in lines:
        if line.strip() and not line.lstrip().startswith("#"):
            listed = Path(line.strip())
            listed = listed if listed.is_absolute() else path.parent / listed
            yield str(listed), listed


def available_memory() -> int | None:
    """Bytes of memory available now, where the system says (None elsewhere)."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(count: int, shape: tuple[int, int, int], source: str, available: int | None = None) -> None:
    """A one-line error when ``count`` images of ``shape`` would take more than ``MEMORY_SHARE`` of the
    memory ``available`` (by default, what the system has free now)."""
    available = available_memory() if available is None else available
    needed = count * shape[0] * shape[1] * shape[2]
    if available is not None and needed > MEMORY_SHARE * available:
        raise DataError(
            f"{source}: {count:,} unlabeled images at {shape[1]}x{shape[2]} with {shape[0]} channel(s) need "
            f"{needed / 2**30:.1f} GiB in memory, {available / 2**30:.1f} GiB is free: a smaller --image-size, "
            "or fewer images (streamed folders do not take a pile)"
        )


class ImageProgress:
    """Progress through many images on ``stream`` (decoded, or another ``verb``): a line rewritten in
    place on a terminal, a plain line every tenth otherwise; silent for fewer than ``PROGRESS_FROM``.
    With ``total`` None (a pile read from an archive as it streams) a plain line every ``UNKNOWN_EVERY``."""

    UNKNOWN_EVERY = 5000

    def __init__(self, total: int | None, label: str, stream: TextIO | None = None, verb: str = "decoded") -> None:
        self.total, self.label, self.stream, self.verb = total, label, stream or sys.stderr, verb
        self.shown = total is None or total >= PROGRESS_FROM
        self.terminal = self.shown and self.stream.isatty()
        self.start = self.last = time.perf_counter()
        self.next_tenth = 1

    def update(self, done: int) -> None:
        if not self.shown:
            return
        now = time.perf_counter()
        if self.terminal and now - self.last >= 0.2:
            self.stream.write(f"\r{self._text(done, now)}")
        elif not self.terminal and self.total is None and done % self.UNKNOWN_EVERY == 0:
            self.stream.write(self._text(done, now) + "\n")
        elif not self.terminal and self.total is not None and done * 10 >= self.next_tenth * self.total:
            self.stream.write(self._text(done, now) + "\n")
            self.next_tenth = done * 10 // self.total + 1
        else:
            return
        self.stream.flush()
        self.last = now

    def close(self, done: int) -> None:
        if self.shown and (self.terminal or self.total is None):
            self.stream.write(("\r" if self.terminal else "") + self._text(done, time.perf_counter()) + "\n")
            self.stream.flush()

    def _text(self, done: int, now: float) -> str:
        rate = done / max(now - self.start, 1e-9)
        of = "" if self.total is None else f"/{self.total:,}"
        return f"{self.label}: {done:,}{of} images {self.verb} ({rate:,.0f} a second)"


def decode_pile(
    entries: Iterable[tuple[str, bytes | Path]], shape: tuple[int, int, int], source: str, stream: TextIO | None = None
) -> dict[str, Any]:
    """The pile's images as a uint8 ``N x C x H x W`` tensor of ``shape`` (``images``), their names
    (``ids``), and the unreadable files skipped (``unreadable``, ``first_unreadable``); ``source`` names
    the pile in messages. A list of entries is counted first (progress in tenths, memory checked before
    anything is decoded); any other iterable (an archive's members) is decoded as it streams, so that
    only the decoded images, at ``shape``, are held."""
    total = len(entries) if isinstance(entries, list) else None
    if total is not None:
        check_memory(total, shape, source)
    images, ids, unreadable = [], [], []
    progress = ImageProgress(total, f"{source}: unlabeled pile", stream)
    position = 0
    for position, (name, data) in enumerate(entries, start=1):
        try:
            images.append(decode_to_shape(name, data, shape, min(shape[1:])))
            ids.append(name)
        except DataError:
            unreadable.append(name)
        progress.update(position)
    progress.close(position)
    if not ids:
        found = f"none of its {position:,} files is a readable image" if position else "no files"
        raise DataError(f"{source}: an unlabeled pile with {found}")
    return {
        "images": torch.stack(images),
        "ids": ids,
        "unreadable": len(unreadable),
        "first_unreadable": unreadable[0] if unreadable else "",
    }


def warn_unreadable(pile: dict[str, Any], source: str) -> None:
    """One warning line for the unreadable files a pile skipped: their count and the first one."""
    if pile["unreadable"]:
        warnings.warn(
            f"{source}: {pile['unreadable']:,} unreadable file(s) skipped in the unlabeled pile, the first "
            f"{pile['first_unreadable']}",
            DataWarning,
            stacklevel=3,
        )


def _fingerprinted_files(path: Path) -> list[Path]:
    """What keys a pile's cache entry: the path itself, and each image a text file lists."""
    if path.is_file() and not is_archive(path):
        return [path, *(data for _, data in pile_entries(path) if isinstance(data, Path) and data.exists())]
    return [path]


def load_pile(paths: Sequence[str | Path], shape: tuple[int, int, int], use_cache: bool = True) -> dict[str, Any]:
    """The images of every ``--unlabeled`` path brought to ``shape`` (see ``decode_pile``), decoded once
    and cached, keyed by the files' sizes and times and the shape."""
    check_pile_paths(paths)
    paths = [Path(p) for p in paths]
    source = ", ".join(map(str, paths))
    files = [file for path in paths for file in _fingerprinted_files(path)]
    key = f"pile-{source_fingerprint(*files)[:24]}-{'x'.join(map(str, shape))}"

    def decode() -> dict[str, Any]:
        entries = (entry for path in paths for entry in pile_entries(path))
        streamed = any(is_archive(path) for path in paths)  # an archive's bytes are not held all at once
        return decode_pile(entries if streamed else list(entries), shape, source)

    pile = cached(key, decode) if use_cache else decode()
    warn_unreadable(pile, source)
    return pile
