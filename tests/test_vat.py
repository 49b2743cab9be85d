"""Virtual adversarial training and Mean Teacher + VAT."""

import pytest
import torch
from torch import nn

from meanteacher.adversarial import vat_cost, vat_perturbation
from meanteacher.losses import softmax_kl
from meanteacher.methods import Batch, MeanTeacher, MeanTeacherVAT
from meanteacher.models import ConvNet13
from meanteacher.run.train import Trainer
from tests.helpers import tiny_config


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 32), nn.Tanh(), nn.Linear(32, 5))


def test_adversarial_direction_increases_kl_more_than_random_directions():
    model = _mlp()
    x = torch.randn(64, 3, 2, 2)
    with torch.no_grad():
        clean = model(x)
        adversarial = vat_perturbation(model, x, eps=0.5)
        assert torch.allclose(adversarial.flatten(1).norm(dim=1), torch.full((64,), 0.5), atol=1e-5)
        kl_adversarial = softmax_kl(model(x + adversarial), clean, reduction="none")
        for seed in range(5):
            random = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
            random = 0.5 * random / random.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            kl_random = softmax_kl(model(x + random), clean, reduction="none")
            assert (kl_adversarial > kl_random).float().mean() > 0.9
            assert kl_adversarial.mean() > 3 * kl_random.mean()


def test_extra_passes_leave_buffers_gradients_and_random_state_alone():
    torch.manual_seed(0)
    model = ConvNet13(10, 1, width=0.125, pools=1)  # batch norm, dropout, input noise
    x = torch.randn(16, 1, 8, 8)
    buffers = [b.clone() for b in model.buffers()]
    rng = torch.get_rng_state()
    vat_perturbation(model, x, eps=1.0, power_iterations=2)
    assert all(torch.equal(a, b) for a, b in zip(buffers, model.buffers()))
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(rng, torch.get_rng_state())
    cost = vat_cost(model, x, eps=1.0)
    assert all(torch.equal(a, b) for a, b in zip(buffers, model.buffers()))
    cost.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_vat_on_dense_outputs():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 3, 1))
    x = torch.randn(4, 1, 6, 6)
    perturbation = vat_perturbation(model, x, eps=0.3)
    assert perturbation.shape == x.shape
    cost = vat_cost(model, x, eps=0.3, mask=torch.ones(4, 6, 6, dtype=torch.bool))
    assert cost.dim() == 0 and float(cost.detach()) > 0


def _views():
    torch.manual_seed(1)
    x = torch.randn(12, 1, 8, 8)
    labels = torch.tensor([0, 1, 2, 3] + [-1] * 8)
    return Batch(x + 0.1 * torch.randn_like(x), labels, teacher_input=x + 0.1 * torch.randn_like(x))


def test_mean_teacher_vat_with_zero_eps_is_mean_teacher_exactly():
    batch = _views()
    results = []
    for cls, options in ((MeanTeacher, {}), (MeanTeacherVAT, {"eps": 0.0})):
        torch.manual_seed(5)
        model = ConvNet13(10, 1, width=0.125, pools=1)
        method = cls(model, consistency=2.0, ema_decay=0.9, **options)
        torch.manual_seed(7)
        total, logs = method.loss(batch, 3)
        total.backward()
        results.append(
            (
                total.detach(),
                [p.grad.clone() for p in model.parameters()],
                [b.clone() for b in model.buffers()],
                [b.clone() for b in method.teacher.module.buffers()],
                torch.get_rng_state(),
            )
        )
    (total_a, grads_a, buffers_a, teacher_a, rng_a), (total_b, grads_b, buffers_b, teacher_b, rng_b) = results
    assert torch.equal(total_a, total_b)
    assert all(torch.equal(a, b) for a, b in zip(grads_a, grads_b))
    assert all(torch.equal(a, b) for a, b in zip(buffers_a, buffers_b))
    assert all(torch.equal(a, b) for a, b in zip(teacher_a, teacher_b))
    assert torch.equal(rng_a, rng_b)


def test_mean_teacher_vat_trains_like_mean_teacher_at_zero_eps_and_differently_above(tmp_path):
    runs = {}
    for name, settings in (
        ("mt", {}),
        ("mtvat0", {"method": "mean-teacher-vat", "method_options": {"mean-teacher-vat": {"eps": 0.0}}}),
        ("mtvat", {"method": "mean-teacher-vat", "method_options": {"mean-teacher-vat": {"eps": 2.0}}}),
    ):
        trainer = Trainer(
            tiny_config(steps=10, eval_every=10, checkpoint_every=10, **settings), tmp_path / name, progress=False
        )
        trainer.run()
        runs[name] = list(trainer.training_step.model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(runs["mt"], runs["mtvat0"]))
    assert any(not torch.equal(a, b) for a, b in zip(runs["mt"], runs["mtvat"]))


@pytest.mark.parametrize("entropy_weight", [0.0, 0.5])
def test_vat_method_trains(tmp_path, entropy_weight):
    summary = Trainer(
        tiny_config(
            method="vat",
            consistency=1.0,
            method_options={"vat": {"eps": 2.0, "entropy_weight": entropy_weight}},
            steps=40,
            eval_every=40,
            checkpoint_every=40,
        ),
        tmp_path / "vat",
        progress=False,
    ).run()
    assert summary["ema_error"] < 0.85  # chance is 0.9
