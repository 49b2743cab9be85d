import pytest
import torch
from torch import nn

from meanteacher.teacher import EMATeacher
from tests.helpers import HostReads


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


def _perturb(module, amount):
    with torch.no_grad():
        for p in module.parameters():
            p.add_(amount)


def test_ema_matches_hand_computation_with_warmup():
    student = _net()
    teacher = EMATeacher(student, decay=0.9)
    expected = [p.detach().clone() for p in student.parameters()]
    for step in range(1, 6):
        _perturb(student, 0.1 * step)
        teacher.update(student, step)
        alpha = min(1 - 1 / (step + 1), 0.9)
        expected = [alpha * e + (1 - alpha) * p.detach() for e, p in zip(expected, student.parameters())]
    for e, t in zip(expected, teacher.module.parameters()):
        assert torch.allclose(e, t, atol=1e-6)
    assert teacher.alpha(1) == 0.5
    assert teacher.alpha(1000) == 0.9


def test_decay_zero_makes_teacher_equal_student():
    student = _net()
    teacher = EMATeacher(student, decay=0.0)
    _perturb(student, 0.7)
    teacher.update(student, 100)
    for s, t in zip(student.parameters(), teacher.module.parameters()):
        assert torch.equal(s, t)


def test_decay_override_and_tensor_decay():
    student = _net()
    teacher = EMATeacher(student, decay=0.99)
    before = [p.clone() for p in teacher.module.parameters()]
    _perturb(student, 1.0)
    teacher.update(student, torch.tensor(10), decay=torch.tensor(0.5))
    for b, s, t in zip(before, student.parameters(), teacher.module.parameters()):
        assert torch.allclose(t, 0.5 * b + 0.5 * s)


@pytest.mark.parametrize("buffers", ["own", "copy", "average"])
def test_tensor_step_and_decay_match_floats_without_host_reads(buffers):
    """0-dim tensors for step and decay (what a CUDA graph needs) give the float update, and the
    update never reads them on the host."""
    student = _net()
    with_floats, with_tensors = EMATeacher(student, 0.9, buffers), EMATeacher(student, 0.9, buffers)
    student(torch.randn(16, 3))  # moves the student's BatchNorm statistics
    for step in range(1, 4):
        _perturb(student, 0.1 * step)
        with_floats.update(student, step, 0.9)
        with HostReads() as guard:
            with_tensors.update(student, torch.tensor(float(step)), torch.tensor(0.9))
        assert guard.reads == []
    for a, b in zip(with_floats.module.state_dict().values(), with_tensors.module.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_no_gradient_reaches_teacher():
    student = _net()
    teacher = EMATeacher(student)
    assert all(not p.requires_grad for p in teacher.module.parameters())
    out = student(torch.randn(8, 3)).sum() + teacher.module(torch.randn(8, 3)).sum()
    out.backward()
    assert all(p.grad is None for p in teacher.module.parameters())
    assert all(p.grad is not None for p in student.parameters())


def test_buffer_policies():
    student = _net()
    student.train()
    student(torch.randn(16, 3) * 5 + 3)  # changes the student's running stats
    stats = student[1].running_mean.clone()
    own = EMATeacher(_net(), buffers="own")
    copied = EMATeacher(_net(), buffers="copy")
    averaged = EMATeacher(_net(), decay=0.5, buffers="average")
    for teacher in (own, copied, averaged):
        teacher.update(student, 10)
    assert torch.equal(own.module[1].running_mean, torch.zeros(4))
    assert torch.equal(copied.module[1].running_mean, stats)
    assert torch.allclose(averaged.module[1].running_mean, 0.5 * stats)
    assert copied.module[1].num_batches_tracked.item() == 1


def test_state_dict_round_trip():
    student = _net()
    teacher = EMATeacher(student, decay=0.95)
    _perturb(student, 0.3)
    teacher.update(student, 3)
    restored = EMATeacher(_net(), decay=0.5)
    restored.load_state_dict(teacher.state_dict())
    assert restored.decay == 0.5  # a setting of the constructor's, not state
    for a, b in zip(teacher.module.state_dict().values(), restored.module.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("decay", [1.0, -0.1, 1.5])
def test_bad_decay(decay):
    with pytest.raises(ValueError, match="decay"):
        EMATeacher(_net(), decay=decay)
    teacher = EMATeacher(_net())
    with pytest.raises(ValueError, match="decay"):
        teacher.update(_net(), 1, decay=decay)


def test_bad_buffers_and_architecture():
    with pytest.raises(ValueError, match="buffers"):
        EMATeacher(_net(), buffers="mean")
    teacher = EMATeacher(_net())
    with pytest.raises(ValueError, match="architecture"):
        teacher.update(nn.Linear(3, 2), 1)


def test_burn_in_copies_the_student_then_averages():
    student = _net()
    teacher = EMATeacher(student, decay=0.9, update_after_step=3)
    for step in (1, 2, 3):
        _perturb(student, 0.5)
        teacher.update(student, step)
        assert all(torch.equal(s, t) for s, t in zip(student.parameters(), teacher.module.parameters()))
    before = [p.clone() for p in teacher.module.parameters()]
    _perturb(student, 0.5)
    teacher.update(student, 4)  # alpha = min(1 - 1/5, 0.9) = 0.8
    for b, s, t in zip(before, student.parameters(), teacher.module.parameters()):
        torch.testing.assert_close(t, 0.8 * b + 0.2 * s)
    assert int(teacher.num_updates) == 4


@pytest.mark.parametrize("as_tensor", [False, True], ids=["int-step", "tensor-step"])
def test_update_every_skips_steps_and_counts_updates(as_tensor):
    student = _net()
    teacher = EMATeacher(student, decay=0.5, buffers="average", update_every=3)
    for step in range(1, 7):
        before = [p.clone() for p in teacher.module.parameters()]
        _perturb(student, 1.0)
        with HostReads() as guard:
            teacher.update(student, torch.tensor(step) if as_tensor else step)
        assert guard.reads == [] or not as_tensor
        moved = any(not torch.equal(b, t) for b, t in zip(before, teacher.module.parameters()))
        assert moved == (step % 3 == 0), step
    assert int(teacher.num_updates) == 2
    assert teacher.state_dict()["updates"] == 2
    restored = EMATeacher(_net(), update_every=3)
    restored.load_state_dict(teacher.state_dict())
    assert int(restored.num_updates) == 2 and restored.update_every == 3


def test_integer_buffers_are_copied_never_averaged():
    student = _net()
    teacher = EMATeacher(student, decay=0.9, buffers="average")
    student.train()
    for _ in range(7):
        student(torch.randn(8, 3))  # num_batches_tracked -> 7, running stats move
    teacher.update(student, 100)
    bn_student, bn_teacher = student[1], teacher.module[1]
    assert bn_teacher.num_batches_tracked.dtype == torch.long and int(bn_teacher.num_batches_tracked) == 7
    torch.testing.assert_close(bn_teacher.running_mean, 0.1 * bn_student.running_mean)  # averaged from 0


def test_device_argument_places_teacher_and_counter():
    student = _net()  # on a CPU-only machine the CPU is the only device; the GPU case is the next test
    teacher = EMATeacher(student, decay=0.0, device="cpu")
    assert teacher.device.type == "cpu" and teacher.num_updates.device.type == "cpu"
    _perturb(student, 1.0)
    teacher.update(student, 5)
    assert all(torch.equal(s, t) for s, t in zip(student.parameters(), teacher.module.parameters()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU to hold the student")
def test_teacher_on_cpu_for_a_gpu_student():
    student = _net().cuda()
    teacher = EMATeacher(student, decay=0.0, device="cpu")
    _perturb(student, 1.0)
    teacher.update(student, 5)
    assert next(teacher.module.parameters()).device.type == "cpu"
    assert all(torch.equal(s.cpu(), t) for s, t in zip(student.parameters(), teacher.module.parameters()))


def test_unwraps_compiled_and_distributed_students(tmp_path):
    import torch.distributed as dist

    student = _net()
    compiled = torch.compile(student)  # compiles lazily: nothing is compiled here
    teacher = EMATeacher(compiled, decay=0.0)
    assert type(teacher.module) is nn.Sequential
    _perturb(student, 1.0)
    teacher.update(compiled, 2)
    assert all(torch.equal(s, t) for s, t in zip(student.parameters(), teacher.module.parameters()))
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        wrapped = nn.parallel.DistributedDataParallel(student)
        teacher = EMATeacher(wrapped, decay=0.0)
        assert type(teacher.module) is nn.Sequential
        _perturb(student, 1.0)
        teacher.update(wrapped, 2)
        assert all(torch.equal(s, t) for s, t in zip(student.parameters(), teacher.module.parameters()))
    finally:
        dist.destroy_process_group()


def test_another_architecture_names_the_first_mismatched_parameter():
    teacher = EMATeacher(_net())
    wider = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.Linear(5, 2))
    with pytest.raises(
        ValueError, match=r"student parameter '0.weight' \(5, 3\) does not match the teacher's '0.weight' \(4, 3\)"
    ):
        teacher.update(wider, 1)
    deeper = nn.Sequential(*_net(), nn.Linear(2, 2))
    with pytest.raises(ValueError, match="student has a parameter the teacher lacks, '3.weight'"):
        teacher.update(deeper, 1)
    shallower = nn.Sequential(nn.Linear(3, 4))
    with pytest.raises(ValueError, match="student has no parameter '1.weight'"):
        teacher.update(shallower, 1)


def test_a_teacher_keeps_its_own_decay_when_it_loads_a_checkpoint_that_held_one():
    """Checkpoints of earlier versions kept the decay, which the methods override at every update: it
    loads, and is not read back."""
    student = torch.nn.Linear(3, 2)
    saved = EMATeacher(student, decay=0.5).state_dict()
    assert "decay" not in saved
    teacher = EMATeacher(student, decay=0.99)
    teacher.load_state_dict({**saved, "decay": 0.5})
    assert teacher.decay == 0.99 and teacher.alpha(10**6) == 0.99
