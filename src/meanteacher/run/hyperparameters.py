"""The per-step values of a run's schedules: learning rate, Adam betas, EMA decay, consistency weight."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .. import schedules
from ..config import Config
from ..config.auto import has_auto

NAMES = ("lr", "adam_beta1", "adam_beta2", "ema_decay", "consistency_weight", "step")


def hyperparameters_at(config: Config, step: int) -> dict[str, float]:
    """Learning rate, Adam betas, EMA decay and consistency weight of step ``step``."""
    rampup = schedules.sigmoid_rampup(step, config.rampup_steps)
    beta1 = config.adam_beta1
    if config.lr_schedule == "sigmoid":
        rampdown = schedules.sigmoid_rampdown(step, config.steps, config.rampdown_steps)
        lr = config.lr * rampup * rampdown
        beta1 = schedules.interpolate(rampdown, config.adam_beta1, config.adam_beta1_rampdown)
    else:
        warmup = schedules.linear_rampup(step, config.lr_warmup_steps)
        lr = config.lr_warmup_start + warmup * (config.lr - config.lr_warmup_start)
        if config.lr_schedule == "cosine":
            lr *= schedules.cosine_rampdown(step, config.cosine_steps or config.steps)
    return {
        "lr": lr,
        "adam_beta1": beta1,
        "adam_beta2": schedules.step_switch(step, config.rampup_steps, config.adam_beta2_rampup, config.adam_beta2),
        "ema_decay": schedules.step_switch(step, config.rampup_steps, config.ema_decay_rampup, config.ema_decay),
        "consistency_weight": config.consistency * rampup,
    }


class StepHyperparameters:
    """The current step's schedule values, computed once per step.

    ``values[name]`` are Python floats. With ``on_device=True`` the same values also live in 0-dim
    tensors on ``device`` (``tensors[name]``) that ``set_step`` overwrites in place with one
    host-to-device copy: a captured CUDA graph or a compiled function that reads them sees each step's
    value without being captured or compiled again, and nothing waits on the host. ``step`` is the 0-based
    step itself, which the method's ``after_step`` is given.
    """

    def __init__(self, config: Config, device: torch.device, on_device: bool = False) -> None:
        if has_auto(config):
            raise ValueError("the configuration has automatic settings (None): resolve them first (auto.resolve_auto)")
        self.config = config
        self.values: dict[str, float] = {}
        self.tensors: dict[str, torch.Tensor] = {}
        self._packed: torch.Tensor | None = None
        self.step = 0
        if on_device:
            # float32 on a GPU (what capturable Adam and the CUDA graph work in); float64 on the CPU,
            # so the device values equal the float path's exactly (tests compare the two paths).
            dtype = torch.float64 if device.type == "cpu" else torch.float32
            self._packed = torch.zeros(len(NAMES), dtype=dtype, device=device)
            self.tensors = {name: self._packed[i] for i, name in enumerate(NAMES)}
        self.set_step(0)

    @property
    def on_device(self) -> bool:
        return self._packed is not None

    def set_step(self, step: int, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Compute the values of 0-based ``step`` and refresh the device copies; or, kept as floats, give
        ``optimizer`` this step's learning rate and Adam betas."""
        self.step = step
        self.values = {**hyperparameters_at(self.config, step), "step": float(step)}
        if self._packed is not None:
            host = torch.tensor([self.values[name] for name in NAMES], dtype=self._packed.dtype)
            if self._packed.is_cuda:
                host = host.pin_memory()  # an asynchronous copy: the host does not wait for the GPU
            self._packed.copy_(host, non_blocking=True)
        elif optimizer is not None:
            for group in optimizer.param_groups:
                group["lr"] = self.values["lr"]
                if "betas" in group:
                    group["betas"] = (self.values["adam_beta1"], self.values["adam_beta2"])

    def __getitem__(self, name: str) -> float | torch.Tensor:
        """The device tensor of ``name`` when kept on the device, else its float."""
        return self.tensors[name] if self._packed is not None else self.values[name]

    def schedule(self, name: str) -> Callable[[int | torch.Tensor], float | torch.Tensor]:
        """``name`` as a method's schedule (see ``methods.Schedule``): the value of the step last given
        to ``set_step``, which the loop calls before the method asks."""
        return lambda step: self[name]
