"""Decode cache: decoded datasets saved once and loaded fast the next time."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..files import atomic_torch_save


def cache_dir() -> Path:
    """``$MEANTEACHER_CACHE``, else ``$XDG_CACHE_HOME/meanteacher``, else ``~/.cache/meanteacher``."""
    if os.environ.get("MEANTEACHER_CACHE"):
        return Path(os.environ["MEANTEACHER_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "meanteacher"


def cached(key: str, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The dict stored under ``key``, or ``build()``'s result, saved atomically for next time.

    ``key`` must change when the source changes (callers fold in sizes and modification times).
    An unreadable cache entry is rebuilt.
    """
    path = cache_dir() / f"{key}.pt"
    if path.is_file():
        try:
            return torch.load(path, weights_only=True)
        except Exception:  # noqa: BLE001 - a damaged cache entry is rebuilt, never fatal
            path.unlink(missing_ok=True)
    value = build()
    try:
        atomic_torch_save(value, path)
    except OSError:
        pass  # a read-only cache location only costs speed
    return value
