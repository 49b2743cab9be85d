"""A guard against a silently dead Mean Teacher: after the ramp-up, a one-line warning (``DeadTeacherWarning``)
when the consistency cost is about zero next to the classification cost, when the teacher's weights equal
the student's, or when the teacher has not changed between two evaluations; each names its likely cause.

It reads what the loop logs anyway (the costs at each evaluation) and one fingerprint of each network
per evaluation: no cost in the step.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from ..config import Config
from ..pseudo_labels import is_pseudo_label_type

NEGLIGIBLE = 1e-4
"""The weighted consistency cost is "about zero" below this share of the classification cost (in a
healthy CIFAR-10 run it is 5 to 10 %; in a tiny test run with a weight of 1, 0.05 %)."""
STAYS_FOR = 2
"""Evaluations in a row the consistency cost must stay negligible."""


class DeadTeacherWarning(UserWarning):
    """Mean Teacher is running without its consistency signal."""


def fingerprint(model: nn.Module) -> torch.Tensor:
    """Sums and sums of squares of every parameter, in float64 (equal only when the weights are, in practice)."""
    parameters = [p.detach().double() for p in model.parameters()]
    return torch.stack([p.sum() for p in parameters] + [p.square().sum() for p in parameters]).cpu()


class DeadTeacherGuard:
    """Watches one run; ``check`` after each evaluation, with its logged record and the method's networks."""

    def __init__(self, config: Config) -> None:
        self.follow(config)
        self.negligible_in_a_row = 0
        self.previous: torch.Tensor | None = None
        self.warned: set[str] = set()

    def follow(self, config: Config) -> None:
        """Watch the run as ``config`` has it now (a ``--time`` run's steps and ramps change when refitted).
        Checks begin after the ramp-up, or half-way through a run shorter than its ramp (with pseudo-labels,
        whose first steps have none above the threshold, half-way through any run)."""
        self.config = config
        pseudo_labels = is_pseudo_label_type(
            config.consistency_type or ""
        )  # confident labels come as the network learns
        self.start = config.steps // 2 if pseudo_labels else min(config.rampup_steps or 0, config.steps // 2)

    def check(self, step: int, record: dict[str, Any], networks: dict[str, nn.Module], has_teacher: bool) -> list[str]:
        """The warnings this evaluation raises (each kind once per run), also issued as ``DeadTeacherWarning``."""
        if step < self.start:
            return []
        found = []
        if "consistency_cost" in record and "class_cost" in record:
            weighted = record["consistency_weight"] * record["consistency_cost"]
            negligible = weighted <= NEGLIGIBLE * record["class_cost"]
            self.negligible_in_a_row = self.negligible_in_a_row + 1 if negligible else 0
            if self.negligible_in_a_row >= STAYS_FOR:
                found.append(
                    (
                        "consistency",
                        f"the consistency cost is about zero next to the classification cost "
                        f"({weighted:.2g} against {record['class_cost']:.2g} at step {step}): {self._cost_cause(record)}",
                    )
                )
        if has_teacher:
            teacher, student = fingerprint(networks["ema"]), fingerprint(networks["student"])
            if self.previous is not None:  # from the second check: what moved since the last one
                if torch.equal(student, self.previous[1]):
                    found.append(
                        (
                            "unchanged",
                            f"the student and the teacher have not changed since the last evaluation "
                            f"(step {step}): is the learning rate 0 (lr={self.config.lr:g})?",
                        )
                    )
                elif torch.equal(teacher, student):
                    found.append(
                        (
                            "equal",
                            f"the teacher's weights equal the student's at step {step}: "
                            f"an EMA decay of 0 copies the student (ema_decay={self.config.ema_decay:g}, "
                            f"ema_decay_rampup={self.config.ema_decay_rampup:g}); the paper's is 0.99 to 0.999",
                        )
                    )
                elif torch.equal(teacher, self.previous[0]):
                    found.append(
                        (
                            "unchanged",
                            f"the teacher has not changed since the last evaluation (step {step}) while "
                            f"the student has: the EMA decay ({self.config.ema_decay:.12g}) is so close to 1 that the "
                            "average does not move, or the teacher is not being updated",
                        )
                    )
            self.previous = (teacher, student)
        messages = []
        for kind, message in found:
            if kind not in self.warned:
                self.warned.add(kind)
                messages.append(message)
                warnings.warn(message, DeadTeacherWarning, stacklevel=2)
        return messages

    def _cost_cause(self, record: dict[str, Any]) -> str:
        config = self.config
        if config.consistency == 0:
            return "the consistency weight is 0 (--consistency)"
        if config.rampup_steps > config.steps:
            return (
                f"the ramp-up is longer than the run (rampup_steps={config.rampup_steps:,} > steps={config.steps:,}), "
                f"so the weight stays near its start ({record['consistency_weight']:.2g} of {config.consistency:g})"
            )
        if record.get("pseudo_mask_rate", 1.0) <= NEGLIGIBLE:
            return (
                f"the teacher's confidence almost never reaches the pseudo-label threshold ({record['pseudo_mask_rate']:.1%} of the "
                f"unlabeled images at {config.consistency_type}): a lower threshold, or pseudo:adaptive, gives it labels"
            )
        return (
            "teacher and student agree on every input: is the noise off (translate, flip), or the teacher "
            "a copy of the student (ema_decay 0)?"
        )
