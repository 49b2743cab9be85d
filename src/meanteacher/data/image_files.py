"""Reading image files: the entries of a folder or an archive, one image decoded and brought down to a
size, and a fingerprint of the sources that keys the decode cache."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError


def folder_entries(root: Path, read: bool = True) -> Iterator[tuple[str, bytes | Path | None]]:
    """(relative name, bytes) of every file below ``root`` (its path instead with ``read=False``);
    folders come as (name, None)."""
    for entry in sorted(root.rglob("*")):
        name = entry.relative_to(root).as_posix()
        if entry.is_file():
            yield name, entry.read_bytes() if read else entry
        elif entry.is_dir():
            yield name, None


def archive_entries(path: Path) -> Iterator[tuple[str, bytes | None]]:
    """Like ``folder_entries`` for the members of a .tar, .tar.gz or .zip archive."""
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


def fit_square(image: Any, size: int) -> Any:
    """A PIL image with its shorter side brought down to ``size`` (bilinear, antialiased) and its centre
    cropped to ``size`` x ``size``; an image whose shorter side is ``size`` or less is returned as it is."""
    from PIL import Image

    width, height = image.size
    if min(width, height) <= size:
        return image
    scale = size / min(width, height)
    width, height = max(size, round(width * scale)), max(size, round(height * scale))
    image = image.resize((width, height), Image.BILINEAR, reducing_gap=3.0)
    left, top = (width - size) // 2, (height - size) // 2
    return image.crop((left, top, left + size, top + size))


def decode_image(name: str, data: bytes | Path, image_size: int | None = None) -> tuple[np.ndarray, bool]:
    """An image file (its bytes or its path) as an ``H x W`` or ``H x W x 3`` uint8 array, and whether it
    was brought down to ``image_size`` (see ``fit_square``). A large JPEG is decoded at a reduced scale
    first, so a 12-megapixel photo never takes its full size in memory."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
            if image_size is not None and image.format == "JPEG" and min(image.size) > image_size:
                scale = image_size / min(image.size)
                image.draft(
                    "RGB" if image.mode != "L" else "L", (round(image.size[0] * scale), round(image.size[1] * scale))
                )
            image.load()
            if image.mode not in ("L", "RGB"):
                image = image.convert("RGBA" if "A" in image.mode else "RGB").convert("RGB")
            fitted = fit_square(image, image_size) if image_size is not None else image
            return np.asarray(fitted), fitted is not image
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise DataError(f"{name}: not a readable image ({error})") from None


def decode_to_shape(
    name: str, data: bytes | Path, shape: tuple[int, int, int], image_size: int | None = None
) -> torch.Tensor:
    """An image file (its bytes or its path) as a uint8 ``C x H x W`` tensor of ``shape``: converted to its
    channels, first brought down to ``image_size`` (see ``fit_square``; a large JPEG decoded at a reduced
    scale), then resized to ``H x W`` where it differs."""
    from PIL import Image, UnidentifiedImageError

    channels, height, width = shape
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
            if image_size is not None and image.format == "JPEG" and min(image.size) > image_size:
                scale = image_size / min(image.size)
                image.draft(
                    "L" if channels == 1 else "RGB", (round(image.size[0] * scale), round(image.size[1] * scale))
                )
            image = image.convert("L" if channels == 1 else "RGB")
            if image_size is not None:
                image = fit_square(image, image_size)
            if image.size != (width, height):
                image = image.resize((width, height), Image.BILINEAR)
            array = np.asarray(image)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise DataError(f"{name}: not a readable image ({error})") from None
    tensor = torch.from_numpy(array.copy())
    return tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1).contiguous()


def source_fingerprint(*paths: Path | None) -> str:
    """A digest of the paths and of the size and modification time of every file below them."""
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
