"""Temporal Ensembling (Laine & Aila): consistency with a per-example EMA of past predictions."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.batch import Batch
from ..losses import classification_cost
from ..models import split_heads
from ..teacher import unwrap
from .base import Method, MethodSettings, Schedule, _at, _ConsistencyMethod


@dataclasses.dataclass(frozen=True)
class TemporalEnsemblingOptions:
    """Temporal Ensembling's own setting (``--set temporal-ensembling.alpha=...``)."""

    alpha: float = 0.6
    """The ensemble's momentum (Laine & Aila's 0.6)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha < 1.0:
            raise ValueError(f"temporal-ensembling.alpha must be in [0, 1), got {self.alpha}")


class TemporalEnsembling(_ConsistencyMethod):
    """Temporal Ensembling (Laine & Aila): consistency with a per-example EMA of past predictions.

    After every epoch ``Z <- alpha Z + (1 - alpha) z`` where ``z`` holds each example's latest
    prediction; the target is the bias-corrected ``Z / (1 - alpha**t)`` after ``t`` epochs. No
    consistency cost is applied before the first epoch ends (there is no target yet).
    """

    name = "temporal-ensembling"
    display_name = "Temporal Ensembling"
    Options = TemporalEnsemblingOptions

    def __init__(
        self,
        model: nn.Module,
        num_examples: int,
        num_classes: int,
        alpha: float = 0.6,
        consistency: Schedule = 1.0,
        consistency_type: str = "mse",
        class_normalize: str = "batch",
        ema_decay: Schedule = 0.999,
        consistency_on_labeled: bool = True,
    ) -> None:
        super().__init__(
            model,
            consistency,
            consistency_type,
            class_normalize,
            ema_decay,
            consistency_on_labeled=consistency_on_labeled,
        )
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"alpha must be in [0, 1), got {alpha}")
        parameter = next(unwrap(model).parameters())
        device, dtype = parameter.device, parameter.dtype
        self.alpha = alpha
        self.ensemble = torch.zeros(num_examples, num_classes, device=device, dtype=dtype)
        self.latest = torch.zeros(num_examples, num_classes, device=device, dtype=dtype)
        self.seen = torch.zeros(num_examples, dtype=torch.bool, device=device)
        self.target_scale = torch.zeros((), device=device)
        """``1 / (1 - alpha**epochs)``, or 0 before the first epoch has ended; on the device, so the loss
        does not branch on the host (and can be captured in a CUDA graph)."""
        self.epochs = 0

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
            num_examples,
            num_classes,
            cls.options(config).alpha,
            consistency,
            config.consistency_type,
            config.class_normalize,
            ema_decay,
            config.consistency_on_labeled,
        )

    def targets(self, indices: torch.Tensor) -> torch.Tensor:
        """Bias-corrected ensemble predictions ``Z / (1 - alpha**t)`` of the given examples."""
        if self.epochs == 0:
            raise ValueError("no ensemble targets before the first epoch has ended")
        return self.ensemble[indices] / (1.0 - self.alpha**self.epochs)

    def loss(self, batch: Batch, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if batch.indices is None:
            raise ValueError("temporal-ensembling needs batch.indices, the examples' dataset indices")
        class_logits, cons_logits = split_heads(self.model(batch.student_input))
        class_cost = classification_cost(class_logits, batch.labels, self.class_normalize)
        self.latest[batch.indices] = F.softmax(class_logits.detach().to(self.latest.dtype), dim=1)
        self.seen.index_fill_(
            0, batch.indices, True
        )  # not ``seen[indices] = True``: on a GPU that copies from the host
        # Before the first epoch ends there is no target: the cost is computed against a uniform
        # placeholder and multiplied by 0, which keeps the step free of host-side branches.
        active = (self.target_scale > 0).float()
        target_logits = (self.ensemble[batch.indices] * self.target_scale).clamp_min(1e-12).log()
        cons_cost = self._consistency(cons_logits, target_logits, batch.labels) * active
        weight = _at(self.consistency, step) * active
        total = class_cost + weight * cons_cost
        return total, {
            "class_cost": class_cost.detach(),
            "consistency_cost": cons_cost.detach(),
            "consistency_weight": weight.detach(),
        }

    def end_epoch(self) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            self._gather_latest()
        self.ensemble.lerp_(self.latest, 1.0 - self.alpha)
        self.seen.zero_()
        self.epochs += 1
        self.target_scale.fill_(1.0 / (1.0 - self.alpha**self.epochs))

    def _gather_latest(self) -> None:
        """Each process saw its own share of the examples this epoch: combine their predictions."""
        seen = self.seen.float()
        predictions = self.latest * seen[:, None]
        torch.distributed.all_reduce(seen)
        torch.distributed.all_reduce(predictions)
        fresh = seen > 0
        self.latest[fresh] = predictions[fresh] / seen[fresh, None]

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "ensemble": self.ensemble,
            "latest": self.latest,
            "seen": self.seen,
            "epochs": self.epochs,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.ensemble.copy_(state["ensemble"])
        self.latest.copy_(state["latest"])
        self.seen.copy_(state["seen"])
        self.epochs = int(state["epochs"])
        self.target_scale.fill_(1.0 / (1.0 - self.alpha**self.epochs) if self.epochs else 0.0)
