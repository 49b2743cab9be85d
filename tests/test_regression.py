"""The consistency cost must matter: with few labels, Mean Teacher's teacher beats supervised-only,
and beats the same Mean Teacher run whose consistency weight is zero.

The second comparison is the bug one popular library shipped (a consistency cost that was silently
always zero): such a run keeps the EMA teacher and the batch composition, and only loses the cost.
"""

import time

import pytest

from meanteacher.config import apply_settings, load_preset
from meanteacher.data.sources import load_dataset
from meanteacher.train import Trainer


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Test error of the three runs (teacher for Mean Teacher) and the seconds of the first two."""
    data = load_dataset("digits")
    runs = {
        "supervised": {"method": "supervised"},
        "mean-teacher": {"method": "mean-teacher"},
        "zero-consistency": {"method": "mean-teacher", "consistency": 0.0},
    }
    errors, seconds = {}, 0.0
    for name, settings in runs.items():
        start = time.perf_counter()
        config = apply_settings(load_preset("demo-digits"), {"seed": 0, **settings}, "test")
        summary = Trainer(config, tmp_path_factory.mktemp(name), progress=False, dataset=data).run()
        errors[name] = summary["teacher_error"] if summary["teacher_error"] is not None else summary["student_error"]
        if name != "zero-consistency":
            seconds += time.perf_counter() - start
    return errors, seconds


def test_mean_teacher_beats_supervised_on_real_digits(results):
    errors, seconds = results
    assert errors["mean-teacher"] < errors["supervised"] - 0.04, errors
    assert seconds < 60


def test_zero_consistency_weight_loses_the_gain(results):
    errors, _ = results
    assert errors["mean-teacher"] < errors["zero-consistency"] - 0.04, errors
