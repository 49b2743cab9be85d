"""Confident pseudo-labels: a teacher's prediction on the weak view becomes a hard label where its
confidence reaches a threshold, and the student's strong view is trained on it with cross-entropy
(FixMatch, Sohn et al. 2020; with an EMA teacher, Unbiased Teacher, Liu et al. 2021).

The threshold is fixed (FixMatch's 0.95) or self-adaptive (FreeMatch, Wang et al. 2023): a global
confidence ``tau``, the EMA of the teacher's mean top probability on unlabeled images, scaled per class
by the EMA of its mean probability of that class over the largest one. It starts at ``1 / C`` and
rises as the teacher grows sure, so a short run gets pseudo-labels from its first steps.

    pseudo = PseudoLabels.parse("pseudo:0.95", num_classes=10)
    cost, logs = pseudo.cost(student_logits, teacher_logits, unlabeled=labels == NO_LABEL)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .data.batch import NO_LABEL
from .losses import pseudo_label_cost

PREFIX = "pseudo:"
ADAPTIVE = "adaptive"
ADAPTIVE_MOMENTUM = 0.999
"""FreeMatch's EMA momentum for the self-adaptive threshold."""


def is_pseudo_label_type(consistency_type: str) -> bool:
    """Whether a consistency type names the pseudo-label cost (``pseudo:<threshold>`` or ``pseudo:adaptive``)."""
    return consistency_type.startswith(PREFIX)


def parse_threshold(consistency_type: str) -> float | None:
    """The fixed threshold of ``pseudo:<value in (0, 1]>``, or ``None`` for ``pseudo:adaptive``."""
    value = consistency_type.removeprefix(PREFIX)
    if value == ADAPTIVE:
        return None
    try:
        threshold = float(value)
    except ValueError:
        raise ValueError(
            f"consistency type {consistency_type!r}: expected 'pseudo:<threshold in (0, 1]>' or 'pseudo:adaptive'"
        ) from None
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"consistency type {consistency_type!r}: the threshold must be in (0, 1]")
    return threshold


class SelfAdaptiveThreshold:
    """FreeMatch's self-adaptive threshold, one per class, held in device tensors updated in place (no
    host read: a step that updates it can be captured in a CUDA graph)."""

    def __init__(
        self, num_classes: int, momentum: float = ADAPTIVE_MOMENTUM, device: torch.device | str = "cpu"
    ) -> None:
        self.momentum = momentum
        self.confidence = torch.full((), 1.0 / num_classes, device=device)
        """``tau``: EMA of the mean top probability over unlabeled images."""
        self.class_confidence = torch.full((num_classes,), 1.0 / num_classes, device=device)
        """EMA of the mean probability of each class over unlabeled images."""

    def update(self, probabilities: torch.Tensor, weights: torch.Tensor) -> None:
        """Move both EMAs towards this batch: ``probabilities`` ``(P, C)``, ``weights`` ``(P,)`` (1 for an
        unlabeled position). A batch without unlabeled positions leaves them as they are."""
        weights = weights.to(probabilities.dtype)
        count = weights.sum()
        scale = 1.0 / count.clamp_min(1.0)
        mean_top = (probabilities.amax(dim=1) * weights).sum() * scale
        mean_class = (probabilities * weights[:, None]).sum(dim=0) * scale
        keep = torch.where(count > 0, self.momentum, 1.0)
        self.confidence.mul_(keep).add_((1.0 - keep) * mean_top)
        self.class_confidence.mul_(keep).add_((1.0 - keep) * mean_class)

    def thresholds(self) -> torch.Tensor:
        """The threshold of each class ``(C,)``: ``tau * p_c / max_c p_c``."""
        return self.confidence * self.class_confidence / self.class_confidence.amax()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"confidence": self.confidence.clone(), "class_confidence": self.class_confidence.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.confidence.copy_(state["confidence"])
        self.class_confidence.copy_(state["class_confidence"])


class PseudoLabels:
    """The pseudo-label consistency cost with its threshold (``threshold=None``: self-adaptive)."""

    def __init__(self, threshold: float | None, num_classes: int, device: torch.device | str = "cpu") -> None:
        self.threshold = threshold
        self.adaptive = SelfAdaptiveThreshold(num_classes, device=device) if threshold is None else None
        self._fixed = (
            None if threshold is None else torch.tensor(threshold, device=device)
        )  # made once: no copy per step

    @classmethod
    def parse(cls, consistency_type: str, num_classes: int, device: torch.device | str = "cpu") -> PseudoLabels:
        """From a consistency type, ``pseudo:0.95`` or ``pseudo:adaptive``."""
        return cls(parse_threshold(consistency_type), num_classes, device)

    def cost(
        self,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor,
        unlabeled: torch.Tensor,
        truth: torch.Tensor | None = None,
        update: bool = True,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The mean over the ``unlabeled`` positions of the student's cross-entropy to the teacher's hard
        label where the teacher is confident (``update``: an adaptive threshold first moves towards this
        batch, as FreeMatch's does), and what to watch: the share of unlabeled positions above the
        threshold, the mean threshold and, where ``truth`` (the hidden labels, ``NO_LABEL`` where none is
        known) is given, the shares of unlabeled positions whose pseudo-label was checked and right."""
        probabilities = F.softmax(teacher_logits.detach().float(), dim=1)
        confidence, labels = probabilities.max(dim=1)
        weights = unlabeled.to(probabilities.dtype)
        if self.adaptive is not None:
            if update:
                classes = probabilities.shape[1]
                self.adaptive.update(probabilities.movedim(1, -1).reshape(-1, classes), weights.reshape(-1))
            per_class = self.adaptive.thresholds()
            threshold = per_class[labels]
            mean_threshold = per_class.mean()
        else:
            threshold = mean_threshold = self._fixed
        confident = confidence >= threshold
        cost = pseudo_label_cost(student_logits, labels, confident, mask=weights)
        scale = 1.0 / weights.sum().clamp_min(1.0)
        kept = confident.to(weights.dtype) * weights
        logs = {"pseudo_mask_rate": kept.sum() * scale, "pseudo_threshold": mean_threshold.detach()}
        if truth is not None:
            checked = kept * (truth != NO_LABEL).to(weights.dtype)
            logs["pseudo_checked_rate"] = checked.sum() * scale
            logs["pseudo_correct_rate"] = (checked * (labels == truth).to(weights.dtype)).sum() * scale
        return cost, logs

    def state_dict(self) -> dict[str, Any]:
        return {} if self.adaptive is None else self.adaptive.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.adaptive is not None and state:
            self.adaptive.load_state_dict(state)
