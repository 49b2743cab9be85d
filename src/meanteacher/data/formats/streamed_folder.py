"""An image folder too large for memory: its files indexed, and each batch decoded from them as the run
trains (``data.streaming``: the paper's Appendix B.2.2 views, in DataLoader workers)."""

from __future__ import annotations

from pathlib import Path

from ..streaming import FolderIndex, index_image_folder
from .base import DataFormat, LoadOptions


class StreamedFolder(DataFormat):
    name = "streamed-folder"
    description = "a folder of train/ and test/ (or val/) class folders, decoded batch by batch (ImageNet-style)"
    streamed = True

    @classmethod
    def detects(cls, path: Path) -> bool:
        return False

    @classmethod
    def load(cls, path: Path, options: LoadOptions) -> FolderIndex:
        if options.image_size is None:
            return index_image_folder(path)
        return index_image_folder(path, options.image_size)
