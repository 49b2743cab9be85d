"""Supervised-only, Pi model, Mean Teacher, Temporal Ensembling, VAT, Mean Teacher + VAT and FixMatch behind one contract.

A method wraps a student model. Each training step the caller builds a :class:`Batch` (``view_count``
independently noised copies of the inputs, labels with ``NO_LABEL`` for unlabeled examples), calls
``total, logs = method.loss(batch, step)``, back-propagates ``total``, steps the optimizer and then
calls ``method.after_step(step)`` with the same 0-based step. ``end_epoch()`` marks the end of a pass over the unlabeled data.
``Method.from_config`` builds each method from a run's configuration (``METHODS[name].from_config``);
``register_method`` adds one defined elsewhere, and ``method_class`` finds a method by name or as
``package.module:Class``.
"""

from ..plugins import import_reference
from .base import Batch, Method, MethodSettings, PiModel, Schedule, Supervised
from .fixmatch import FixMatch
from .mean_teacher import MeanTeacher
from .temporal import TemporalEnsembling
from .vat import VAT, MeanTeacherVAT

METHODS: dict[str, type[Method]] = {
    cls.name: cls for cls in (Supervised, PiModel, MeanTeacher, TemporalEnsembling, VAT, MeanTeacherVAT, FixMatch)
}
"""Every method by its name (``config.method``): what a run, its settings' checks, its automatic values
and its reports know of a method is its class's (``Method``'s traits)."""


def method_class(name: str) -> type[Method]:
    """The method ``name`` names: a registered one, or ``"package.module:Class"`` (a ``Method`` subclass in
    the user's own code, imported). Raises ``ValueError`` naming what is wrong."""
    if name in METHODS:
        return METHODS[name]
    if ":" not in name:
        raise ValueError(f"unknown method {name!r}; expected one of: {', '.join(METHODS)}, or package.module:Class")
    cls = import_reference(name, "method")
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise ValueError(f"method {name!r} is not a subclass of meanteacher.methods.Method")
    return cls


def register_method(cls: type[Method]) -> type[Method]:
    """Make a method known by its ``name`` to runs, settings and the command line (a class decorator)."""
    if cls.name in METHODS and METHODS[cls.name] is not cls:
        raise ValueError(f"a method named {cls.name!r} is registered already")
    METHODS[cls.name] = cls
    return cls


__all__ = [
    "METHODS",
    "VAT",
    "Batch",
    "FixMatch",
    "MeanTeacher",
    "MeanTeacherVAT",
    "Method",
    "MethodSettings",
    "PiModel",
    "Schedule",
    "Supervised",
    "TemporalEnsembling",
    "method_class",
    "register_method",
]
