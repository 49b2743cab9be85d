"""FixMatch (Sohn et al., 2020): the student is its own teacher, through confident pseudo-labels."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..data.batch import NO_LABEL, Batch
from ..losses import classification_cost
from ..models import split_heads
from .base import Method, MethodSettings, Schedule, _at, pseudo_labels_for

LABELED_VIEWS = ("weak", "strong")


@dataclasses.dataclass(frozen=True)
class FixMatchOptions:
    """FixMatch's own setting (``--set fixmatch.labeled_view=strong``)."""

    labeled_view: str = "weak"
    """The view its labeled examples are classified on: the paper's "weak", or the student's "strong" (what
    supervised-only trains on with the strong view)."""

    def __post_init__(self) -> None:
        if self.labeled_view not in LABELED_VIEWS:
            raise ValueError(f"fixmatch.labeled_view must be 'weak' or 'strong', got {self.labeled_view!r}")


class FixMatch(Method):
    """FixMatch: the student's prediction on the weak view (``batch.teacher_input``) becomes a hard label
    where its confidence reaches the threshold, and the student is trained on it through its strong view
    (``batch.student_input``) with cross-entropy, averaged over the unlabeled examples and weighted by
    ``consistency`` (the paper's lambda_u, 1). The labeled examples are classified on their weak view, as in
    the paper, or on the strong one (``labeled_view``). ``consistency_type`` is ``"pseudo:<threshold>"``
    (the paper's 0.95) or ``"pseudo:adaptive"`` (FreeMatch's threshold). Like every method here it keeps an
    EMA of its weights for evaluation (the paper evaluates an EMA too)."""

    name = "fixmatch"
    display_name = "FixMatch"
    takes_pseudo_labels = needs_pseudo_labels = True
    auto_consistency_type = "pseudo:0.95"
    """The paper's threshold."""
    view_count = 2
    Options = FixMatchOptions

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        consistency: Schedule = 1.0,
        consistency_type: str = "pseudo:0.95",
        class_normalize: str = "labeled",
        ema_decay: Schedule = 0.999,
        ema_buffers: str = "average",
        labeled_view: str = "weak",
    ) -> None:
        super().__init__(model, class_normalize, ema_decay, ema_buffers)
        self.labeled_view = FixMatchOptions(labeled_view).labeled_view
        pseudo_labels = pseudo_labels_for(consistency_type, num_classes, model)
        if pseudo_labels is None:
            raise ValueError(
                f"fixmatch needs a pseudo-label consistency type ('pseudo:0.95', 'pseudo:adaptive'), not {consistency_type!r}"
            )
        self.pseudo_labels = pseudo_labels
        self.consistency = consistency

    @classmethod
    def from_config(
        cls,
        config: MethodSettings,
        model: nn.Module,
        consistency: Schedule,
        ema_decay: Schedule,
        num_examples: int,
        num_classes: int,
    ) -> Method:
        return cls(
            model,
            num_classes,
            consistency,
            config.consistency_type,
            config.class_normalize,
            ema_decay,
            labeled_view=cls.options(config).labeled_view,
        )

    def loss(self, batch: Batch, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        weak_logits, _ = split_heads(self.model(self._second_view(batch)))
        strong_logits, _ = split_heads(self.model(batch.student_input))
        labeled_logits = strong_logits if self.labeled_view == "strong" else weak_logits
        class_cost = classification_cost(labeled_logits, batch.labels, self.class_normalize)
        unlabeled = batch.labels == NO_LABEL
        pseudo_cost, pseudo_logs = self.pseudo_labels.cost(
            strong_logits, weak_logits.detach(), unlabeled, self._truth(batch), self.model.training
        )
        weight = _at(self.consistency, step)
        return class_cost + weight * pseudo_cost, {
            "class_cost": class_cost.detach(),
            "consistency_cost": pseudo_cost.detach(),
            "consistency_weight": torch.as_tensor(weight),
            **pseudo_logs,
        }
