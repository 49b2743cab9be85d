"""Adam whose learning rate and betas are 0-dim device tensors, with no host read: safe in a CUDA graph.

torch's own Adam, given tensor betas with ``capturable=True, foreach=True``, passes them to
``_foreach_lerp_`` and ``_foreach_pow`` through their Scalar overloads, which read the value on the
host (``.item()``): illegal while a CUDA graph is being captured. Float betas would capture, but the
graph would keep the capture-time values for ever, silently ignoring beta1's ramp-down and beta2's
switch. ``CapturableAdam`` writes the same update with Tensor overloads only::

    lr = torch.tensor(3e-3, device="cuda")
    optimizer = CapturableAdam(model.parameters(), lr, beta1, beta2)   # all three 0-dim tensors
    ...
    lr.fill_(new_value)        # between steps (or graph replays): the next step reads it

Its state has torch's Adam layout (``step``, ``exp_avg``, ``exp_avg_sq``), so either optimizer
resumes from the other's ``state_dict``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class CapturableAdam(torch.optim.Optimizer):
    """Adam (with L2 weight decay added to the gradient, as ``torch.optim.Adam``) reading ``lr``,
    ``beta1`` and ``beta2`` from 0-dim tensors on the parameters' device at every step."""

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: torch.Tensor,
        beta1: torch.Tensor,
        beta2: torch.Tensor,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        for name, value in (("lr", lr), ("beta1", beta1), ("beta2", beta2)):
            if not isinstance(value, torch.Tensor) or value.dim() != 0:
                raise ValueError(f"CapturableAdam needs {name} as a 0-dim tensor, got {value!r}")
        super().__init__(params, {"lr": lr, "betas": (beta1, beta2), "eps": eps, "weight_decay": weight_decay})

    def load_state_dict(self, state_dict: dict) -> None:
        """Load moments and step counts (from this optimizer or ``torch.optim.Adam``), keeping this
        optimizer's own tensors for lr and the betas, with every step count on its parameter's device."""
        own = [{key: value for key, value in group.items() if key != "params"} for group in self.param_groups]
        super().load_state_dict(state_dict)
        for group, settings in zip(self.param_groups, own):
            group.update(settings)
            for parameter in group["params"]:
                state = self.state.get(parameter, {})
                if "step" in state:
                    state["step"] = torch.as_tensor(state["step"], dtype=torch.float32).to(parameter.device)

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001 - torch's Optimizer signature
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                self._update(params, group)
        return loss

    def _update(self, params: list[torch.Tensor], group: dict) -> None:
        lr = group["lr"]
        beta1, beta2 = group["betas"]
        grads = [p.grad for p in params]
        for p in params:
            state = self.state[p]
            if not state:
                state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        steps = [self.state[p]["step"] for p in params]
        exp_avgs = [self.state[p]["exp_avg"] for p in params]
        exp_avg_sqs = [self.state[p]["exp_avg_sq"] for p in params]
        count = len(params)

        torch._foreach_add_(steps, 1)
        if group["weight_decay"]:
            grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
        # m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2  (Tensor overloads: no host read)
        torch._foreach_mul_(exp_avgs, beta1)
        torch._foreach_add_(exp_avgs, torch._foreach_mul(grads, 1 - beta1))
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, torch._foreach_mul(grads, 1 - beta2), grads)
        # bias corrections 1 - beta^t per parameter, from the step counts on the device
        bias1 = torch._foreach_pow([beta1] * count, steps)
        torch._foreach_neg_(bias1)
        torch._foreach_add_(bias1, 1)
        bias2 = torch._foreach_pow([beta2] * count, steps)
        torch._foreach_neg_(bias2)
        torch._foreach_add_(bias2, 1)
        torch._foreach_sqrt_(bias2)
        # p -= lr / bias1 * m / (sqrt(v) / sqrt(bias2) + eps), as p += m / d with d folding in -bias1 / lr
        denominators = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(denominators, bias2)
        torch._foreach_add_(denominators, group["eps"])
        torch._foreach_div_(bias1, [lr] * count)
        torch._foreach_neg_(bias1)
        torch._foreach_mul_(denominators, bias1)
        torch._foreach_addcdiv_(params, exp_avgs, denominators)
