"""The exponential-moving-average teacher."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

BUFFER_POLICIES = ("own", "copy", "average")


def _check_decay(decay: float | torch.Tensor) -> None:
    value = float(decay)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"decay must be in [0, 1), got {value}")


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel / DataParallel / ``torch.compile`` wrappers."""
    while True:
        if isinstance(module, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            module = module.module
        elif isinstance(getattr(module, "_orig_mod", None), nn.Module):
            module = module._orig_mod
        else:
            return module


def _lerp_(targets: list[torch.Tensor], sources: list[torch.Tensor], weight: float | torch.Tensor) -> None:
    """``targets += weight * (sources - targets)`` for every pair, fused over the lists.

    ``torch._foreach_lerp_`` takes its weight as a Python scalar, and would read a tensor weight on
    the host; a 0-dim tensor weight goes through the ``Tensor`` overloads of multiply and add instead.
    """
    if not isinstance(weight, torch.Tensor):
        torch._foreach_lerp_(targets, sources, weight)
        return
    differences = torch._foreach_sub(sources, targets)
    torch._foreach_mul_(differences, weight.to(device=targets[0].device, dtype=targets[0].dtype))
    torch._foreach_add_(targets, differences)


class EMATeacher:
    """A teacher whose weights are an exponential moving average of a student's.

    After each optimizer step, ``update`` sets ``theta' = alpha * theta' + (1 - alpha) * theta`` with
    ``alpha = min(1 - 1 / (step + 1), decay)``, so early steps are a true average of the student so far.
    All tensors are updated by fused ``torch._foreach_*`` calls.

    ``buffers`` chooses what happens to BatchNorm running statistics and other floating buffers:
    ``"own"`` keeps the teacher's own (it runs in train mode on its own input, as the reference code),
    ``"copy"`` copies the student's, ``"average"`` averages them like weights. Integer buffers (such as
    ``num_batches_tracked``) are never averaged: copied with ``"copy"`` and ``"average"``, the teacher's
    own with ``"own"``.

    ``update_after_step`` is a burn-in (as detection recipes use): up to that step the teacher is a copy
    of the student. ``update_every`` averages only on every n-th step after it. ``device`` keeps the
    teacher elsewhere than the student (e.g. ``"cpu"`` to save GPU memory; the student's tensors are
    copied there at each update). The student may be wrapped in DistributedDataParallel or
    ``torch.compile``. ``state_dict`` holds the weights, the settings and the number of updates made.

    Example::

        teacher = EMATeacher(model, decay=0.999)
        for step, (x, y) in enumerate(loader, start=1):
            loss = ...; optimizer.zero_grad(); loss.backward(); optimizer.step()
            teacher.update(model, step)
        accuracy(teacher.module, test_loader)
    """

    def __init__(
        self,
        student: nn.Module,
        decay: float | torch.Tensor = 0.999,
        buffers: str = "own",
        update_every: int = 1,
        update_after_step: int = 0,
        device: torch.device | str | None = None,
    ) -> None:
        _check_decay(decay)
        if buffers not in BUFFER_POLICIES:
            raise ValueError(f"buffers must be one of {BUFFER_POLICIES}, got {buffers!r}")
        if update_every < 1 or update_after_step < 0:
            raise ValueError(
                f"update_every must be >= 1 and update_after_step >= 0, got {update_every} and {update_after_step}"
            )
        self.decay = decay
        self.buffers = buffers
        self.update_every = update_every
        self.update_after_step = update_after_step
        self.module = copy.deepcopy(unwrap(student))
        if device is not None:
            self.module.to(device)
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)
            parameter.grad = None
        self._names = [name for name, _ in self.module.named_parameters()]
        self._params = list(self.module.parameters())
        self._float_buffers = [b for b in self.module.buffers() if b.is_floating_point()]
        self._other_buffers = [b for b in self.module.buffers() if not b.is_floating_point()]
        self.device = self._params[0].device if self._params else torch.device("cpu")
        self.num_updates = torch.zeros((), dtype=torch.long, device=self.device)
        """Updates made so far (0-dim, on the teacher's device, counted without host reads)."""
        self._student: tuple[nn.Module, tuple[list[torch.Tensor], ...]] | None = None

    def _student_tensors(self, student: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """The student's parameters and buffers, gathered once per student module (they are updated in place)."""
        student = unwrap(student)
        if self._student is not None and self._student[0] is student:
            return self._student[1]
        named = list(student.named_parameters())
        for index, (name, teacher_param) in enumerate(zip(self._names, self._params)):
            if index >= len(named):
                raise ValueError(f"student has no parameter {name!r}: it does not have the teacher's architecture")
            student_name, student_param = named[index]
            if student_name != name or student_param.shape != teacher_param.shape:
                raise ValueError(
                    f"student parameter {student_name!r} {tuple(student_param.shape)} does not match the teacher's "
                    f"{name!r} {tuple(teacher_param.shape)}: it does not have the teacher's architecture"
                )
        if len(named) > len(self._params):
            raise ValueError(f"student has a parameter the teacher lacks, {named[len(self._params)][0]!r}")
        buffers = list(student.buffers())
        floats = [b for b in buffers if b.is_floating_point()]
        others = [b for b in buffers if not b.is_floating_point()]
        self._student = (student, ([p for _, p in named], floats, others))
        return self._student[1]

    def alpha(self, step: int | torch.Tensor, decay: float | torch.Tensor | None = None) -> float | torch.Tensor:
        """The averaging weight ``min(1 - 1 / (step + 1), decay)`` used by ``update``."""
        decay = self.decay if decay is None else decay
        if isinstance(step, torch.Tensor) or isinstance(decay, torch.Tensor):
            reference = decay if isinstance(decay, torch.Tensor) else step
            dtype = reference.dtype if reference.is_floating_point() else torch.float32
            decay = torch.as_tensor(decay, dtype=dtype, device=reference.device)
            warmup = 1.0 - 1.0 / (torch.as_tensor(step, dtype=dtype, device=reference.device) + 1.0)
            return torch.minimum(warmup, decay)
        return min(1.0 - 1.0 / (step + 1.0), float(decay))

    def _weight(self, step: int | torch.Tensor, decay: float | torch.Tensor | None) -> float | torch.Tensor | None:
        """How far to move towards the student at ``step``: 1 in burn-in, 0 (or None) on skipped steps."""
        weight = 1.0 - self.alpha(step, decay)
        if self.update_every == 1 and self.update_after_step == 0:
            return weight
        if not isinstance(step, torch.Tensor):
            if step <= self.update_after_step:
                return 1.0
            return weight if step % self.update_every == 0 else None
        weight = torch.as_tensor(weight, device=step.device)
        burn_in = step <= self.update_after_step
        active = burn_in | (step % self.update_every == 0)
        return torch.where(burn_in, torch.ones_like(weight), weight) * active

    @torch.no_grad()
    def update(self, student: nn.Module, step: int | torch.Tensor, decay: float | torch.Tensor | None = None) -> None:
        """Move the teacher towards ``student``; ``decay`` overrides ``self.decay`` for this call.

        ``step`` and ``decay`` may be 0-dim device tensors, which keeps the update free of host
        synchronisation (and so capturable in a CUDA graph).
        """
        if decay is not None and not isinstance(decay, torch.Tensor):
            _check_decay(decay)
        weight = self._weight(step, decay)
        if weight is None:
            return
        params, floats, others = self._student_tensors(student)
        if params and params[0].device != self.device:
            # asynchronous only towards a GPU: a copy to the CPU is read by the CPU at once, so it must be complete
            asynchronous = self.device.type == "cuda"
            params, floats, others = (
                [t.to(self.device, non_blocking=asynchronous) for t in group] for group in (params, floats, others)
            )
        _lerp_(self._params, params, weight)
        if self.buffers == "average" and floats:
            _lerp_(self._float_buffers, floats, weight)
        elif self.buffers == "copy" and floats:
            torch._foreach_copy_(self._float_buffers, floats)
        if self.buffers != "own" and others:
            torch._foreach_copy_(self._other_buffers, others)
        self.num_updates += (weight > 0).to(torch.long) if isinstance(weight, torch.Tensor) else 1

    def state_dict(self) -> dict[str, Any]:
        """The teacher's weights, buffer handling and number of updates. The decay is not kept: it is the
        constructor's, or given to each ``update`` (as the methods do, from their schedule)."""
        return {
            "module": self.module.state_dict(),
            "buffers": self.buffers,
            "update_every": self.update_every,
            "update_after_step": self.update_after_step,
            "updates": int(self.num_updates),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned (a ``decay`` that older checkpoints kept is not read back)."""
        self.module.load_state_dict(state["module"])
        self.buffers = state.get("buffers", self.buffers)
        self.update_every = state.get("update_every", self.update_every)
        self.update_after_step = state.get("update_after_step", self.update_after_step)
        self.num_updates.fill_(int(state.get("updates", 0)))
