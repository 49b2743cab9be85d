"""Data formats as plug-ins: one file per format (see ``base`` for what a format is).

Built in, and tried in this order: the handwritten digits, CIFAR pickles, SVHN .mat files, idx files and
image folders; a streamed folder (too large for memory) is asked for by name. A format registered with
``register_format`` is tried before them; ``format_class`` finds one by name or as ``package.module:Class``.
"""

from .base import FORMATS, DataFormat, LoadOptions, detect_format, format_class, is_streamed, register_format
from .cifar import CifarPickles
from .digits import Digits
from .idx import IdxFiles
from .image_folder import ImageFolder
from .streamed_folder import StreamedFolder
from .svhn import SvhnMat

BUILT_IN = (Digits, CifarPickles, SvhnMat, IdxFiles, ImageFolder, StreamedFolder)
"""The built-in formats, in the order they are tried (a streamed one only when named)."""

for _format in reversed(BUILT_IN):
    register_format(_format)

__all__ = [
    "BUILT_IN",
    "FORMATS",
    "DataFormat",
    "LoadOptions",
    "detect_format",
    "format_class",
    "is_streamed",
    "register_format",
]
