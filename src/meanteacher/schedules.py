"""Ramp-ups, ramp-downs and step switches used by the paper's runs.

Each schedule is a plain function of the step returning a float multiplier, so a user can compose
them freely, e.g. ``lr = 0.003 * sigmoid_rampup(step, 40_000) * sigmoid_rampdown(step, 180_000, 50_000)``.
"""

from __future__ import annotations

import math


def _fraction(step: float, length: float) -> float:
    if length <= 0:
        return 1.0
    return min(max(step / length, 0.0), 1.0)


def sigmoid_rampup(step: float, length: float) -> float:
    """``exp(-5 (1 - x)**2)`` with ``x = step / length`` clipped to [0, 1]; 1 when ``length`` is 0."""
    if length <= 0:
        return 1.0
    x = _fraction(step, length)
    return math.exp(-5.0 * (1.0 - x) ** 2)


def linear_rampup(step: float, length: float) -> float:
    """Linear warm-up from 0 to 1 over ``length`` steps; 1 when ``length`` is 0."""
    return _fraction(step, length)


def sigmoid_rampdown(step: float, total_steps: float, length: float) -> float:
    """The TensorFlow runs' ramp-down: 1 until ``total_steps - length``, then ``exp(-12.5 x**2)``.

    ``x`` goes from 0 to 1 over the last ``length`` steps, so the multiplier reaches ``exp(-12.5)``
    (about 4e-6) at the end of training.
    """
    if length <= 0 or step < total_steps - length:
        return 1.0
    x = 1.0 - _fraction(total_steps - step, length)
    return math.exp(-12.5 * x * x)


def cosine_rampdown(step: float, length: float) -> float:
    """Cosine annealing ``0.5 (cos(pi x) + 1)`` from 1 to 0 over ``length`` steps (0 after)."""
    if length <= 0:
        return 1.0
    x = _fraction(step, length)
    return 0.5 * (math.cos(math.pi * x) + 1.0)


def interpolate(weight: float, at_one: float, at_zero: float) -> float:
    """``weight * at_one + (1 - weight) * at_zero``: e.g. Adam's beta1 going 0.9 -> 0.5 with a ramp-down."""
    return weight * at_one + (1.0 - weight) * at_zero


def step_switch(step: float, switch_step: float, before: float, after: float) -> float:
    """``before`` for steps below ``switch_step``, ``after`` from it on (the paper's beta2 and EMA switch)."""
    return before if step < switch_step else after
