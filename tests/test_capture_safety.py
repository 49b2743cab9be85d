"""The training step can be captured in a CUDA graph: schedules as device tensors, no host reads.

CUDA-graph capture itself needs a GPU; what makes a step capturable can be checked on the CPU: the
step reads no tensor value on the host (that would synchronise, and fail under capture), and serving
the schedules as in-place-updated 0-dim tensors trains exactly like serving them as floats.
"""

import dataclasses

import pytest
import torch

from meanteacher.config import Config
from meanteacher.config.checks import validate
from meanteacher.errors import MeanTeacherError
from meanteacher.methods import Batch
from meanteacher.run.graphs import GraphedStep
from meanteacher.run.hyperparameters import StepHyperparameters, hyperparameters_at
from meanteacher.run.train import Trainer
from tests.helpers import HostReads, tiny_config


def _guarded_step(trainer, step):
    """``trainer.train_step``'s optimisation part (cost, backward, optimizer step, EMA update),
    recording host reads."""
    trainer.training_step.hyperparameters.set_step(step)
    batch = trainer.batch(step)
    with HostReads() as guard:
        logs = trainer.training_step.optimize(batch)
    assert guard.reads == [], f"the step read tensors on the host: {guard.reads}"
    return logs


CASES = {
    "mean-teacher": {},
    "mean-teacher-unlabeled-only-two-heads": {
        "consistency_on_labeled": False,
        "logit_distance": 0.01,
        "arch_options": {"width": 0.125, "pools": 1, "heads": 2},
    },
    "pi": {"method": "pi"},
    "temporal-ensembling": {"method": "temporal-ensembling"},
    "supervised": {"method": "supervised"},
    "vat": {"method": "vat", "method_options": {"vat": {"eps": 1.0}}},
    "mean-teacher-vat": {"method": "mean-teacher-vat", "method_options": {"mean-teacher-vat": {"eps": 1.0}}},
    "mean-teacher-pseudo-labels": {"consistency_type": "pseudo:0.2"},
    "mean-teacher-adaptive-threshold": {"consistency_type": "pseudo:adaptive"},
    "fixmatch": {"method": "fixmatch", "consistency_type": "pseudo:0.2"},
    "fixmatch-adaptive-threshold": {"method": "fixmatch", "consistency_type": "pseudo:adaptive"},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_training_step_reads_no_tensor_on_the_host(tmp_path, case):
    trainer = Trainer(tiny_config(device_schedules=True, **CASES[case]), tmp_path, progress=False)
    logs = _guarded_step(trainer, 0)
    if case == "temporal-ensembling":
        trainer.training_step.method.end_epoch()  # with targets now: the other branch-free path
        logs = _guarded_step(trainer, 1)
        assert float(logs["consistency_weight"]) > 0
    assert torch.isfinite(torch.stack([v.float() for v in logs.values()])).all()


def test_the_guard_catches_host_reads(tmp_path):
    """The guard must see what would break capture: a supervised batch not known to be all labeled
    (checked with ``bool``), a Python-scalar lerp weight given as a tensor (read in C++), a boolean mask,
    a Python number assigned through an index (temporal ensembling's did that, and failed on a GPU)."""
    trainer = Trainer(tiny_config(method="supervised", device_schedules=True), tmp_path, progress=False)
    batch = trainer.batch(0)
    batch.all_labeled = False
    with HostReads() as guard:
        trainer.training_step.method.loss(batch, 0)
    assert "aten._local_scalar_dense" in guard.reads
    with HostReads() as guard:
        torch._foreach_lerp_([torch.zeros(3)], [torch.ones(3)], torch.tensor(0.5))
    assert guard.reads == ["aten._local_scalar_dense"]
    with HostReads() as guard:
        torch.arange(4.0)[torch.tensor([True, False, True, False])]
    assert guard.reads
    seen, indices = torch.zeros(4, dtype=torch.bool), torch.tensor([1, 3])
    with HostReads() as guard:
        seen[indices] = True  # made on the host and copied on a GPU: refused in a CUDA graph
    assert guard.reads == ["aten.index_put_ of a Python number"]
    with HostReads() as guard:
        seen.index_fill_(0, indices, True)
        seen[indices] = torch.ones_like(indices, dtype=torch.bool)
    assert guard.reads == []


# The equivalence tests below train a float64 ConvNet (tests.helpers.Float64): the claims are exact
# in real arithmetic, and in float32 Adam turns kernel-dependent rounding into differences as large as
# a bug's (see Float64). Measured under ATEN_CPU_CAPABILITY=default/avx2/avx512 and
# ONEDNN_MAX_CPU_ISA=AVX2/AVX512_CORE/AVX512_CORE_BF16 (AMD EPYC, AVX-512): the paths agree to
# within 4.4e-16. Broken on purpose: device schedules left stale after step 5 differ by 6e-3 to 3e-2,
# and a resume that skips the optimizer's moments by 1.3e-2. TOLERANCE (1e-9) sits between, with
# six orders of margin each way.
EXACT = {"arch": "tests.helpers:convnet64"}
TOLERANCE = {"atol": 1e-9, "rtol": 0.0}


def _assert_same_training(reference, other):
    for a, b in zip(reference.training_step.model.parameters(), other.training_step.model.parameters()):
        torch.testing.assert_close(a, b, **TOLERANCE)
    for a, b in zip(
        reference.training_step.method.ema.module.state_dict().values(),
        other.training_step.method.ema.module.state_dict().values(),
    ):
        torch.testing.assert_close(a, b, **TOLERANCE)


@pytest.mark.parametrize("method", ["mean-teacher", "temporal-ensembling"])
def test_device_schedules_train_like_float_schedules(tmp_path, method):
    # 16 steps of 128 over 1347 images: temporal ensembling passes its first epoch end (step 11).
    config = tiny_config(
        method=method, steps=16, batch_size=128, labeled_per_batch=-1, eval_every=8, checkpoint_every=8, **EXACT
    )
    floats = Trainer(config, tmp_path / "floats", progress=False)
    tensors = Trainer(dataclasses.replace(config, device_schedules=True), tmp_path / "tensors", progress=False)
    assert isinstance(tensors.training_step.optimizer.param_groups[0]["lr"], torch.Tensor)
    floats.run()
    tensors.run()
    _assert_same_training(floats, tensors)
    if method == "temporal-ensembling":
        assert tensors.training_step.method.epochs == 1
        torch.testing.assert_close(
            tensors.training_step.method.ensemble, floats.training_step.method.ensemble, **TOLERANCE
        )


def _interrupted(config, run_dir, steps):
    """A run stopped after ``steps`` steps, with its checkpoint written."""
    run_dir.mkdir()
    trainer = Trainer(config, run_dir, progress=False)
    for _step in range(steps):
        trainer.step()
    trainer.save_checkpoint()


def test_resume_switches_between_float_and_device_schedules(tmp_path):
    """A checkpoint written with device schedules (CUDA-graph runs) resumes without them, and back,
    and both end where an uninterrupted run ends."""
    config = tiny_config(steps=16, batch_size=128, labeled_per_batch=-1, eval_every=4, checkpoint_every=4, **EXACT)
    device_schedules = dataclasses.replace(config, device_schedules=True)
    _interrupted(device_schedules, tmp_path / "a", 8)
    _interrupted(config, tmp_path / "b", 8)
    uninterrupted = Trainer(config, tmp_path / "c", progress=False)
    uninterrupted.run()
    resumed_plain = Trainer(config, tmp_path / "a", resume=True, progress=False)
    assert isinstance(resumed_plain.training_step.optimizer.param_groups[0]["lr"], float)
    assert all(state["step"].device.type == "cpu" for state in resumed_plain.training_step.optimizer.state.values())
    resumed_plain.run()
    resumed_tensors = Trainer(device_schedules, tmp_path / "b", resume=True, progress=False)
    assert (
        resumed_tensors.training_step.optimizer.param_groups[0]["lr"]
        is resumed_tensors.training_step.hyperparameters.tensors["lr"]
    )
    resumed_tensors.run()
    for trainer in (resumed_plain, resumed_tensors):
        _assert_same_training(uninterrupted, trainer)


def test_device_hyperparameters_follow_the_step():
    config = tiny_config(steps=100, rampup_steps=40, ema_decay=0.999, ema_decay_rampup=0.99)
    values = StepHyperparameters(config, torch.device("cpu"), on_device=True)
    lr = values.tensors["lr"]
    for step in (0, 20, 39, 40, 99):
        values.set_step(step)
        expected = hyperparameters_at(config, step)
        assert values.tensors["lr"] is lr  # updated in place: a captured graph keeps reading it
        for name, value in expected.items():
            assert float(values[name]) == pytest.approx(value, rel=1e-6, abs=1e-9), name
        assert float(values["step"]) == step


def test_cuda_graph_settings_that_cannot_work_are_refused(tmp_path):
    with pytest.raises(MeanTeacherError, match="cuda_graphs"):
        validate(Config(dataset="digits", cuda_graphs=True, optimizer="sgd"))
    with pytest.raises(MeanTeacherError, match="device_schedules"):
        validate(Config(dataset="digits", device_schedules=True, optimizer="sgd"))
    with pytest.raises(MeanTeacherError, match="cuda_graphs needs one process on a CUDA device"):
        Trainer(tiny_config(cuda_graphs=True, device="cpu"), tmp_path, progress=False)


def test_graphed_step_reads_every_batch_through_the_same_static_buffers():
    graphed = GraphedStep(lambda batch: {})
    first = Batch(torch.zeros(4, 3), torch.tensor([0, 1, -1, -1]), torch.ones(4, 3), torch.arange(4), all_labeled=False)
    static = graphed.load_batch(first)
    assert static.student_input is not first.student_input  # buffers of its own, filled by copying
    second = Batch(torch.full((4, 3), 2.0), torch.tensor([1, -1, -1, 0]), torch.full((4, 3), 3.0), torch.arange(4, 8))
    buffers = [static.student_input, static.labels, static.teacher_input, static.indices]
    again = graphed.load_batch(second)
    assert all(a is b for a, b in zip([again.student_input, again.labels, again.teacher_input, again.indices], buffers))
    for name in ("student_input", "labels", "teacher_input", "indices"):
        assert torch.equal(getattr(again, name), getattr(second, name)), name
    with pytest.raises(ValueError, match="student_input changed shape"):
        graphed.load_batch(
            Batch(torch.zeros(5, 3), torch.zeros(5, dtype=torch.long), torch.zeros(5, 3), torch.arange(5))
        )
