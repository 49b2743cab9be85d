"""Supervised-only, Pi model, Mean Teacher, Temporal Ensembling, VAT, Mean Teacher + VAT and FixMatch behind one contract.

A method wraps a student model. Each training step the caller builds a :class:`Batch` (``view_count``
independently noised copies of the inputs, labels with ``NO_LABEL`` for unlabeled examples), calls
``total, logs = method.loss(batch, step)``, back-propagates ``total``, steps the optimizer and then
calls ``method.after_step(step)``. ``end_epoch()`` marks the end of a pass over the unlabeled data.
``Method.from_config`` builds each method from a run's configuration (``METHODS[name].from_config``).
"""

from .base import Batch, Method, PiModel, Schedule, Supervised
from .fixmatch import FixMatch
from .mean_teacher import MeanTeacher
from .temporal import TemporalEnsembling
from .vat import VAT, MeanTeacherVAT

METHODS: dict[str, type[Method]] = {
    cls.name: cls for cls in (Supervised, PiModel, MeanTeacher, TemporalEnsembling, VAT, MeanTeacherVAT, FixMatch)
}
"""Every method by its name (``config.method``; ``config.METHOD_NAMES`` lists the same names)."""

__all__ = [
    "METHODS",
    "VAT",
    "Batch",
    "FixMatch",
    "MeanTeacher",
    "MeanTeacherVAT",
    "Method",
    "PiModel",
    "Schedule",
    "Supervised",
    "TemporalEnsembling",
]
