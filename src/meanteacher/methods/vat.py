"""Virtual Adversarial Training as a baseline, and Mean Teacher with a virtual adversarial student view."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from ..adversarial import untouched, vat_cost, vat_perturbation
from ..data.batch import Batch
from ..losses import classification_cost, entropy_cost
from ..models import split_heads
from .base import Method, MethodSettings, Schedule, _at
from .mean_teacher import MeanTeacher


@dataclasses.dataclass(frozen=True)
class PerturbationOptions:
    """The virtual adversarial perturbation's settings (``--set mean-teacher-vat.eps=...``)."""

    eps: float = 8.0
    """The perturbation's L2 norm."""
    xi: float = 1e-6
    """The finite-difference step of the power iteration."""
    power_iterations: int = 1

    def __post_init__(self) -> None:
        if self.eps < 0 or self.xi <= 0 or self.power_iterations < 1:
            raise ValueError("eps must be >= 0, xi > 0 and power_iterations >= 1")


@dataclasses.dataclass(frozen=True)
class VATOptions(PerturbationOptions):
    """VAT's own settings (``--set vat.eps=...``)."""

    entropy_weight: float = 0.0
    """Weight of entropy minimisation on top (VAT+EntMin); 0: none."""


class VAT(Method):
    """Virtual Adversarial Training (Miyato et al. 2018) as a Pi-like baseline: the consistency target
    is the model's own (detached) prediction, the perturbation the virtual adversarial one instead of a
    second random view. ``consistency`` weights the VAT cost (a KL divergence); ``entropy_weight`` adds
    entropy minimisation (VAT+EntMin). Each power iteration costs one more forward and backward pass."""

    name = "vat"
    display_name = "VAT"
    capturable = False
    """Its passes save and restore the random state."""
    consistency_is_cross_entropy = True
    Options = VATOptions

    def __init__(
        self,
        model: nn.Module,
        consistency: Schedule = 1.0,
        eps: float = 8.0,
        xi: float = 1e-6,
        power_iterations: int = 1,
        entropy_weight: float = 0.0,
        class_normalize: str = "batch",
        ema_decay: Schedule = 0.999,
    ) -> None:
        super().__init__(model, class_normalize, ema_decay)
        self.consistency, self.eps, self.xi, self.power_iterations = consistency, eps, xi, power_iterations
        self.entropy_weight = entropy_weight

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
        options = cls.options(config)
        return cls(
            model,
            consistency,
            options.eps,
            options.xi,
            options.power_iterations,
            options.entropy_weight,
            config.class_normalize,
            ema_decay,
        )

    def loss(self, batch: Batch, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        class_logits, _ = split_heads(self.model(batch.student_input))
        class_cost = classification_cost(class_logits, batch.labels, self.class_normalize)
        vat = vat_cost(self.model, batch.student_input, class_logits, self.eps, self.xi, self.power_iterations)
        weight = _at(self.consistency, step)
        total = class_cost + weight * vat
        logs = {
            "class_cost": class_cost.detach(),
            "consistency_cost": vat.detach(),
            "consistency_weight": torch.as_tensor(weight),
        }
        if self.entropy_weight > 0:
            entropy = entropy_cost(class_logits)
            total = total + self.entropy_weight * entropy
            logs["entropy"] = entropy.detach()
        return total, logs


class MeanTeacherVAT(MeanTeacher):
    """Mean Teacher whose student sees a virtual adversarial view: the student's input is moved by
    ``r_adv``, the direction (of norm ``eps``) in which the student's prediction departs most from the
    teacher's, and the consistency cost then pulls the student towards the teacher there.

    The perturbation replaces nothing and adds no cost term: it sharpens the student's view, the way
    VAT's replaces the Pi model's second random view. Its passes leave the student's buffers and the
    random state as they were, so with ``eps=0`` this is Mean Teacher exactly (same noise, same
    dropout, same BatchNorm statistics). Cost per step: Mean Teacher's, plus one forward pass without
    gradients (which replays the student's random draws before the teacher's) and one forward and
    backward pass per power iteration.
    """

    name = "mean-teacher-vat"
    display_name = "Mean Teacher + VAT"
    capturable = False
    takes_pseudo_labels = False
    Options = PerturbationOptions

    def __init__(
        self,
        model: nn.Module,
        *args: Any,
        eps: float = 8.0,
        xi: float = 1e-6,
        power_iterations: int = 1,
        **options: Any,
    ) -> None:
        super().__init__(model, *args, **options)
        self.eps, self.xi, self.power_iterations = eps, xi, power_iterations

    def loss(self, batch: Batch, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        teacher_input, student_input = self._second_view(batch), batch.student_input
        device = student_input.device
        # Mean Teacher draws the student's noise first, then the teacher's: replay that order, so the
        # teacher sees the noise it sees in Mean Teacher, and keep the state the student starts from.
        with untouched(self.model, device):
            with torch.no_grad():
                self.model(student_input)
            self.teacher.module.train(self.model.training)
            with torch.no_grad():
                teacher_logits, _ = split_heads(self.teacher_forward(teacher_input))
            after_teacher = _rng_state(device)
        perturbation = vat_perturbation(
            self.model, student_input, self.xi, self.eps, self.power_iterations, teacher_logits
        )
        total, logs = self._costs(self.model(student_input + perturbation), teacher_logits, batch.labels, step)
        _set_rng_state(device, after_teacher)
        logs["perturbation_norm"] = perturbation.flatten(1).norm(dim=1).mean()
        return total, logs


def _rng_state(device: torch.device) -> torch.Tensor:
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()


def _set_rng_state(device: torch.device, state: torch.Tensor) -> None:
    if device.type == "cuda":
        torch.cuda.set_rng_state(state, device)
    else:
        torch.set_rng_state(state)
