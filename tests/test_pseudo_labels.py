"""Confident pseudo-labels: the cost on planted cases, FreeMatch's threshold against a hand computation,
FixMatch's step against a step written out by hand (float64), the settings, and a run that resumes."""

import dataclasses
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from meanteacher.config import Config
from meanteacher.config.auto import resolve_auto
from meanteacher.config.checks import validate
from meanteacher.errors import MeanTeacherError
from meanteacher.losses import NO_LABEL, pseudo_label_cost
from meanteacher.methods import Batch, FixMatch, MeanTeacher
from meanteacher.pseudo_labels import PseudoLabels, SelfAdaptiveThreshold, parse_threshold
from meanteacher.run.train import Trainer

from .helpers import tiny_config


def _logits(*rows):
    """Logits whose softmax is each row of probabilities."""
    return torch.tensor(rows, dtype=torch.float64).log()


def test_below_the_threshold_nothing_above_it_the_cross_entropy_to_the_hard_label():
    teacher = _logits([0.97, 0.02, 0.01], [0.50, 0.30, 0.20], [0.01, 0.01, 0.98], [0.40, 0.59, 0.01])
    student = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    unlabeled = torch.tensor([True, True, True, False])
    cost, logs = PseudoLabels(0.95, 3).cost(student, teacher, unlabeled)
    expected = (F.cross_entropy(student[0:1], torch.tensor([0])) + F.cross_entropy(student[2:3], torch.tensor([2]))) / 3
    torch.testing.assert_close(cost, expected.double())  # rows 0 and 2 pass, over the 3 unlabeled rows
    assert float(logs["pseudo_mask_rate"]) == pytest.approx(2 / 3)
    assert float(logs["pseudo_threshold"]) == pytest.approx(0.95)
    nothing, logs = PseudoLabels(0.99, 3).cost(student, teacher, unlabeled)
    assert float(nothing) == 0.0 and float(logs["pseudo_mask_rate"]) == 0.0


def test_the_gradient_reaches_the_student_only():
    teacher = _logits([0.97, 0.02, 0.01]).requires_grad_()
    student = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    cost, _ = PseudoLabels(0.9, 3).cost(student, teacher, torch.tensor([True]))
    cost.backward()
    torch.testing.assert_close(student.grad, torch.tensor([[1 / 3 - 1, 1 / 3, 1 / 3]], dtype=torch.float64))
    assert teacher.grad is None


def test_the_pseudo_labels_accuracy_counts_only_confident_rows_with_a_known_label():
    teacher = _logits([0.97, 0.02, 0.01], [0.01, 0.98, 0.01], [0.01, 0.01, 0.98], [0.50, 0.30, 0.20])
    truth = torch.tensor([0, 2, NO_LABEL, 1])  # right, wrong, unknown, not confident
    _, logs = PseudoLabels(0.95, 3).cost(torch.zeros(4, 3), teacher.float(), torch.ones(4, dtype=torch.bool), truth)
    assert float(logs["pseudo_checked_rate"]) == pytest.approx(2 / 4)
    assert float(logs["pseudo_correct_rate"]) == pytest.approx(1 / 4)


def test_dense_outputs_take_one_pseudo_label_per_pixel():
    teacher = torch.zeros(1, 2, 2, 2, dtype=torch.float64)
    teacher[0, 0, 0, 0] = 10.0  # one confident pixel, of class 0
    student = torch.zeros(1, 2, 2, 2, dtype=torch.float64)
    cost = pseudo_label_cost(student, teacher.argmax(1), torch.tensor([[[True, False], [False, False]]]))
    assert float(cost) == pytest.approx(math.log(2) / 4)


def test_the_self_adaptive_threshold_follows_freematch_by_hand():
    threshold = SelfAdaptiveThreshold(3, momentum=0.9)
    probabilities = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]])
    weights = torch.tensor([1.0, 1.0, 0.0])  # the third row is labeled: it does not count
    threshold.update(probabilities, weights)
    tau = 0.9 / 3 + 0.1 * (0.6 + 0.7) / 2
    classes = [0.9 / 3 + 0.1 * m for m in ((0.6 + 0.2) / 2, (0.3 + 0.7) / 2, (0.1 + 0.1) / 2)]
    assert float(threshold.confidence) == pytest.approx(tau)
    expected = [tau * c / max(classes) for c in classes]
    assert threshold.thresholds().tolist() == pytest.approx(expected)
    before = threshold.state_dict()
    threshold.update(probabilities, torch.zeros(3))  # no unlabeled row: nothing moves
    assert torch.equal(threshold.confidence, before["confidence"]) and torch.equal(
        threshold.class_confidence, before["class_confidence"]
    )


def test_an_adaptive_threshold_starts_at_one_over_the_classes_and_rises_with_confidence():
    pseudo = PseudoLabels(None, 4)
    assert float(pseudo.adaptive.thresholds().max()) == pytest.approx(0.25)
    sure = torch.tensor([[9.0, 0.0, 0.0, 0.0]] * 8)
    for _ in range(50):
        pseudo.cost(torch.zeros(8, 4), sure, torch.ones(8, dtype=torch.bool))
    assert 0.25 < float(pseudo.adaptive.confidence) < 1.0


def test_consistency_types_are_checked():
    assert parse_threshold("pseudo:0.95") == 0.95 and parse_threshold("pseudo:adaptive") is None
    for bad in ("pseudo:1.5", "pseudo:high"):
        with pytest.raises(ValueError, match="pseudo"):
            parse_threshold(bad)
    with pytest.raises(MeanTeacherError, match="works with mean-teacher and fixmatch"):
        validate(Config(dataset="digits", method="pi", consistency_type="pseudo:0.95"))
    with pytest.raises(MeanTeacherError, match="fixmatch trains on pseudo-labels"):
        validate(Config(dataset="digits", method="fixmatch", consistency_type="mse"))
    with pytest.raises(MeanTeacherError, match="not both"):
        validate(Config(dataset="digits", unlabeled_ratio=7, labeled_per_batch=50))


def test_automatic_settings_for_pseudo_labels():
    fixmatch = resolve_auto(Config(dataset="digits", method="fixmatch", steps=1000), 10, False, labeled_images=50)
    assert (fixmatch.consistency_type, fixmatch.consistency) == ("pseudo:0.95", 1.0)  # a cross-entropy: weight 1
    mean_teacher = resolve_auto(Config(dataset="digits", steps=1000), 10, False, labeled_images=50)
    assert (mean_teacher.consistency_type, mean_teacher.consistency) == ("mse", 30.0)
    mu = resolve_auto(
        Config(dataset="digits", steps=1000, unlabeled_ratio=7, batch_size=64), 10, False, labeled_images=50
    )
    assert mu.labeled_per_batch == 8  # 8 labeled and 56 unlabeled: mu = 7


class Linear64(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(4, 3).double()

    def forward(self, x):
        return self.layer(x.double())


@pytest.mark.parametrize("labeled_view", ["weak", "strong"])
def test_a_fixmatch_step_equals_the_step_written_out_by_hand(labeled_view):
    torch.manual_seed(0)
    model = Linear64()
    reference = Linear64()
    reference.load_state_dict(model.state_dict())
    generator = torch.Generator().manual_seed(3)
    weak, strong = (
        torch.randn(6, 4, generator=generator, dtype=torch.float64),
        torch.randn(6, 4, generator=generator, dtype=torch.float64),
    )
    weak[3:5] *= 20  # confident predictions on some unlabeled rows, not on the last
    labels = torch.tensor([0, 2, 1, NO_LABEL, NO_LABEL, NO_LABEL])
    method = FixMatch(model, 3, consistency=0.7, consistency_type="pseudo:0.8", labeled_view=labeled_view)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    total, _ = method.loss(Batch(student_input=strong, teacher_input=weak, labels=labels), 0)
    optimizer.zero_grad()
    total.backward()
    optimizer.step()

    weak_logits, strong_logits = reference(weak), reference(strong)
    supervised = F.cross_entropy((weak_logits if labeled_view == "weak" else strong_logits)[:3], labels[:3])
    probabilities = weak_logits.detach().softmax(1)[3:]
    confident = probabilities.max(1).values >= 0.8
    assert 0 < int(confident.sum()) < 3  # the case tests both sides of the threshold
    unsupervised = (F.cross_entropy(strong_logits[3:], probabilities.argmax(1), reduction="none") * confident).sum() / 3
    (supervised + 0.7 * unsupervised).backward()
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter -= 0.1 * parameter.grad
    for ours, theirs in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)


def test_fixmatch_reads_the_view_of_its_labeled_images_from_its_options():
    def config(**options):
        return tiny_config(method="fixmatch", consistency_type="pseudo:0.95", method_options={"fixmatch": options})

    assert FixMatch.from_config(config(labeled_view="strong"), Linear64(), 1.0, 0.999, 0, 3).labeled_view == "strong"
    assert FixMatch.from_config(config(), Linear64(), 1.0, 0.999, 0, 3).labeled_view == "weak"  # the paper's
    with pytest.raises(MeanTeacherError, match="fixmatch.labeled_view must be 'weak' or 'strong', got 'medium'"):
        validate(config(labeled_view="medium"))


def test_mean_teacher_takes_its_pseudo_labels_from_the_teacher():
    torch.manual_seed(0)
    model = Linear64()
    method = MeanTeacher(model, consistency=1.0, consistency_type="pseudo:0.5", ema_buffers="average")
    with torch.no_grad():
        for parameter in method.teacher.module.parameters():
            parameter.mul_(30)  # a surer teacher than the student
    batch = Batch(
        student_input=torch.randn(8, 4, dtype=torch.float64),
        teacher_input=torch.randn(8, 4, dtype=torch.float64),
        labels=torch.full((8,), NO_LABEL),
    )
    _, logs = method.loss(batch, 0)
    teacher_confidence = method.teacher.module(batch.teacher_input).softmax(1).max(1).values
    assert float(logs["pseudo_mask_rate"]) == pytest.approx(float((teacher_confidence >= 0.5).double().mean()))


@pytest.mark.parametrize("consistency_type", ["pseudo:0.2", "pseudo:adaptive"])
def test_a_fixmatch_run_logs_what_its_users_watch_and_resumes_bit_for_bit(tmp_path, consistency_type):
    config = tiny_config(
        method="fixmatch", consistency_type=consistency_type, steps=16, eval_every=8, checkpoint_every=8
    )
    whole = Trainer(config, tmp_path / "whole", progress=False)
    whole.run()
    (tmp_path / "parts").mkdir()
    interrupted = Trainer(config, tmp_path / "parts", progress=False)
    for _ in range(8):
        interrupted.step()
    interrupted.save_checkpoint()
    resumed = Trainer(config, tmp_path / "parts", resume=True, progress=False)
    if consistency_type == "pseudo:adaptive":
        assert torch.equal(
            resumed.training_step.method.pseudo_labels.adaptive.confidence,
            interrupted.training_step.method.pseudo_labels.adaptive.confidence,
        )
        assert float(resumed.training_step.method.pseudo_labels.adaptive.confidence) != pytest.approx(
            0.1
        )  # it moved, and came back
    resumed.run()
    lines = [(tmp_path / name / "metrics.jsonl").read_text().splitlines() for name in ("whole", "parts")]
    assert lines[0][-1] == lines[1][-1]
    record = json.loads(lines[0][-1])
    assert {"pseudo_mask_rate", "pseudo_threshold", "pseudo_checked_rate", "pseudo_correct_rate"} <= set(record)
    assert record["pseudo_checked_rate"] > 0  # the hidden labels of the digits are known
    assert record["pseudo_accuracy"] == pytest.approx(record["pseudo_correct_rate"] / record["pseudo_checked_rate"])


def test_a_mean_teacher_run_with_an_adaptive_threshold_keeps_it_in_its_checkpoint(tmp_path):
    config = dataclasses.replace(tiny_config(consistency_type="pseudo:adaptive"), steps=4)
    trainer = Trainer(config, tmp_path / "run", progress=False)
    trainer.run()
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    saved = next(value for key, value in state.items() if isinstance(value, dict) and "pseudo_labels" in value)
    assert torch.equal(
        saved["pseudo_labels"]["confidence"], trainer.training_step.method.pseudo_labels.adaptive.confidence
    )


def test_the_curves_of_a_run_with_pseudo_labels_have_a_panel_for_them(tmp_path, monkeypatch):
    from meanteacher import report

    drawn = []
    monkeypatch.setattr(report, "save_figure", lambda figure, path: drawn.append(figure))
    metrics = tmp_path / "metrics.jsonl"
    record = {
        "step": 10,
        "ema_error": 0.5,
        "student_error": 0.5,
        "ema_class_cost": 1.0,
        "student_class_cost": 1.0,
        "class_cost": 1.0,
    }
    metrics.write_text(json.dumps(record) + "\n")
    report.plot_curves(metrics, tmp_path / "plain.png")
    metrics.write_text(
        json.dumps({**record, "pseudo_mask_rate": 0.3, "pseudo_threshold": 0.95, "pseudo_accuracy": 0.9}) + "\n"
    )
    report.plot_curves(metrics, tmp_path / "pseudo.png", "fixmatch")
    assert [len(figure.axes) for figure in drawn] == [2, 3]
    titles = [text.get_text() for text in drawn[1].axes[2].get_legend().get_texts()]
    assert titles == ["unlabeled above the threshold", "pseudo-labels right", "threshold (mean over classes)"]


def test_the_plan_line_says_where_the_unlabeled_images_have_not_paid():
    from pathlib import Path

    from meanteacher.run.progress import plan_line

    def line(**settings):
        config = resolve_auto(Config(dataset="digits", steps=1500, **settings), 10, False, labeled_images=1000)
        return plan_line(config, "digits", [100] * 10, 347, 0, config.labeled_per_batch, 1500, Path("run"))

    assert "compare with --method supervised" in line(student_view="strong")
    assert "compare with --method supervised" in line(method="fixmatch", student_view="strong")
    assert "compare with --method supervised" not in line(student_view="weak")
    assert "compare with --method supervised" not in line(method="supervised", student_view="strong")


def test_a_method_without_pseudo_labels_refuses_the_cost():
    from meanteacher.methods import PiModel

    with pytest.raises(ValueError, match="pi does not take the pseudo-label cost"):
        PiModel(Linear64(), consistency_type="pseudo:0.95")
