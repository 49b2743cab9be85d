"""Where the paper's text fixes a detail, the presets and models follow it (see docs/design.md)."""

import pytest
import torch

from meanteacher.config.toml import load_preset
from meanteacher.data.feed import extra_subset
from meanteacher.errors import MeanTeacherError
from meanteacher.losses import logit_distance
from meanteacher.models import ConvNet13
from meanteacher.models.layers import MeanOnlyBatchNorm


@pytest.mark.parametrize(
    "preset, steps",
    [
        ("cifar10-1000-pi", 60_000),
        ("cifar10-2000-pi", 100_000),
        ("cifar10-4000-pi", 180_000),
        ("cifar10-all-pi", 180_000),
        ("svhn-250-pi", 100_000),
    ],
)
def test_pi_model_step_counts_of_appendix_b1(preset, steps):
    assert load_preset(preset).steps == steps


@pytest.mark.parametrize("labels, epochs, cosine_epochs", [(1000, 180, 210), (4000, 300, 350)])
def test_resnet_presets_translate_4_and_count_epochs_over_unlabeled_images(labels, epochs, cosine_epochs):
    """Appendix B.2: 4x4 translations with reflection; an epoch is one pass over the unlabeled images
    (the reference sampler's floor(unlabeled / unlabeled per batch) steps)."""
    config = load_preset(f"resnet-cifar10-{labels}")
    assert config.translate == 4 and config.fill == "reflect"
    steps_per_epoch = (50_000 - labels) // (config.batch_size - config.labeled_per_batch)
    assert config.steps == epochs * steps_per_epoch
    assert config.cosine_steps == cosine_epochs * steps_per_epoch
    assert config.rampup_steps == 5 * steps_per_epoch


def test_imagenet_epochs_are_passes_over_the_unlabeled_ninety_percent():
    config = load_preset("resnext152-imagenet")
    steps_per_epoch = (1_281_167 - 128_116) // (config.batch_size - config.labeled_per_batch)
    assert config.steps == 60 * steps_per_epoch and config.cosine_steps == 75 * steps_per_epoch


def test_svhn_presets_have_no_learning_rate_rampdown():
    """Table 7: ramp-down "No" for SVHN (semi-supervised and supervised), "Yes" for CIFAR-10."""
    from meanteacher.config.toml import list_presets

    svhn = [name for name in list_presets() if name.startswith("svhn-")]
    assert len(svhn) >= 10
    assert all(load_preset(name).rampdown_steps == 0 for name in svhn)
    assert load_preset("cifar10-4000").rampdown_steps == 25_000


def test_convnet_softmax_layer_has_mean_only_batchnorm():
    """Appendix B.1: mean-only batch norm and weight norm on convolutional and softmax layers."""
    torch.manual_seed(0)
    model = ConvNet13(10, 3, width=0.125, heads=2)
    heads = model.head.classifiers
    assert all(isinstance(head.norm, MeanOnlyBatchNorm) for head in heads)
    with torch.no_grad():
        for head in heads:
            head.norm.bias.copy_(torch.arange(10.0))
        class_logits, cons_logits = model(torch.randn(16, 3, 32, 32))
    # in training mode each class's logit is centred over the batch, then shifted by the bias
    torch.testing.assert_close(class_logits.mean(0), torch.arange(10.0), atol=1e-5, rtol=0)
    torch.testing.assert_close(cons_logits.mean(0), torch.arange(10.0), atol=1e-5, rtol=0)
    plain = ConvNet13(10, 3, width=0.125, output_batchnorm=False)
    assert not any(isinstance(m, MeanOnlyBatchNorm) for m in plain.head.modules())


def test_logit_distance_sums_over_classes_for_figure_4e():
    a, b = torch.randn(8, 10), torch.randn(8, 10)
    reference = ((a - b) ** 2).sum(1).mean()  # the TensorFlow code's l2_norms, averaged over the batch
    torch.testing.assert_close(logit_distance(a, b, "sum"), reference)
    torch.testing.assert_close(logit_distance(a, b), reference / 10)
    assert load_preset("fig4-logit-distance").logit_distance_classes == "sum"
    assert load_preset("resnet-cifar10-4000").logit_distance_classes == "mean"


def test_svhn_extra_images_are_a_random_subset_by_seed():
    first = extra_subset(1000, 100, seed=0)
    assert len(first) == 100 and len(set(first.tolist())) == 100
    assert torch.equal(first, first.sort().values) and int(first.max()) < 1000
    assert not torch.equal(first, torch.arange(100))  # not the first N images
    assert torch.equal(first, extra_subset(1000, 100, seed=0))
    assert not torch.equal(first, extra_subset(1000, 100, seed=1))
    with pytest.raises(MeanTeacherError, match="extra_unlabeled=2000 but the dataset has 1000 extra images"):
        extra_subset(1000, 2000, seed=0)


def test_svhn_presets_normalize_each_image():
    """The reference TensorFlow code's ``normalize_input`` (on for SVHN): each image to zero mean and
    unit variance over all its pixels and channels."""
    from meanteacher.config.toml import list_presets
    from meanteacher.data.augment import Normalizer

    assert all(load_preset(n).normalize == "per_image" for n in list_presets() if n.startswith(("svhn-", "fig4-")))
    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    images[1] = images[1] // 4 + 100  # another brightness and contrast: the same after normalization
    x = Normalizer("per_image").fit(images)(images)
    torch.testing.assert_close(x.mean(dim=(1, 2, 3)), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std(dim=(1, 2, 3), unbiased=False), torch.ones(4), atol=1e-4, rtol=0)
