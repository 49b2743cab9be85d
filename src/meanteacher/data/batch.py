"""What the data produces and the methods consume: a minibatch, and the label of an unlabeled example."""

from __future__ import annotations

from dataclasses import dataclass

import torch

NO_LABEL = -1
"""Label value of an unlabeled example (or position); the classification cost ignores it."""


@dataclass
class Batch:
    """One minibatch: noised inputs for the student (and teacher), labels, dataset indices.

    ``labels`` is ``(N,)`` for classification or ``(N, *)`` for dense outputs (one label per pixel),
    with ``NO_LABEL`` where there is none; Supervised, Pi and Mean Teacher take either.
    """

    student_input: torch.Tensor
    labels: torch.Tensor
    teacher_input: torch.Tensor | None = None
    indices: torch.Tensor | None = None
    all_labeled: bool = False
    """Set by a caller that knows every row is labeled: spares the supervised loss a device-to-host check."""
