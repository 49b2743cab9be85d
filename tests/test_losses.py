import math

import pytest
import torch

from meanteacher.losses import (
    NO_LABEL,
    classification_cost,
    consistency_cost,
    logit_distance,
    softmax_kl,
    softmax_mse,
    tau_consistency,
)


@pytest.fixture
def logits():
    generator = torch.Generator().manual_seed(0)
    return torch.randn(5, 4, generator=generator, dtype=torch.float64), torch.randn(
        5, 4, generator=generator, dtype=torch.float64
    )


def test_softmax_mse_matches_closed_form(logits):
    student, teacher = logits
    p, q = student.softmax(1), teacher.softmax(1)
    expected = sum(((p[i, k] - q[i, k]) ** 2).item() for i in range(5) for k in range(4)) / 20
    assert softmax_mse(student, teacher).item() == pytest.approx(expected, rel=1e-5)


def test_softmax_kl_is_teacher_to_student(logits):
    student, teacher = logits
    p, q = teacher.softmax(1), student.softmax(1)
    expected = (p * (p / q).log()).sum(1).mean().item()
    assert softmax_kl(student, teacher).item() == pytest.approx(expected, rel=1e-5)
    assert softmax_kl(teacher, teacher).item() == pytest.approx(0.0, abs=1e-6)


def test_consistency_costs_stop_gradient_on_teacher_side(logits):
    student, teacher = (t.clone().requires_grad_(True) for t in logits)
    for cost in (softmax_mse, softmax_kl, consistency_cost("tau:0.5")):
        student.grad = teacher.grad = None
        cost(student, teacher).backward()
        assert student.grad.abs().sum() > 0
        assert teacher.grad is None
        cost(student, teacher, detach_teacher=False).backward()
        assert teacher.grad.abs().sum() > 0


def test_tau_family_limits(logits):
    student, teacher = logits
    classes = student.shape[1]
    assert tau_consistency(student, teacher, 1.0).item() == pytest.approx(
        2.0 / classes**2 * softmax_kl(student, teacher).item(), rel=1e-5
    )
    assert tau_consistency(student, teacher, 1e-4).item() == pytest.approx(
        softmax_mse(student, teacher).item(), rel=1e-3
    )
    # strictly between: a different value than either end
    middle = tau_consistency(student, teacher, 0.5).item()
    assert middle != pytest.approx(softmax_mse(student, teacher).item(), rel=1e-3)


def test_logit_distance_gradients_reach_both_heads():
    a = torch.tensor([[1.0, 2.0]], requires_grad=True)
    b = torch.tensor([[0.0, 4.0]], requires_grad=True)
    value = logit_distance(a, b)
    assert value.item() == pytest.approx((1 + 4) / 2)
    value.backward()
    assert torch.allclose(a.grad, torch.tensor([[1.0, -2.0]]))
    assert torch.allclose(b.grad, -a.grad)


def test_classification_cost_ignores_no_label_and_normalizes():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [5.0, -5.0], [1.0, 1.0]])
    labels = torch.tensor([0, 1, NO_LABEL, NO_LABEL])
    ce = [math.log(1 + math.exp(-2.0)), math.log(1 + math.exp(-1.0))]
    assert classification_cost(logits, labels).item() == pytest.approx(sum(ce) / 4, rel=1e-5)
    assert classification_cost(logits, labels, "labeled").item() == pytest.approx(sum(ce) / 2, rel=1e-5)
    none = torch.full((4,), NO_LABEL)
    assert classification_cost(logits, none, "labeled").item() == 0.0


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: softmax_mse(torch.zeros(3, 4), torch.zeros(3, 5)), "teacher_logits"),
        (lambda: softmax_mse(torch.zeros(4), torch.zeros(4)), "student_logits"),
        (lambda: classification_cost(torch.zeros(3, 4), torch.zeros(2, dtype=torch.long)), "labels"),
        (lambda: classification_cost(torch.zeros(3, 4), torch.zeros(3, dtype=torch.long), "bogus"), "normalize"),
        (lambda: tau_consistency(torch.zeros(3, 4), torch.zeros(3, 4), 0.0), "tau"),
        (lambda: tau_consistency(torch.zeros(3, 4), torch.zeros(3, 4), 1.5), "tau"),
        (lambda: consistency_cost("tau:2"), "tau"),
        (lambda: consistency_cost("l1"), "consistency type"),
    ],
)
def test_bad_input_raises_value_error_naming_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()
