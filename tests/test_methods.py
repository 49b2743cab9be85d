import pytest
import torch
from torch import nn

from meanteacher.losses import NO_LABEL
from meanteacher.methods import Batch, MeanTeacher, PiModel, Supervised, TemporalEnsembling


def _model(heads=1):
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(6, 8), nn.Dropout(0.3), nn.ReLU())
            self.heads = nn.ModuleList(nn.Linear(8, 3) for _ in range(heads))

        def forward(self, x):
            h = self.body(x)
            outs = tuple(head(h) for head in self.heads)
            return outs[0] if heads == 1 else outs

    return Net()


def _batch(n=8, labeled=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    labels = torch.full((n,), NO_LABEL)
    labels[:labeled] = torch.randint(0, 3, (labeled,), generator=g)
    return Batch(
        student_input=torch.randn(n, 6, generator=g),
        teacher_input=torch.randn(n, 6, generator=g),
        labels=labels,
        indices=torch.arange(n),
    )


def test_supervised_uses_only_labeled_examples():
    model = _model()
    method = Supervised(model)
    batch = _batch()
    seen = []
    model.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    total, logs = method.loss(batch, 1)
    assert seen == [3]
    assert set(logs) == {"class_cost"}
    assert total.requires_grad


def test_pi_model_gradient_reaches_both_passes():
    model = _model()
    method = PiModel(model, consistency=1.0)
    outputs = []

    def keep(module, inputs, output):
        output.retain_grad()
        outputs.append(output)

    model.register_forward_hook(keep)
    batch = _batch()
    batch.labels[:] = NO_LABEL  # consistency only: any gradient comes from it
    total, logs = method.loss(batch, 1)
    total.backward()
    assert len(outputs) == 2
    assert outputs[0].grad.abs().sum() > 0
    assert outputs[1].grad.abs().sum() > 0


def test_mean_teacher_consistency_has_an_effect_and_teacher_gets_no_gradient():
    model = _model()
    method = MeanTeacher(model, consistency=10.0, ema_decay=0.99)
    batch = _batch()
    batch.labels[:] = NO_LABEL
    with torch.no_grad():  # make the teacher differ from the student
        for p in method.teacher.module.parameters():
            p.add_(0.5)
    total, logs = method.loss(batch, 1)
    assert logs["consistency_cost"].item() > 0
    assert total.item() == pytest.approx(10.0 * logs["consistency_cost"].item(), rel=1e-5)
    total.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters() if p.dim() > 1)
    assert all(p.grad is None for p in method.teacher.module.parameters())


def test_consistency_weight_changes_student_gradient():
    batch = _batch()
    grads = []
    for weight in (0.0, 100.0):
        model = _model()
        method = MeanTeacher(model, consistency=weight)
        with torch.no_grad():
            for p in method.teacher.module.parameters():
                p.mul_(-1.0)
        torch.manual_seed(3)
        method.loss(batch, 1)[0].backward()
        grads.append(model.body[0].weight.grad)
    assert not torch.allclose(grads[0], grads[1])


def test_mean_teacher_after_step_updates_teacher_with_schedule():
    model = _model()
    method = MeanTeacher(model, ema_decay=lambda step: 0.0 if step < 5 else 0.99)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    method.after_step(0)
    for s, t in zip(model.parameters(), method.teacher.module.parameters()):
        assert torch.equal(s, t)
    assert set(method.evaluation_models()) == {"student", "ema"}


@pytest.mark.parametrize("cls", [Supervised, PiModel, MeanTeacher])
def test_every_method_keeps_an_evaluation_ema(cls):
    """The paper evaluates every model on EMA weights: each method's ``after_step`` moves its EMA,
    which is what ``evaluation_models()["ema"]`` returns and what its state dict saves."""
    model = _model()
    method = cls(model, ema_decay=0.5)
    before = [p.clone() for p in method.ema.module.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    method.after_step(9)  # 10 steps taken: alpha = min(1 - 1/11, 0.5) = 0.5: half way to the student
    for old, new, student in zip(before, method.ema.module.parameters(), model.parameters()):
        torch.testing.assert_close(new, 0.5 * old + 0.5 * student)
    assert method.evaluation_models()["ema"] is method.ema.module
    assert method.evaluation_models()["student"] is model
    restored = cls(_model(), ema_decay=0.5)
    restored.load_state_dict(method.state_dict())
    for a, b in zip(method.ema.module.parameters(), restored.ema.module.parameters()):
        assert torch.equal(a, b)


def test_mean_teacher_two_heads_uses_logit_distance_and_second_head():
    model = _model(heads=2)
    method = MeanTeacher(model, consistency=1.0, logit_distance=0.01)
    total, logs = method.loss(_batch(), 1)
    assert logs["logit_distance"].item() > 0
    assert "teacher_class_cost" in logs


def test_mean_teacher_needs_second_view():
    method = MeanTeacher(_model())
    batch = _batch()
    batch.teacher_input = None
    with pytest.raises(ValueError, match="teacher_input"):
        method.loss(batch, 1)


def test_temporal_ensembling_bias_correction():
    model = _model()
    method = TemporalEnsembling(model, num_examples=8, num_classes=3, alpha=0.6)
    batch = _batch()
    _, logs = method.loss(batch, 1)
    assert logs["consistency_weight"].item() == 0.0
    first = method.latest.clone()
    method.end_epoch()
    assert torch.allclose(method.targets(torch.arange(8)), first)  # (1-a) p / (1-a) = p
    method.latest.fill_(1 / 3)
    method.end_epoch()
    expected = (0.6 * 0.4 * first + 0.4 / 3) / (1 - 0.6**2)
    assert torch.allclose(method.targets(torch.arange(8)), expected)
    total, logs = method.loss(batch, 2)
    assert logs["consistency_cost"].item() > 0
    state = method.state_dict()
    other = TemporalEnsembling(_model(), 8, 3)
    other.load_state_dict(state)
    assert other.epochs == 2 and torch.equal(other.ensemble, method.ensemble)


def test_consistency_on_unlabeled_only():
    method = MeanTeacher(_model(), consistency=1.0, consistency_on_labeled=False)
    batch = _batch(labeled=3)
    with torch.no_grad():
        for p in method.teacher.module.parameters():
            p.add_(0.5)
    _, logs = method.loss(batch, 1)
    assert logs["consistency_cost"].item() > 0
    all_labeled = _batch(labeled=8)
    total, logs = method.loss(all_labeled, 1)
    assert logs["consistency_cost"].item() == 0.0 and torch.isfinite(total)


def _unlabeled_mse(student_logits, target_logits, labels):
    per_example = ((student_logits.softmax(1) - target_logits.softmax(1)) ** 2).mean(1)
    unlabeled = labels == NO_LABEL
    return per_example[unlabeled].sum() / unlabeled.sum()


def test_pi_model_consistency_on_unlabeled_only():
    """The paper's SVHN runs give the Π model, like Mean Teacher, consistency on the unlabeled examples only."""
    model = _model()
    outputs = []
    model.register_forward_hook(lambda module, inputs, output: outputs.append(output.detach()))
    batch = _batch(labeled=3)
    _, logs = PiModel(model, consistency=1.0, consistency_on_labeled=False).loss(batch, 1)
    first, second = outputs
    expected = _unlabeled_mse(first, second, batch.labels)
    assert torch.allclose(logs["consistency_cost"], expected)
    every_example = ((first.softmax(1) - second.softmax(1)) ** 2).mean()
    assert not torch.allclose(expected, every_example)
    _, logs = PiModel(model, consistency=1.0, consistency_on_labeled=False).loss(_batch(labeled=8), 1)
    assert logs["consistency_cost"].item() == 0.0


def test_temporal_ensembling_consistency_on_unlabeled_only():
    model = _model()
    method = TemporalEnsembling(model, num_examples=8, num_classes=3, consistency_on_labeled=False)
    batch = _batch(labeled=3)
    method.loss(batch, 1)
    method.end_epoch()
    outputs = []
    model.register_forward_hook(lambda module, inputs, output: outputs.append(output.detach()))
    _, logs = method.loss(batch, 2)
    targets = method.targets(batch.indices).log()
    assert torch.allclose(logs["consistency_cost"], _unlabeled_mse(outputs[0], targets, batch.labels))


@pytest.mark.parametrize("name", ["svhn-250-pi", "svhn-500-extra-100k-pi", "svhn-250-noaug"])
def test_presets_consistency_on_labeled_reaches_the_method(name):
    from meanteacher.config.toml import load_preset
    from meanteacher.methods import method_class

    config = load_preset(name)
    assert config.consistency_on_labeled is False
    method = method_class(config.method).from_config(config, _model(), 1.0, 0.999, 8, 3)
    assert method.consistency_on_labeled is False
