"""Images sorted into class folders, in a folder or an archive (the layout ``data.folders`` parses)."""

from __future__ import annotations

from pathlib import Path

from ..dataset import Dataset
from ..folders import load_image_folder
from .base import DataFormat, LoadOptions


class ImageFolder(DataFormat):
    name = "image-folder"
    description = "images in class folders (train/, test/, unlabeled/), a folder or a .zip/.tar archive"
    catch_all = True

    @classmethod
    def detects(cls, path: Path) -> bool:
        return path.exists()

    @classmethod
    def load(cls, path: Path, options: LoadOptions) -> Dataset:
        return load_image_folder(path, options.test_path, image_size=options.image_size)
