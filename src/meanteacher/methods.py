"""Supervised-only, Pi model, Mean Teacher and Temporal Ensembling behind one contract.

A method wraps a student model. Each training step the caller builds a :class:`Batch` (``views``
independently noised copies of the inputs, labels with ``NO_LABEL`` for unlabeled examples), calls
``total, logs = method.loss(batch, step)``, back-propagates ``total``, steps the optimizer and then
calls ``method.after_step(step)``. ``end_epoch()`` marks the end of a pass over the unlabeled data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from .losses import NO_LABEL, classification_cost, consistency_cost, entropy_cost, logit_distance, untouched, vat_cost, vat_perturbation
from .models import split_heads
from .teacher import EMATeacher, unwrap

Schedule = float | Callable[[int], "float | torch.Tensor"]
"""A constant, or a function of the step. A function may return a 0-dim device tensor (updated in
place each step): the loss then involves no host synchronisation and can be captured in a CUDA graph."""


def _at(value: Schedule, step: int | torch.Tensor) -> float | torch.Tensor:
    result = value(step) if callable(value) else value
    return result if isinstance(result, torch.Tensor) else float(result)


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


class Method:
    """Base of the four methods: holds the student, the classification-cost settings and an EMA of
    the student's weights.

    Every method keeps an :class:`EMATeacher` (``self.ema``) updated after each optimizer step: the
    paper evaluates all its models on exponential-moving-average weights (Section 3). Mean Teacher's
    EMA is its teacher; for the other methods it has no role in training. ``ema_buffers`` says what
    the EMA does with BatchNorm statistics (see :class:`EMATeacher`): an EMA that never runs a
    forward pass of its own averages the student's.
    """

    name = "method"
    views = 1
    """How many independently noised views of each example ``loss`` needs (``teacher_input`` is the 2nd)."""
    uses_unlabeled = True

    def __init__(
        self, model: nn.Module, class_normalize: str = "batch", ema_decay: Schedule = 0.999, ema_buffers: str = "average"
    ) -> None:
        self.model = model
        self.class_normalize = class_normalize
        self.ema_decay = ema_decay
        self.ema = EMATeacher(model, _at(ema_decay, 0), ema_buffers)

    def loss(self, batch: Batch, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The total cost to minimise and detached per-term values for logging."""
        raise NotImplementedError

    def after_step(self, step: int | torch.Tensor) -> None:
        """Called after each optimizer step (``step`` counts steps taken, from 1; may be a 0-dim device
        tensor): moves the EMA towards the student."""
        self.ema.update(self.model, step, _at(self.ema_decay, step))

    def end_epoch(self) -> None:
        """Called after each complete pass over the unlabeled stream."""

    def evaluation_models(self) -> dict[str, nn.Module]:
        """The networks to evaluate by name: ``student`` (raw weights) and ``ema`` (averaged weights;
        Mean Teacher's teacher)."""
        return {"student": unwrap(self.model), "ema": self.ema.module}

    def state_dict(self) -> dict[str, Any]:
        """Method state beyond the student's weights (the EMA, prediction ensembles)."""
        return {"ema": self.ema.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        self.ema.load_state_dict(state["ema"])

    def _second_view(self, batch: Batch) -> torch.Tensor:
        if batch.teacher_input is None:
            raise ValueError(f"{self.name} needs batch.teacher_input, a second noised view of the inputs")
        if batch.teacher_input.shape != batch.student_input.shape:
            raise ValueError(
                f"teacher_input shape {tuple(batch.teacher_input.shape)} differs from "
                f"student_input shape {tuple(batch.student_input.shape)}"
            )
        return batch.teacher_input


class Supervised(Method):
    """Supervised-only baseline: classification cost on the labeled examples, nothing else."""

    name = "supervised"
    uses_unlabeled = False

    def loss(self, batch: Batch, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        labeled = (batch.labels != NO_LABEL).reshape(len(batch.labels), -1).any(dim=1)  # an example with any labeled position
        inputs, labels = batch.student_input, batch.labels
        if not batch.all_labeled and not bool(labeled.all()):
            inputs, labels = inputs[labeled], labels[labeled]
        class_logits, _ = split_heads(self.model(inputs))
        cost = classification_cost(class_logits, labels, self.class_normalize)
        return cost, {"class_cost": cost.detach()}


class _ConsistencyMethod(Method):
    def __init__(
        self,
        model: nn.Module,
        consistency: Schedule = 1.0,
        consistency_type: str = "mse",
        class_normalize: str = "batch",
        ema_decay: Schedule = 0.999,
        ema_buffers: str = "average",
    ) -> None:
        super().__init__(model, class_normalize, ema_decay, ema_buffers)
        self.consistency = consistency
        self.consistency_type = consistency_type
        self.consistency_fn = consistency_cost(consistency_type)


class PiModel(_ConsistencyMethod):
    """Pi model (Laine & Aila): the teacher is the student itself; two noisy passes, gradients through both."""

    name = "pi"
    views = 2

    def loss(self, batch: Batch, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        class_logits, cons_logits = split_heads(self.model(batch.student_input))
        second_logits, _ = split_heads(self.model(self._second_view(batch)))
        class_cost = classification_cost(class_logits, batch.labels, self.class_normalize)
        weight = _at(self.consistency, step)
        cons_cost = self.consistency_fn(cons_logits, second_logits, detach_teacher=False)
        total = class_cost + weight * cons_cost
        return total, {
            "class_cost": class_cost.detach(),
            "consistency_cost": cons_cost.detach(),
            "consistency_weight": torch.as_tensor(weight),
        }


class MeanTeacher(_ConsistencyMethod):
    """Mean Teacher: consistency with an EMA teacher that sees its own noised view.

    ``ema_decay`` may be a schedule (e.g. 0.99 during ramp-up, 0.999 after). With a two-head model,
    the consistency cost is applied to the second head and ``logit_distance`` weights the squared
    distance between the two heads' logits (averaged or, with ``logit_distance_classes="sum"``, summed
    over classes). ``consistency_on_labeled=False`` restricts consistency
    to the unlabeled examples (the paper applies it to all). The teacher is the method's EMA
    (``self.teacher is self.ema``); ``buffers`` is its BatchNorm policy.
    """

    name = "mean-teacher"
    views = 2

    def __init__(
        self,
        model: nn.Module,
        consistency: Schedule = 1.0,
        consistency_type: str = "mse",
        ema_decay: Schedule = 0.999,
        logit_distance: float = 0.0,
        consistency_on_labeled: bool = True,
        buffers: str = "own",
        class_normalize: str = "batch",
        logit_distance_classes: str = "mean",
    ) -> None:
        super().__init__(model, consistency, consistency_type, class_normalize, ema_decay, buffers)
        self.logit_distance = logit_distance
        self.logit_distance_classes = logit_distance_classes
        self.consistency_on_labeled = consistency_on_labeled
        self.teacher = self.ema
        self.teacher_forward: Callable[[torch.Tensor], Any] = self.teacher.module
        """Calls the teacher network; the trainer swaps in a ``torch.compile``'d one with ``compile``."""

    def loss(self, batch: Batch, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        teacher_input = self._second_view(batch)
        student_output = self.model(batch.student_input)
        self.teacher.module.train(self.model.training)
        with torch.no_grad():
            teacher_logits, _ = split_heads(self.teacher_forward(teacher_input))
        return self._costs(student_output, teacher_logits, batch.labels, step)

    def _costs(
        self, student_output: torch.Tensor | tuple[torch.Tensor, torch.Tensor], teacher_logits: torch.Tensor, labels: torch.Tensor, step: int,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The costs given the student's output (one or two heads) and the teacher's logits."""
        class_logits, cons_logits = split_heads(student_output)
        class_cost = classification_cost(class_logits, labels, self.class_normalize)
        if self.consistency_on_labeled:
            cons_cost = self.consistency_fn(cons_logits, teacher_logits)
        else:
            cons_cost = self._unlabeled_consistency(cons_logits, teacher_logits, labels == NO_LABEL)
        weight = _at(self.consistency, step)
        total = class_cost + weight * cons_cost
        logs = {
            "class_cost": class_cost.detach(),
            "teacher_class_cost": classification_cost(teacher_logits, labels, self.class_normalize).detach(),
            "consistency_cost": cons_cost.detach(),
            "consistency_weight": torch.as_tensor(weight),
        }
        if self.logit_distance > 0:
            distance = logit_distance(class_logits, cons_logits, self.logit_distance_classes)
            total = total + self.logit_distance * distance
            logs["logit_distance"] = distance.detach()
        return total, logs

    def _unlabeled_consistency(self, cons_logits: torch.Tensor, teacher_logits: torch.Tensor, unlabeled: torch.Tensor) -> torch.Tensor:
        """Mean consistency cost over the unlabeled rows (positions, for dense labels): a masked mean,
        0 when there are none, without a host-side count."""
        return self.consistency_fn(cons_logits, teacher_logits, mask=unlabeled)


class VAT(Method):
    """Virtual Adversarial Training (Miyato et al. 2018) as a Pi-like baseline: the consistency target
    is the model's own (detached) prediction, the perturbation the virtual adversarial one instead of a
    second random view. ``consistency`` weights the VAT cost (a KL divergence); ``entropy_weight`` adds
    entropy minimisation (VAT+EntMin). Each power iteration costs one more forward and backward pass."""

    name = "vat"

    def __init__(
        self, model: nn.Module, consistency: Schedule = 1.0, eps: float = 8.0, xi: float = 1e-6, power_iterations: int = 1,
        entropy_weight: float = 0.0, class_normalize: str = "batch", ema_decay: Schedule = 0.999,
    ) -> None:
        super().__init__(model, class_normalize, ema_decay)
        self.consistency, self.eps, self.xi, self.power_iterations = consistency, eps, xi, power_iterations
        self.entropy_weight = entropy_weight

    def loss(self, batch: Batch, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        class_logits, _ = split_heads(self.model(batch.student_input))
        class_cost = classification_cost(class_logits, batch.labels, self.class_normalize)
        vat = vat_cost(self.model, batch.student_input, class_logits, self.eps, self.xi, self.power_iterations)
        weight = _at(self.consistency, step)
        total = class_cost + weight * vat
        logs = {"class_cost": class_cost.detach(), "consistency_cost": vat.detach(), "consistency_weight": torch.as_tensor(weight)}
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

    def __init__(self, model: nn.Module, *args: Any, eps: float = 8.0, xi: float = 1e-6, power_iterations: int = 1, **options: Any) -> None:
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
        perturbation = vat_perturbation(self.model, student_input, self.xi, self.eps, self.power_iterations, teacher_logits)
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


class TemporalEnsembling(_ConsistencyMethod):
    """Temporal Ensembling (Laine & Aila): consistency with a per-example EMA of past predictions.

    After every epoch ``Z <- alpha Z + (1 - alpha) z`` where ``z`` holds each example's latest
    prediction; the target is the bias-corrected ``Z / (1 - alpha**t)`` after ``t`` epochs. No
    consistency cost is applied before the first epoch ends (there is no target yet).
    """

    name = "temporal-ensembling"

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
    ) -> None:
        super().__init__(model, consistency, consistency_type, class_normalize, ema_decay)
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
        self.seen[batch.indices] = True
        # Before the first epoch ends there is no target: the cost is computed against a uniform
        # placeholder and multiplied by 0, which keeps the step free of host-side branches.
        active = (self.target_scale > 0).float()
        target_logits = (self.ensemble[batch.indices] * self.target_scale).clamp_min(1e-12).log()
        cons_cost = self.consistency_fn(cons_logits, target_logits) * active
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
        return {**super().state_dict(), "ensemble": self.ensemble, "latest": self.latest, "seen": self.seen, "epochs": self.epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.ensemble.copy_(state["ensemble"])
        self.latest.copy_(state["latest"])
        self.seen.copy_(state["seen"])
        self.epochs = int(state["epochs"])
        self.target_scale.fill_(1.0 / (1.0 - self.alpha**self.epochs) if self.epochs else 0.0)


METHODS: dict[str, type[Method]] = {
    cls.name: cls for cls in (Supervised, PiModel, MeanTeacher, TemporalEnsembling, VAT, MeanTeacherVAT)
}
