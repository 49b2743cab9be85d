"""Costs of Mean Teacher and its relatives.

Every consistency cost takes ``(student_logits, teacher_logits)`` of shape ``(batch, classes)``
and, by default, stops the gradient on the teacher side: the teacher is a target, not a learner.
The Pi model passes ``detach_teacher=False`` so that gradients flow through both passes.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

NO_LABEL = -1
"""Label value of an unlabeled example; the classification cost ignores it."""

ConsistencyCost = Callable[..., torch.Tensor]


def _check_logit_pair(first: torch.Tensor, second: torch.Tensor, first_name: str, second_name: str) -> None:
    if first.dim() != 2:
        raise ValueError(f"{first_name} must have shape (batch, classes), got {tuple(first.shape)}")
    if first.shape != second.shape:
        raise ValueError(
            f"{first_name} and {second_name} must have the same shape, "
            f"got {tuple(first.shape)} and {tuple(second.shape)}"
        )


def _target(logits: torch.Tensor, detach: bool) -> torch.Tensor:
    return logits.detach() if detach else logits


def _full(logits: torch.Tensor) -> torch.Tensor:
    """Costs are computed in float32 at least: half-precision logits are promoted, float64 kept."""
    return logits if logits.dtype == torch.float64 else logits.float()


def softmax_mse(student_logits: torch.Tensor, teacher_logits: torch.Tensor, detach_teacher: bool = True) -> torch.Tensor:
    """Mean over batch and classes of ``(softmax(student) - softmax(teacher))**2``."""
    _check_logit_pair(student_logits, teacher_logits, "student_logits", "teacher_logits")
    student = F.softmax(_full(student_logits), dim=1)
    teacher = F.softmax(_full(_target(teacher_logits, detach_teacher)), dim=1)
    return F.mse_loss(student, teacher, reduction="mean")


def softmax_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, detach_teacher: bool = True) -> torch.Tensor:
    """KL(teacher || student), summed over classes and averaged over the batch."""
    _check_logit_pair(student_logits, teacher_logits, "student_logits", "teacher_logits")
    student_log = F.log_softmax(_full(student_logits), dim=1)
    teacher_log = F.log_softmax(_full(_target(teacher_logits, detach_teacher)), dim=1)
    return F.kl_div(student_log, teacher_log, reduction="batchmean", log_target=True)


def tau_consistency(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, tau: float, detach_teacher: bool = True
) -> torch.Tensor:
    """The paper's Appendix C family ``C_tau(p, q) = Z_tau * KL(p_tau || q_tau)``, mean over the batch.

    ``p`` is the teacher's softmax, ``q`` the student's, ``p_tau = tau * p + (1 - tau) / N`` and
    ``Z_tau = 2 / (N**2 * tau**2)`` for ``N`` classes. ``tau = 1`` is KL scaled by ``2 / N**2``;
    as ``tau -> 0`` the cost approaches :func:`softmax_mse`.
    """
    if not 0.0 < tau <= 1.0:
        raise ValueError(f"tau must be in (0, 1], got {tau}")
    _check_logit_pair(student_logits, teacher_logits, "student_logits", "teacher_logits")
    classes = student_logits.shape[1]
    uniform = (1.0 - tau) / classes
    student = tau * F.softmax(student_logits.double(), dim=1) + uniform
    teacher = tau * F.softmax(_target(teacher_logits, detach_teacher).double(), dim=1) + uniform
    kl = (teacher * (teacher.log() - student.log())).sum(dim=1).mean()
    return (2.0 / (classes**2 * tau**2) * kl).float()


def logit_distance(logits_a: torch.Tensor, logits_b: torch.Tensor, classes: str = "mean") -> torch.Tensor:
    """Squared distance between two heads' logits, averaged over the batch; gradients reach both (the
    two-head trick). ``classes="mean"`` averages over the classes (the reference PyTorch code, the
    paper's ResNet runs); ``"sum"`` sums over them (the TensorFlow code behind Figure 4(e)), which is
    ``C`` times larger for ``C`` classes."""
    _check_logit_pair(logits_a, logits_b, "logits_a", "logits_b")
    if classes not in ("mean", "sum"):
        raise ValueError(f"classes must be 'mean' or 'sum', got {classes!r}")
    distance = F.mse_loss(_full(logits_a), _full(logits_b), reduction="mean")
    return distance * logits_a.shape[1] if classes == "sum" else distance


def classification_cost(logits: torch.Tensor, labels: torch.Tensor, normalize: str = "batch") -> torch.Tensor:
    """Cross-entropy over the labeled examples; examples labeled ``NO_LABEL`` (-1) are ignored.

    ``normalize="batch"`` divides the summed cost by the whole minibatch size (the reference code's
    behaviour, so few labels per batch give a small cost); ``"labeled"`` divides by the labeled count.
    """
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (batch, classes), got {tuple(logits.shape)}")
    if labels.dim() != 1 or labels.shape[0] != logits.shape[0]:
        raise ValueError(
            f"labels must have shape ({logits.shape[0]},) to match logits {tuple(logits.shape)}, "
            f"got {tuple(labels.shape)}"
        )
    if normalize not in ("batch", "labeled"):
        raise ValueError(f"normalize must be 'batch' or 'labeled', got {normalize!r}")
    total = F.cross_entropy(_full(logits), labels, ignore_index=NO_LABEL, reduction="sum")
    if normalize == "batch":
        return total / logits.shape[0]
    labeled = (labels != NO_LABEL).sum().clamp(min=1)
    return total / labeled


def consistency_cost(name: str) -> ConsistencyCost:
    """Look up a consistency cost by name: ``"mse"``, ``"kl"`` or ``"tau:<value>"`` (e.g. ``"tau:0.5"``)."""
    if name == "mse":
        return softmax_mse
    if name == "kl":
        return softmax_kl
    if name.startswith("tau:"):
        try:
            tau = float(name[4:])
        except ValueError:
            raise ValueError(f"consistency type {name!r}: tau must be a number, e.g. 'tau:0.5'") from None
        if not 0.0 < tau <= 1.0:
            raise ValueError(f"consistency type {name!r}: tau must be in (0, 1]")

        def cost(student_logits: torch.Tensor, teacher_logits: torch.Tensor, detach_teacher: bool = True) -> torch.Tensor:
            return tau_consistency(student_logits, teacher_logits, tau, detach_teacher)

        return cost
    raise ValueError(f"unknown consistency type {name!r}; expected 'mse', 'kl' or 'tau:<value in (0, 1]>'")
