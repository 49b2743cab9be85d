"""The methods' contract (``Method``) and the simplest methods: supervised-only and the Pi model."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

import torch
from torch import nn

from ..data.batch import NO_LABEL, Batch
from ..losses import classification_cost, consistency_cost
from ..models import split_heads
from ..pseudo_labels import PseudoLabels, is_pseudo_label_type, parse_threshold
from ..teacher import EMATeacher, unwrap


class MethodSettings(Protocol):
    """The run settings a method is built from (a run's ``Config`` has them, and each method's own options)."""

    method: str
    class_normalize: str
    consistency_type: str
    consistency_on_labeled: bool
    method_options: dict[str, dict[str, Any]]
    """Each method's own options by its name, as set (``--set vat.eps=2``, a TOML table ``[vat]``)."""


Schedule = float | Callable[[int], "float | torch.Tensor"]
"""A constant, or a function of the step. A function may return a 0-dim device tensor (updated in
place each step): the loss then involves no host synchronisation and can be captured in a CUDA graph."""


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """The options of a method that has none of its own."""


def _at(value: Schedule, step: int | torch.Tensor) -> float | torch.Tensor:
    result = value(step) if callable(value) else value
    return result if isinstance(result, torch.Tensor) else float(result)


def pseudo_labels_for(consistency_type: str, num_classes: int, model: nn.Module) -> PseudoLabels | None:
    """The pseudo-label cost a ``pseudo:...`` consistency type names, its state on ``model``'s device (else ``None``)."""
    if not is_pseudo_label_type(consistency_type):
        return None
    threshold = parse_threshold(consistency_type)
    if threshold is None and num_classes < 1:
        raise ValueError(f"consistency type {consistency_type!r} needs num_classes, for one threshold per class")
    return PseudoLabels(threshold, num_classes, next(unwrap(model).parameters()).device)


class Method:
    """Base of the methods: holds the student, the classification-cost settings and an EMA of
    the student's weights.

    Every method keeps an :class:`EMATeacher` (``self.ema``) updated after each optimizer step: the
    paper evaluates all its models on exponential-moving-average weights (Section 3). Mean Teacher's
    EMA is its teacher; for the other methods it has no role in training. ``ema_buffers`` says what
    the EMA does with BatchNorm statistics (see :class:`EMATeacher`): an EMA that never runs a
    forward pass of its own averages the student's.
    """

    name = "method"
    display_name = "method"
    """What people call it, in the lines a run prints."""
    pseudo_labels: PseudoLabels | None = None
    """The pseudo-label cost with its threshold's state, for a method trained on confident pseudo-labels."""
    hidden_labels: torch.Tensor | None = None
    """Every training example's true label (``NO_LABEL`` where none is known), indexed like ``batch.indices``:
    set by a caller that has them, so that a method can report how often its pseudo-labels are right."""
    view_count = 1
    """How many independently noised views of each example ``loss`` needs (``teacher_input`` is the 2nd)."""
    uses_unlabeled = True
    """Whether the method trains on unlabeled images (supervised-only does not: its sampler draws labeled ones only)."""
    ema_is_teacher = False
    """Whether the EMA of the weights trains the student, as Mean Teacher's teacher: reports call it
    "teacher (EMA)", and the guard watches it."""
    capturable = True
    """Whether a training step can be captured in a CUDA graph."""
    takes_pseudo_labels = False
    """Whether ``consistency_type`` may name the pseudo-label cost (the method then sets ``pseudo_labels``)."""
    needs_pseudo_labels = False
    """Whether the method trains on pseudo-labels only (``consistency_type`` must name them)."""
    auto_consistency_type: str | None = None
    """The consistency cost of a run that leaves it automatic, where the method has its own (else the package's)."""
    consistency_is_cross_entropy = False
    """Whether the consistency cost is a cross-entropy or a KL divergence (automatic weight 1, not per class)."""
    Options: ClassVar[type] = NoOptions
    """The method's own settings: a frozen dataclass with a default for each field, set with
    ``--set <name>.<field>=...`` or a TOML table ``[<name>]``; a field may check its value in
    ``__post_init__`` (a ``ValueError``)."""

    @classmethod
    def ema_display_name(cls) -> str:
        """What its EMA network is called in tables, plots and the lines a run prints."""
        return "teacher (EMA)" if cls.ema_is_teacher else "EMA"

    @classmethod
    def options(cls, settings: MethodSettings) -> Any:
        """This method's ``Options`` as ``settings`` set them, each value of its field's type (a
        ``ValueError`` naming an option that is not one)."""
        given = dict(settings.method_options.get(cls.name, {}))
        fields = {f.name: f for f in dataclasses.fields(cls.Options)}
        unknown = sorted(set(given) - set(fields))
        if unknown:
            known = ", ".join(fields) or "none"
            raise ValueError(f"{cls.name} has no option {unknown[0]!r} (its options: {known})")
        for name, value in given.items():
            kind = type(fields[name].default)
            exact = isinstance(value, kind) and isinstance(value, bool) == (kind is bool)
            number = kind is float and type(value) is int or kind is int and type(value) is float and value.is_integer()
            if not (exact or number):
                raise ValueError(f"option {cls.name}.{name} must be a {kind.__name__}, got {value!r}")
            given[name] = kind(value)
        return cls.Options(**given)

    def __init__(
        self,
        model: nn.Module,
        class_normalize: str = "batch",
        ema_decay: Schedule = 0.999,
        ema_buffers: str = "average",
    ) -> None:
        self.model = model
        self.class_normalize = class_normalize
        self.ema_decay = ema_decay
        self.ema = EMATeacher(model, _at(ema_decay, 0), ema_buffers)

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
        """The method around ``model`` as ``config`` sets it up, with the run's ``consistency`` weight and
        ``ema_decay`` schedules; ``num_examples`` and ``num_classes`` size per-example state."""
        return cls(model, config.class_normalize, ema_decay)

    def loss(self, batch: Batch, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The total cost to minimise and detached per-term values for logging."""
        raise NotImplementedError

    def compile(self) -> None:
        """``torch.compile`` the networks the method runs besides the student it was given (which its
        owner compiles): Mean Teacher's teacher."""

    def after_step(self, step: int | torch.Tensor) -> None:
        """Called after the optimizer step of 0-based ``step`` (the one ``loss`` was given; may be a 0-dim
        device tensor): moves the EMA towards the student, counting ``step + 1`` steps taken."""
        self.ema.update(self.model, step + 1, _at(self.ema_decay, step))

    def end_epoch(self) -> None:
        """Called after each complete pass over the unlabeled stream."""

    def evaluation_models(self) -> dict[str, nn.Module]:
        """The networks to evaluate by name: ``student`` (raw weights) and ``ema`` (averaged weights;
        Mean Teacher's teacher)."""
        return {"student": unwrap(self.model), "ema": self.ema.module}

    def state_dict(self) -> dict[str, Any]:
        """Method state beyond the student's weights (the EMA, prediction ensembles, an adaptive threshold)."""
        state = {"ema": self.ema.state_dict()}
        if self.pseudo_labels is not None:
            state["pseudo_labels"] = self.pseudo_labels.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        self.ema.load_state_dict(state["ema"])
        if self.pseudo_labels is not None:
            self.pseudo_labels.load_state_dict(state.get("pseudo_labels", {}))

    def _truth(self, batch: Batch) -> torch.Tensor | None:
        """The hidden labels of the batch's examples, where the caller gave them."""
        if self.hidden_labels is None or batch.indices is None:
            return None
        return self.hidden_labels[batch.indices]

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
    display_name = "supervised-only"
    uses_unlabeled = False

    def loss(self, batch: Batch, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        labeled = (
            (batch.labels != NO_LABEL).reshape(len(batch.labels), -1).any(dim=1)
        )  # an example with any labeled position
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
        consistency_on_labeled: bool = True,
    ) -> None:
        super().__init__(model, class_normalize, ema_decay, ema_buffers)
        self.consistency = consistency
        self.consistency_type = consistency_type
        self.consistency_on_labeled = consistency_on_labeled
        if is_pseudo_label_type(consistency_type) and not self.takes_pseudo_labels:
            raise ValueError(
                f"{self.name} does not take the pseudo-label cost {consistency_type!r} (mean-teacher and fixmatch do)"
            )
        self.consistency_fn = None if is_pseudo_label_type(consistency_type) else consistency_cost(consistency_type)

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
            config.class_normalize,
            ema_decay,
            consistency_on_labeled=config.consistency_on_labeled,
        )

    def _consistency(
        self,
        cons_logits: torch.Tensor,
        target_logits: torch.Tensor,
        labels: torch.Tensor,
        detach_teacher: bool = True,
    ) -> torch.Tensor:
        """The consistency cost over every example, or with ``consistency_on_labeled=False`` its masked mean
        over the unlabeled ones (positions, for dense labels): 0 when there are none, without a host-side count."""
        unlabeled = None if self.consistency_on_labeled else labels == NO_LABEL
        return self.consistency_fn(cons_logits, target_logits, detach_teacher=detach_teacher, mask=unlabeled)


class PiModel(_ConsistencyMethod):
    """Pi model (Laine & Aila): the teacher is the student itself; two noisy passes, gradients through both.
    ``consistency_on_labeled=False`` restricts the consistency to the unlabeled examples, as the Mean Teacher
    paper's SVHN runs do for both models."""

    name = "pi"
    display_name = "the Π model"
    view_count = 2

    def loss(self, batch: Batch, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        class_logits, cons_logits = split_heads(self.model(batch.student_input))
        second_logits, _ = split_heads(self.model(self._second_view(batch)))
        class_cost = classification_cost(class_logits, batch.labels, self.class_normalize)
        weight = _at(self.consistency, step)
        cons_cost = self._consistency(cons_logits, second_logits, batch.labels, detach_teacher=False)
        total = class_cost + weight * cons_cost
        return total, {
            "class_cost": class_cost.detach(),
            "consistency_cost": cons_cost.detach(),
            "consistency_weight": torch.as_tensor(weight),
        }
