import math

import pytest

from meanteacher.schedules import (
    cosine_rampdown,
    interpolate,
    linear_rampup,
    sigmoid_rampdown,
    sigmoid_rampup,
    step_switch,
)


def test_sigmoid_rampup_start_middle_end():
    assert sigmoid_rampup(0, 100) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(50, 100) == pytest.approx(math.exp(-5 * 0.25))
    assert sigmoid_rampup(100, 100) == 1.0
    assert sigmoid_rampup(1000, 100) == 1.0
    assert sigmoid_rampup(3, 0) == 1.0


def test_sigmoid_rampdown_start_middle_end():
    assert sigmoid_rampdown(0, 1000, 200) == 1.0
    assert sigmoid_rampdown(800, 1000, 200) == 1.0
    assert sigmoid_rampdown(900, 1000, 200) == pytest.approx(math.exp(-12.5 * 0.25))
    assert sigmoid_rampdown(1000, 1000, 200) == pytest.approx(math.exp(-12.5))


def test_cosine_and_linear():
    assert cosine_rampdown(0, 10) == 1.0
    assert cosine_rampdown(5, 10) == pytest.approx(0.5)
    assert cosine_rampdown(10, 10) == pytest.approx(0.0)
    assert linear_rampup(0, 4) == 0.0
    assert linear_rampup(1, 4) == 0.25
    assert linear_rampup(9, 4) == 1.0


def test_adam_beta1_rampdown_and_step_switch():
    assert interpolate(1.0, 0.9, 0.5) == pytest.approx(0.9)
    assert interpolate(0.0, 0.9, 0.5) == pytest.approx(0.5)
    assert step_switch(39_999, 40_000, 0.99, 0.999) == 0.99
    assert step_switch(40_000, 40_000, 0.99, 0.999) == 0.999
