"""The consistency cost must matter: with few labels, Mean Teacher's teacher beats supervised-only.

A single run of a small network on 450 test images is chaotic: which CPU kernels PyTorch picks
(``ATEN_CPU_CAPABILITY``, ``ONEDNN_MAX_CPU_ISA``) changes its result by several points. So the
comparison is paired over several label sets (seeds): the same labeled images, batches and noise for
both methods, and the gain is judged against its spread over the seeds. Both methods are evaluated on
EMA weights, as in the paper.

This fails when the consistency cost is silently zero (the bug one popular library shipped: Mean
Teacher then trains like supervised-only) and when the teacher stops following the student; both
were checked by breaking the code on purpose. About 2.5 minutes on 2 AVX2 cores.
"""

import math
import statistics

import pytest

from meanteacher.config import apply_settings
from meanteacher.config.toml import load_preset
from meanteacher.data.sources import load_dataset
from meanteacher.run.train import Trainer

SEEDS = (0, 1, 2, 3)
# The demo preset at width 0.125 and 400 steps: a quarter of the demo's cost per run. Measured over
# seeds 0-5 on an AVX-512 CPU: gains of 2.0 to 10.0 points (mean 5.7, sd 2.8).
SETTINGS = {
    "arch_options": {"width": 0.125, "pools": 1, "dropout": 0.0},
    "steps": 400,
    "rampup_steps": 130,
    "rampdown_steps": 100,
    "eval_every": 400,
    "checkpoint_every": 400,
}


@pytest.fixture(scope="module")
def gains(tmp_path_factory):
    """Per seed: supervised-only's EMA error minus Mean Teacher's teacher error (positive: MT better)."""
    data = load_dataset("digits")
    base = apply_settings(load_preset("demo-digits"), SETTINGS, "test")
    result = []
    for seed in SEEDS:
        errors = {}
        for method in ("supervised", "mean-teacher"):
            config = apply_settings(base, {"seed": seed, "method": method}, "test")
            errors[method] = Trainer(
                config, tmp_path_factory.mktemp(f"{method}-{seed}"), progress=False, dataset=data
            ).run()["ema_error"]
        result.append(errors["supervised"] - errors["mean-teacher"])
    return result


def test_mean_teacher_beats_supervised_paired_over_label_sets(gains):
    mean, spread = statistics.fmean(gains), statistics.stdev(gains)
    standard_error = spread / math.sqrt(len(gains))
    assert mean > 0.02, f"mean gain {mean:.4f} (gains per seed {gains})"
    assert mean > 2 * standard_error, (
        f"mean gain {mean:.4f} is within 2 standard errors ({standard_error:.4f}); gains {gains}"
    )
