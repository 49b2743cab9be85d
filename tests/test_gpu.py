"""GPU-only checks of the fast step; skipped where no CUDA device is present (CI has none).

They run with the rest of the suite on a GPU machine (`make test`, or `benchmarks/gpu_check.sh`):
the captured step equals the same arithmetic run eagerly while its per-step values change, it stays
close to the default eager path, a step never synchronises with the host, and a captured run resumes.
"""

import pytest
import torch

from meanteacher.run.hyperparameters import hyperparameters_at
from meanteacher.run.train import Trainer
from meanteacher.teacher import unwrap
from tests.helpers import tiny_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

# Ramps shorter than the run: the learning rate, beta1, beta2, the EMA decay and the consistency weight
# change across the replays, so a value frozen at capture (step 3) makes the graph drift from its twin.
STABLE = {
    "steps": 30,
    "batch_size": 128,
    "labeled_per_batch": -1,
    "eval_every": 10,
    "checkpoint_every": 10,
    "rampup_steps": 12,
    "rampdown_steps": 12,
    "ema_decay_rampup": 0.9,
    "ema_decay": 0.99,
    "device": "cuda",
    "deterministic": True,
}
METHODS = ["mean-teacher", "temporal-ensembling", "pi", "supervised"]


def _state(trainer):
    return list(unwrap(trainer.training_step.model).state_dict().values()) + list(
        trainer.training_step.method.ema.module.state_dict().values()
    )


def _largest_difference(a, b):
    return max(float((x.double() - y.double()).abs().max()) for x, y in zip(_state(a), _state(b), strict=True))


@pytest.mark.parametrize("method", METHODS)
def test_captured_step_equals_the_same_step_run_eagerly(tmp_path, method):
    config = tiny_config(method=method, **STABLE)
    graphed = Trainer(tiny_config(method=method, cuda_graphs=True, **STABLE), tmp_path / "graphed", progress=False)
    twin = Trainer(tiny_config(method=method, device_schedules=True, **STABLE), tmp_path / "twin", progress=False)
    for trainer in (graphed, twin):
        trainer.training_step.method.model.train()
    changing = set()
    for step in range(STABLE["steps"]):
        has_targets = (
            float(getattr(graphed.training_step.method, "target_scale", 1.0)) > 0
        )  # temporal ensembling: after an epoch
        graphed_logs = {k: v.clone() for k, v in graphed.step().items()}
        twin_logs = twin.step()
        assert _largest_difference(graphed, twin) <= 1e-6, f"step {step}"
        for name in graphed_logs.keys() & twin_logs.keys():
            torch.testing.assert_close(graphed_logs[name].float(), twin_logs[name].float(), atol=1e-6, rtol=0.0)
        expected = hyperparameters_at(config, step)
        if "consistency_weight" in graphed_logs:
            assert float(graphed_logs["consistency_weight"]) == pytest.approx(
                expected["consistency_weight"] * has_targets, rel=1e-5, abs=1e-7
            )
        if step >= 4:
            before = hyperparameters_at(config, step - 1)
            changing |= {name for name in expected if expected[name] != before[name]}
    assert graphed.training_step.optimize.graph is not None  # captured and replayed, not eager all along
    assert {"lr", "adam_beta1", "consistency_weight"} <= changing  # the replays saw values change


@pytest.mark.parametrize("method", METHODS)
def test_captured_run_stays_close_to_the_default_eager_run(tmp_path, method):
    # Another optimizer implementation and float schedules: equal in real arithmetic, not in float32,
    # where Adam amplifies rounding (about 2e-3 after 16 steps on the CPU). A bug differs by far more.
    eager = Trainer(tiny_config(method=method, **STABLE), tmp_path / "eager", progress=False)
    graphed = Trainer(tiny_config(method=method, cuda_graphs=True, **STABLE), tmp_path / "graphed", progress=False)
    eager.run()
    graphed.run()
    for model_a, model_b in zip(
        eager.training_step.method.evaluation_models().values(),
        graphed.training_step.method.evaluation_models().values(),
    ):
        for a, b in zip(model_a.parameters(), model_b.parameters()):
            torch.testing.assert_close(a, b, atol=2e-2, rtol=0.0)


@pytest.mark.parametrize("precision, view", [("fp32", "weak"), ("bf16", "weak"), ("bf16", "strong")])
def test_step_does_not_synchronise_with_the_host(tmp_path, precision, view):
    """The whole step, the views included: the strong one makes its constants once per device."""
    settings = {**STABLE, "deterministic": False, "student_view": view}
    trainer = Trainer(
        tiny_config(cuda_graphs=True, precision=precision, channels_last=True, normalize="standardize", **settings),
        tmp_path,
        progress=False,
    )
    trainer.training_step.method.model.train()
    for _step in range(5):  # warm-up, capture, first replays
        trainer.step()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _step in range(5, 10):
            trainer.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_cuda_graph_run_resumes_to_the_uninterrupted_result(tmp_path):
    config = tiny_config(cuda_graphs=True, **STABLE)
    whole = Trainer(config, tmp_path / "whole", progress=False)
    whole.run()
    (tmp_path / "parts").mkdir()
    first = Trainer(config, tmp_path / "parts", progress=False)
    first.training_step.method.model.train()
    for _step in range(12):
        first.step()
    first.save_checkpoint()
    resumed = Trainer(config, tmp_path / "parts", resume=True, progress=False)
    resumed.run()
    for a, b in zip(
        whole.training_step.method.ema.module.parameters(), resumed.training_step.method.ema.module.parameters()
    ):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0.0)


def test_a_gpu_checkpoint_loads_on_the_cpu(tmp_path):
    from meanteacher.inference import load_model

    Trainer(tiny_config(**{**STABLE, "steps": 10}), tmp_path, progress=False).run()
    model = load_model(tmp_path)
    assert all(p.device.type == "cpu" for p in model.parameters())
