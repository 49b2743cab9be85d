"""Costs of Mean Teacher and its relatives, for classification and dense outputs.

Every cost takes logits of shape ``(N, C)`` or ``(N, C, *)`` (class dimension 1, any trailing
dimensions: pixels, voxels, time steps). It first computes a cost per position, of shape ``(N, *)``,
then reduces: ``reduction="mean"`` averages over the positions (where ``mask`` is given, a weighted
average with the mask as weights, and 0 for an empty mask), ``"sum"`` sums them (weighted by the mask),
``"none"`` returns them (multiplied by the mask).

The consistency costs stop the gradient on the teacher side by default: the teacher is a target,
not a learner. The Pi model passes ``detach_teacher=False`` so that gradients flow through both passes.

Which weights the paper's values assume: its MSE consistency cost is averaged over the classes (as
:func:`softmax_mse` here) and over the batch, i.e. ``reduction="mean"``. A cost summed over the classes
is ``C`` times larger and needs a weight ``C`` times smaller for the same effect.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .data.batch import NO_LABEL

REDUCTIONS = ("mean", "sum", "none")

ConsistencyCost = Callable[..., torch.Tensor]


def _check_logits(logits: torch.Tensor, name: str) -> None:
    if logits.dim() < 2:
        raise ValueError(f"{name} must have shape (batch, classes, *), got {tuple(logits.shape)}")


def _check_logit_pair(first: torch.Tensor, second: torch.Tensor, first_name: str, second_name: str) -> None:
    _check_logits(first, first_name)
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


def reduce_cost(per_position: torch.Tensor, mask: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    """Reduce a cost per position ``(N, *)`` as described in the module docstring.

    The masked mean divides by the mask's sum clamped away from 0, so an empty mask gives 0 (no NaN)
    and nothing is read on the host.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if mask is not None:
        try:
            weights = torch.broadcast_to(mask, per_position.shape).to(per_position.dtype)
        except RuntimeError:
            raise ValueError(
                f"mask of shape {tuple(mask.shape)} does not broadcast to the positions {tuple(per_position.shape)}"
            ) from None
        per_position = per_position * weights
    if reduction == "none":
        return per_position
    total = per_position.sum()
    if reduction == "sum":
        return total
    if mask is None:
        return total / per_position.numel()
    return total / weights.sum().clamp_min(torch.finfo(per_position.dtype).tiny)


def softmax_mse(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    detach_teacher: bool = True,
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """``(softmax(student) - softmax(teacher))**2`` averaged over the classes at each position, then reduced."""
    _check_logit_pair(student_logits, teacher_logits, "student_logits", "teacher_logits")
    student = F.softmax(_full(student_logits), dim=1)
    teacher = F.softmax(_full(_target(teacher_logits, detach_teacher)), dim=1)
    if mask is None and reduction == "mean":  # the mean over positions of class means: one fused call
        return F.mse_loss(student, teacher, reduction="mean")
    return reduce_cost(((student - teacher) ** 2).mean(dim=1), mask, reduction)


def softmax_kl(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    detach_teacher: bool = True,
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """KL(teacher || student), summed over the classes at each position, then reduced."""
    _check_logit_pair(student_logits, teacher_logits, "student_logits", "teacher_logits")
    student_log = F.log_softmax(_full(student_logits), dim=1)
    teacher_log = F.log_softmax(_full(_target(teacher_logits, detach_teacher)), dim=1)
    per_position = (teacher_log.exp() * (teacher_log - student_log)).sum(dim=1)
    return reduce_cost(per_position, mask, reduction)


def tau_consistency(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    tau: float,
    detach_teacher: bool = True,
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """The paper's Appendix C family ``C_tau(p, q) = Z_tau * KL(p_tau || q_tau)`` at each position, then reduced.

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
    kl = (teacher * (teacher.log() - student.log())).sum(dim=1)
    return reduce_cost(2.0 / (classes**2 * tau**2) * kl, None if mask is None else mask.double(), reduction).to(
        _full(student_logits).dtype
    )


def logit_distance(
    logits_a: torch.Tensor,
    logits_b: torch.Tensor,
    classes: str = "mean",
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Squared distance between two heads' logits at each position, then reduced; gradients reach
    both (the two-head trick). ``classes="mean"`` averages over the classes (the reference PyTorch
    code, the paper's ResNet runs); ``"sum"`` sums over them (the TensorFlow code behind Figure 4(e)),
    which is ``C`` times larger for ``C`` classes."""
    _check_logit_pair(logits_a, logits_b, "logits_a", "logits_b")
    if classes not in ("mean", "sum"):
        raise ValueError(f"classes must be 'mean' or 'sum', got {classes!r}")
    if mask is None and reduction == "mean":
        distance = F.mse_loss(_full(logits_a), _full(logits_b), reduction="mean")
        return distance * logits_a.shape[1] if classes == "sum" else distance
    squared = (_full(logits_a) - _full(logits_b)) ** 2
    return reduce_cost(squared.mean(dim=1) if classes == "mean" else squared.sum(dim=1), mask, reduction)


def classification_cost(
    logits: torch.Tensor,
    labels: torch.Tensor,
    normalize: str = "batch",
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Cross-entropy at every labeled position; positions labeled ``NO_LABEL`` (-1) cost 0.

    ``labels`` has the logits' shape without the class dimension: ``(N,)`` or ``(N, *)``. With
    ``reduction="mean"``, ``normalize="batch"`` divides the summed cost by all positions (the reference
    code's behaviour, so few labels per batch give a small cost; with a mask, by the mask's sum) and
    ``"labeled"`` by the labeled positions (with a mask, by their weights).
    """
    _check_logits(logits, "logits")
    if labels.shape != logits.shape[:1] + logits.shape[2:]:
        expected = (logits.shape[0], *logits.shape[2:])
        raise ValueError(
            f"labels must have shape {expected} to match logits {tuple(logits.shape)}, got {tuple(labels.shape)}"
        )
    if normalize not in ("batch", "labeled"):
        raise ValueError(f"normalize must be 'batch' or 'labeled', got {normalize!r}")
    if mask is None and reduction == "mean":
        total = F.cross_entropy(_full(logits), labels, ignore_index=NO_LABEL, reduction="sum")
        return total / (labels.numel() if normalize == "batch" else (labels != NO_LABEL).sum().clamp(min=1))
    per_position = F.cross_entropy(_full(logits), labels, ignore_index=NO_LABEL, reduction="none")
    if normalize == "labeled" and reduction == "mean":
        labeled = labels != NO_LABEL
        mask = labeled if mask is None else labeled * mask
    return reduce_cost(per_position, mask, reduction)


def pseudo_label_cost(
    student_logits: torch.Tensor,
    pseudo_labels: torch.Tensor,
    confident: torch.Tensor,
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Cross-entropy of the student to hard ``pseudo_labels`` ``(N, *)`` where ``confident`` (bool, same
    shape) and 0 elsewhere, then reduced: with ``mask`` (e.g. the unlabeled positions) the mean is over
    the masked positions, confident or not, as FixMatch divides by all its unlabeled images."""
    _check_logits(student_logits, "student_logits")
    if (
        pseudo_labels.shape != student_logits.shape[:1] + student_logits.shape[2:]
        or confident.shape != pseudo_labels.shape
    ):
        raise ValueError(
            f"pseudo_labels {tuple(pseudo_labels.shape)} and confident {tuple(confident.shape)} must have the "
            f"student's shape without the class dimension, {(student_logits.shape[0], *student_logits.shape[2:])}"
        )
    per_position = F.cross_entropy(_full(student_logits), pseudo_labels, reduction="none")
    return reduce_cost(per_position * confident.to(per_position.dtype), mask, reduction)


def entropy_cost(logits: torch.Tensor, mask: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    """Entropy of the softmax prediction at each position, then reduced (entropy minimisation, as in VAT+EntMin)."""
    _check_logits(logits, "logits")
    log_p = F.log_softmax(_full(logits), dim=1)
    return reduce_cost(-(log_p.exp() * log_p).sum(dim=1), mask, reduction)


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

        def cost(
            student_logits: torch.Tensor, teacher_logits: torch.Tensor, detach_teacher: bool = True, **options
        ) -> torch.Tensor:
            return tau_consistency(student_logits, teacher_logits, tau, detach_teacher, **options)

        return cost
    raise ValueError(f"unknown consistency type {name!r}; expected 'mse', 'kl' or 'tau:<value in (0, 1]>'")
