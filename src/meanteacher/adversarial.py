"""Virtual adversarial training (Miyato et al. 2018): the perturbation in which a model's prediction
changes most, found by power iteration, and VAT's cost; extra passes through a model that leave no trace
(``untouched``)."""

from __future__ import annotations

import contextlib

import torch

from .losses import softmax_kl


def _first_output(output: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def _unit(direction: torch.Tensor) -> torch.Tensor:
    """Each example's direction scaled to unit L2 norm over all its elements."""
    norm = direction.flatten(1).norm(dim=1).clamp_min(1e-12)
    return direction / norm.view(-1, *([1] * (direction.dim() - 1)))


@contextlib.contextmanager
def kept_buffers(model: torch.nn.Module):
    """Every buffer of ``model`` (BatchNorm statistics, counters) is restored after the block."""
    buffers = list(model.buffers())
    saved = [b.clone() for b in buffers]
    try:
        yield
    finally:
        if buffers:
            with torch.no_grad():
                torch._foreach_copy_(buffers, saved)


@contextlib.contextmanager
def untouched(model: torch.nn.Module, device: torch.device):
    """Passes through ``model`` inside this block leave no trace: its buffers are restored afterwards
    (:func:`kept_buffers`), and so is the random state (dropout and noise draws)."""
    with kept_buffers(model), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        yield


def vat_perturbation(
    model: torch.nn.Module,
    x: torch.Tensor,
    xi: float = 1e-6,
    eps: float = 8.0,
    power_iterations: int = 1,
    target_logits: torch.Tensor | None = None,
) -> torch.Tensor:
    """The virtual adversarial perturbation of Miyato et al. (2018): ``eps`` times the unit direction
    ``r`` (per example) that most increases ``KL(p || model(x + r))``, found by ``power_iterations``
    steps of power iteration from a random direction, each a forward and backward pass with ``x`` moved
    by ``xi``.

    ``p`` is the softmax of ``target_logits`` (the model's own prediction on ``x`` if not given; a
    teacher's for Mean Teacher + VAT). Logits may be ``(N, C)`` or dense ``(N, C, *)``. The result is
    detached: no gradient reaches the model's parameters through it, and the extra passes change none
    of its buffers (BatchNorm statistics) nor the random state (see :func:`untouched`).
    """
    if power_iterations < 1:
        raise ValueError(f"power_iterations must be >= 1, got {power_iterations}")
    with untouched(model, x.device):
        if target_logits is None:
            with torch.no_grad():
                target_logits = _first_output(model(x))
        target = target_logits.detach()
        direction = torch.randn_like(x)
        with torch.enable_grad():  # also when called under no_grad: the direction needs its gradient
            direction = _power_iterations(model, x.detach(), target, direction, xi, power_iterations)
    return eps * _unit(direction).detach()


def _power_iterations(
    model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, direction: torch.Tensor, xi: float, count: int
) -> torch.Tensor:
    for _ in range(count):
        direction = (xi * _unit(direction)).requires_grad_()
        divergence = softmax_kl(_first_output(model(x + direction)), target)
        direction = torch.autograd.grad(divergence, direction)[0]
    return direction


def vat_cost(
    model: torch.nn.Module,
    x: torch.Tensor,
    logits: torch.Tensor | None = None,
    eps: float = 8.0,
    xi: float = 1e-6,
    power_iterations: int = 1,
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """The local distributional smoothness cost of VAT: ``KL(p(x) || model(x + r_adv))`` with ``p`` the
    (detached) prediction ``logits`` on ``x`` and ``r_adv`` from :func:`vat_perturbation`. Gradients
    reach the model through the pass at ``x + r_adv``, which like the power iteration leaves the
    model's buffers as they were."""
    if logits is None:
        with torch.no_grad(), untouched(model, x.device):
            logits = _first_output(model(x))
    perturbation = vat_perturbation(model, x, xi, eps, power_iterations, logits)
    with kept_buffers(model):
        adversarial = _first_output(model(x + perturbation))
    return softmax_kl(adversarial, logits.detach(), mask=mask, reduction=reduction)
