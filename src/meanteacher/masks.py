"""Masks that say where a consistency target is trusted, for the ``mask`` argument of the costs.

Dense tasks (segmentation) often apply the consistency cost only where the teacher is confident:

    mask = confidence_mask(teacher_logits, 0.9)
    cost = softmax_mse(student_logits, teacher_logits, mask=mask)

or, as in uncertainty-aware Mean Teacher (UA-MT, Yu et al. 2019), where the entropy of the teacher's
mean prediction over several noisy passes is below a threshold that rises during training:

    passes = torch.stack([teacher(noisy(x)) for _ in range(8)])
    mask = uncertainty_mask(passes, uncertainty_threshold(step, rampup_steps, num_classes))
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .schedules import sigmoid_rampup


def confidence_mask(teacher_logits: torch.Tensor, threshold: float) -> torch.Tensor:
    """``True`` at each position ``(N, *)`` where the teacher's top softmax probability is at least ``threshold``."""
    return F.softmax(teacher_logits.detach().float(), dim=1).amax(dim=1) >= threshold


def prediction_entropy(passes: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of the mean softmax prediction over noisy passes ``(T, N, C, *)``, per position ``(N, *)``."""
    if passes.dim() < 3:
        raise ValueError(f"passes must have shape (passes, batch, classes, *), got {tuple(passes.shape)}")
    mean = F.softmax(passes.detach().float(), dim=2).mean(dim=0)
    return -(mean * mean.clamp_min(1e-12).log()).sum(dim=1)


def uncertainty_threshold(step: float, rampup_steps: float, num_classes: int) -> float:
    """UA-MT's threshold: ``(0.75 + 0.25 * sigmoid_rampup(step, rampup_steps)) * ln(C)``, rising from
    three quarters of the largest possible entropy to all of it."""
    return (0.75 + 0.25 * sigmoid_rampup(step, rampup_steps)) * math.log(num_classes)


def uncertainty_mask(passes: torch.Tensor, threshold: float) -> torch.Tensor:
    """``True`` at each position ``(N, *)`` where the entropy of the mean prediction of the noisy teacher
    passes ``(T, N, C, *)`` is below ``threshold``."""
    return prediction_entropy(passes) < threshold
