"""Dense outputs (segmentation): the costs on (N, C, *) logits with masks, and Mean Teacher on a dense model."""

import math

import pytest
import torch
from torch import nn

from meanteacher.losses import NO_LABEL, classification_cost, logit_distance, softmax_kl, softmax_mse, tau_consistency
from meanteacher.masks import confidence_mask, prediction_entropy, uncertainty_mask, uncertainty_threshold
from meanteacher.methods import Batch, MeanTeacher, Supervised

SHAPES = [(4, 5, 6, 7), (3, 4, 2, 5, 6)]


def _reference_positions(name, a, b, labels=None):
    """The cost at each position, written out directly over the class dimension."""
    if name == "ce":
        log_p = a.double().log_softmax(1)
        picked = log_p.gather(1, labels.clamp_min(0).unsqueeze(1)).squeeze(1)
        return -picked * (labels != NO_LABEL)
    p, q = a.double().softmax(1), b.double().softmax(1)
    if name == "mse":
        return ((p - q) ** 2).mean(1)
    if name == "kl":
        return (q * (q.log() - p.log())).sum(1)
    if name == "tau":
        c, tau = a.shape[1], 0.3
        pt, qt = tau * p + (1 - tau) / c, tau * q + (1 - tau) / c
        return 2 / (c * c * tau * tau) * (qt * (qt.log() - pt.log())).sum(1)
    return ((a.double() - b.double()) ** 2).mean(1)  # logit distance


COSTS = {
    "mse": lambda a, b, **k: softmax_mse(a, b, **k),
    "kl": lambda a, b, **k: softmax_kl(a, b, **k),
    "tau": lambda a, b, **k: tau_consistency(a, b, 0.3, **k),
    "logit": lambda a, b, **k: logit_distance(a, b, **k),
}


@pytest.mark.parametrize("shape", SHAPES, ids=["NCHW", "NCDHW"])
@pytest.mark.parametrize("name", sorted(COSTS))
def test_dense_costs_equal_a_direct_computation(shape, name):
    torch.manual_seed(0)
    a, b = torch.randn(shape), torch.randn(shape)
    positions = _reference_positions(name, a, b)
    cost = COSTS[name]
    torch.testing.assert_close(cost(a, b).double(), positions.mean(), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(cost(a, b, reduction="sum").double(), positions.sum(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(cost(a, b, reduction="none").double(), positions, rtol=1e-5, atol=1e-7)
    bool_mask = torch.rand(shape[:1] + shape[2:]) > 0.5
    weights = torch.rand(shape[:1] + shape[2:])
    for mask in (bool_mask, weights):
        expected = (positions * mask).sum() / mask.double().sum()
        torch.testing.assert_close(cost(a, b, mask=mask).double(), expected, rtol=1e-5, atol=1e-7)
    channel_mask = torch.rand(shape[0], *([1] * (len(shape) - 2))) > 0.3  # one weight per image, broadcast
    expected = (positions * channel_mask).sum() / torch.broadcast_to(channel_mask, positions.shape).double().sum()
    torch.testing.assert_close(cost(a, b, mask=channel_mask).double(), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", sorted(COSTS))
def test_an_empty_mask_costs_zero_without_nan(name):
    a = torch.randn(2, 3, 4, 4, requires_grad=True)
    cost = COSTS[name](a, torch.randn(2, 3, 4, 4), mask=torch.zeros(2, 4, 4, dtype=torch.bool))
    cost.backward()
    assert float(cost.detach()) == 0.0 and torch.isfinite(a.grad).all()


@pytest.mark.parametrize("shape", SHAPES, ids=["NCHW", "NCDHW"])
def test_dense_classification_cost_ignores_unlabeled_positions(shape):
    torch.manual_seed(1)
    logits = torch.randn(shape)
    labels = torch.randint(0, shape[1], shape[:1] + shape[2:])
    labels[torch.rand(labels.shape) < 0.4] = NO_LABEL
    positions = _reference_positions("ce", logits, None, labels)
    torch.testing.assert_close(
        classification_cost(logits, labels, "batch").double(), positions.mean(), rtol=1e-5, atol=1e-7
    )
    labeled = labels != NO_LABEL
    torch.testing.assert_close(
        classification_cost(logits, labels, "labeled").double(), positions.sum() / labeled.sum(), rtol=1e-5, atol=1e-7
    )
    mask = torch.rand(labels.shape)
    torch.testing.assert_close(
        classification_cost(logits, labels, "labeled", mask=mask).double(),
        (positions * mask).sum() / (labeled * mask).double().sum(),
        rtol=1e-5,
        atol=1e-7,
    )
    with pytest.raises(ValueError, match="labels must have shape"):
        classification_cost(logits, labels[..., :-1])


def test_mask_builders():
    logits = torch.tensor([[[4.0, 0.0]], [[0.0, 0.1]]]).permute(0, 2, 1)  # (N=2, C=2, 1 position)
    assert confidence_mask(logits, 0.9).tolist() == [[True], [False]]
    confident = torch.tensor([10.0, -10.0]).view(1, 2, 1).expand(3, 1, 2, 1)
    torn = torch.stack([torch.tensor([5.0, -5.0]), torch.tensor([-5.0, 5.0])]).view(2, 1, 2, 1)
    assert float(prediction_entropy(confident)) == pytest.approx(0.0, abs=1e-6)
    assert float(prediction_entropy(torn)) == pytest.approx(math.log(2), abs=1e-3)  # the mean is uniform
    assert uncertainty_mask(confident, 0.5).tolist() == [[True]] and uncertainty_mask(torn, 0.5).tolist() == [[False]]
    assert uncertainty_threshold(0, 100, 4) == pytest.approx((0.75 + 0.25 * math.exp(-5)) * math.log(4))
    assert uncertainty_threshold(100, 100, 4) == pytest.approx(math.log(4))


class TinySegmenter(nn.Module):
    def __init__(self, classes=3):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, classes, 1))

    def forward(self, x):
        return self.net(x)


def test_mean_teacher_and_supervised_on_a_dense_model():
    torch.manual_seed(0)
    x = torch.randn(4, 1, 6, 6)
    labels = torch.randint(0, 3, (4, 6, 6))
    labels[2:] = NO_LABEL  # two images without masks
    labels[0, :3] = NO_LABEL  # one partly labeled
    batch = Batch(x + 0.1 * torch.randn_like(x), labels, teacher_input=x + 0.1 * torch.randn_like(x))
    model = TinySegmenter()
    method = MeanTeacher(model, consistency=1.0)
    total, logs = method.loss(batch, 1)
    total.backward()
    assert torch.isfinite(total) and logs["consistency_cost"] > 0
    assert all(p.grad is not None for p in model.parameters())
    method.after_step(0)
    only_unlabeled = MeanTeacher(TinySegmenter(), consistency=1.0, consistency_on_labeled=False)
    cost = only_unlabeled.loss(batch, 1)[1]["consistency_cost"]
    assert torch.isfinite(cost) and cost > 0
    supervised = Supervised(TinySegmenter())
    assert torch.isfinite(supervised.loss(batch, 1)[0])  # rows 2, 3 have no labeled pixel and are dropped
