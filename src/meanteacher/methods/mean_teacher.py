"""Mean Teacher: consistency with an EMA teacher that sees its own noised view."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..data.batch import NO_LABEL, Batch
from ..losses import classification_cost, logit_distance
from ..models import split_heads
from ..teacher import EMATeacher
from .base import Method, MethodSettings, Schedule, _at, _ConsistencyMethod, pseudo_labels_for


class MeanTeacher(_ConsistencyMethod):
    """Mean Teacher: consistency with an EMA teacher that sees its own noised view.

    ``ema_decay`` may be a schedule (e.g. 0.99 during ramp-up, 0.999 after). With a two-head model,
    the consistency cost is applied to the second head and ``logit_distance`` weights the squared
    distance between the two heads' logits (averaged or, with ``logit_distance_classes="sum"``, summed
    over classes). ``consistency_on_labeled=False`` restricts consistency
    to the unlabeled examples (the paper applies it to all). The teacher is the method's EMA
    (``self.teacher is self.ema``); ``ema_buffers`` is its BatchNorm policy.

    With ``consistency_type="pseudo:<threshold>"`` or ``"pseudo:adaptive"`` (``num_classes`` needed for the
    adaptive one) the consistency cost is the student's cross-entropy to the teacher's confident hard
    labels on the unlabeled examples (``meanteacher.pseudo_labels``), FixMatch's cost with an EMA teacher.
    """

    name = "mean-teacher"
    display_name = "Mean Teacher"
    takes_pseudo_labels = True
    ema_is_teacher = True
    view_count = 2

    def __init__(
        self,
        model: nn.Module,
        consistency: Schedule = 1.0,
        consistency_type: str = "mse",
        ema_decay: Schedule = 0.999,
        logit_distance: float = 0.0,
        consistency_on_labeled: bool = True,
        ema_buffers: str = "own",
        class_normalize: str = "batch",
        logit_distance_classes: str = "mean",
        num_classes: int = 0,
    ) -> None:
        super().__init__(
            model, consistency, consistency_type, class_normalize, ema_decay, ema_buffers, consistency_on_labeled
        )
        self.pseudo_labels = pseudo_labels_for(consistency_type, num_classes, model)
        self.logit_distance = logit_distance
        self.logit_distance_classes = logit_distance_classes
        self.teacher_forward: Callable[[torch.Tensor], Any] = self.ema.module
        """Calls the teacher network (a ``torch.compile``'d one after ``compile()``)."""

    @property
    def teacher(self) -> EMATeacher:
        """The teacher: the method's EMA of the student."""
        return self.ema

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
            consistency,
            config.consistency_type,
            ema_decay,
            config.logit_distance,
            config.consistency_on_labeled,
            config.ema_buffers,
            config.class_normalize,
            config.logit_distance_classes,
            num_classes,
            **dataclasses.asdict(cls.options(config)),
        )

    def compile(self) -> None:
        self.teacher_forward = torch.compile(self.ema.module)

    def loss(self, batch: Batch, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        teacher_input = self._second_view(batch)
        student_output = self.model(batch.student_input)
        self.teacher.module.train(self.model.training)
        with torch.no_grad():
            teacher_logits, _ = split_heads(self.teacher_forward(teacher_input))
        return self._costs(student_output, teacher_logits, batch.labels, step, self._truth(batch))

    def _costs(
        self,
        student_output: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
        teacher_logits: torch.Tensor,
        labels: torch.Tensor,
        step: int,
        truth: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The costs given the student's output (one or two heads) and the teacher's logits (``truth``: the
        hidden labels, for the pseudo-labels' accuracy)."""
        class_logits, cons_logits = split_heads(student_output)
        class_cost = classification_cost(class_logits, labels, self.class_normalize)
        pseudo_logs: dict[str, torch.Tensor] = {}
        if self.pseudo_labels is not None:
            cons_cost, pseudo_logs = self.pseudo_labels.cost(
                cons_logits, teacher_logits, labels == NO_LABEL, truth, self.model.training
            )
        else:
            cons_cost = self._consistency(cons_logits, teacher_logits, labels)
        weight = _at(self.consistency, step)
        total = class_cost + weight * cons_cost
        logs = {
            "class_cost": class_cost.detach(),
            "teacher_class_cost": classification_cost(teacher_logits, labels, self.class_normalize).detach(),
            "consistency_cost": cons_cost.detach(),
            "consistency_weight": torch.as_tensor(weight),
            **pseudo_logs,
        }
        if self.logit_distance > 0:
            distance = logit_distance(class_logits, cons_logits, self.logit_distance_classes)
            total = total + self.logit_distance * distance
            logs["logit_distance"] = distance.detach()
        return total, logs
