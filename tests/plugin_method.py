"""A method that lives outside the package, in one file: entropy minimisation (Grandvalet & Bengio, 2005).

Importing this module registers it as ``entropy-minimisation``; ``--method tests.plugin_method:EntropyMinimisation``
finds it without that. ``tests/test_methods.py`` trains it through the command line.
"""

from __future__ import annotations

import dataclasses

import torch

from meanteacher.data.batch import NO_LABEL, Batch
from meanteacher.losses import classification_cost
from meanteacher.methods import Method, Schedule, register_method
from meanteacher.models import split_heads


@dataclasses.dataclass(frozen=True)
class EntropyMinimisationOptions:
    on_labeled: bool = True
    """Whether the entropy term covers the labeled images too (``--set entropy-minimisation.on_labeled=false``)."""


@register_method
class EntropyMinimisation(Method):
    """The classification cost on the labeled images plus the mean entropy of the student's predictions on
    every image of the batch (or the unlabeled ones only), weighted by the run's consistency weight
    (automatic: 1)."""

    name = "entropy-minimisation"
    display_name = "entropy minimisation"
    consistency_is_cross_entropy = True
    Options = EntropyMinimisationOptions

    def __init__(
        self,
        model: torch.nn.Module,
        weight: Schedule = 1.0,
        class_normalize: str = "labeled",
        ema_decay: Schedule = 0.999,
        on_labeled: bool = True,
    ) -> None:
        super().__init__(model, class_normalize, ema_decay)
        self.weight, self.on_labeled = weight, on_labeled

    @classmethod
    def from_config(cls, config, model, consistency, ema_decay, num_examples, num_classes):
        return cls(model, consistency, config.class_normalize, ema_decay, cls.options(config).on_labeled)

    def loss(self, batch: Batch, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        class_logits, _ = split_heads(self.model(batch.student_input))
        class_cost = classification_cost(class_logits, batch.labels, self.class_normalize)
        log_probabilities = class_logits.float().log_softmax(1)
        entropies = -(log_probabilities.exp() * log_probabilities).sum(1)
        counted = torch.ones_like(entropies) if self.on_labeled else (batch.labels == NO_LABEL).to(entropies.dtype)
        entropy = (entropies * counted).sum() / counted.sum().clamp(min=1)
        weight = self.weight(step) if callable(self.weight) else self.weight
        return class_cost + weight * entropy, {"class_cost": class_cost.detach(), "entropy_cost": entropy.detach()}
