"""Finding a user's own code by a ``"package.module:name"`` reference, for the plug-in registries
(architectures, methods, data formats)."""

from __future__ import annotations

import importlib
from typing import Any


def import_reference(reference: str, kind: str) -> Any:
    """The object ``"package.module:name"`` names, imported; ``ValueError`` naming the ``kind`` (e.g.
    "method") and what is wrong when it cannot be imported."""
    module_name, _, attribute = reference.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"cannot import {kind} {reference!r}: {error}") from None
