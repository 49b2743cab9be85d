import pytest
import torch

from meanteacher.models import ConvNet13, create_model, list_models, split_heads
from meanteacher.models.layers import MeanOnlyBatchNorm


def test_convnet13_parameter_count_and_shapes():
    model = ConvNet13(num_classes=10)
    count = sum(p.numel() for p in model.parameters())
    assert 3.0e6 < count < 3.2e6
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    two = ConvNet13(num_classes=7, width=0.25, heads=2, in_channels=1)
    class_logits, cons_logits = two(torch.randn(3, 1, 32, 32))
    assert class_logits.shape == cons_logits.shape == (3, 7)
    assert sum(p.numel() for p in two.parameters()) < count / 10


def test_convnet13_is_deterministic_in_eval_and_noisy_in_train():
    model = ConvNet13(width=0.125)
    x = torch.randn(4, 3, 32, 32)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.allclose(model(x), model(x))


def test_mean_only_batch_norm_train_and_eval():
    bn = MeanOnlyBatchNorm(2, momentum=0.5)
    bn.num_batches_tracked.fill_(5)  # past the true-average phase: plain EMA with weight 0.5
    with torch.no_grad():
        bn.bias.copy_(torch.tensor([1.0, -1.0]))
    x = torch.tensor([[[[1.0]], [[10.0]]], [[[3.0]], [[20.0]]]])  # batch 2, channels 2
    out = bn(x)
    assert torch.allclose(out[:, 0].flatten(), torch.tensor([0.0, 2.0]))  # 1,3 minus mean 2, plus bias 1
    assert torch.allclose(out[:, 1].flatten(), torch.tensor([-6.0, 4.0]))  # 10,20 minus 15, minus 1
    assert torch.allclose(bn.running_mean, torch.tensor([1.0, 7.5]))
    bn.eval()
    out = bn(x)
    assert torch.allclose(out[:, 0].flatten(), torch.tensor([1.0, 3.0]))  # minus running mean 1, plus 1
    assert torch.allclose(out[:, 1].flatten(), torch.tensor([1.5, 11.5]))


def test_registry_and_user_factory():
    assert {"convnet13", "shakeshake26", "resnext152"} <= set(list_models())
    model = create_model("convnet13", 5, in_channels=1, width=0.125)
    assert model(torch.randn(2, 1, 16, 16)).shape == (2, 5)
    with pytest.raises(ValueError, match="unknown architecture"):
        create_model("vgg", 10)
    with pytest.raises(ValueError, match="cannot import"):
        create_model("no_such_module:factory", 10)


def test_split_heads():
    a = torch.zeros(2, 3)
    assert split_heads(a) == (a, a)
    b = torch.ones(2, 3)
    assert split_heads((a, b)) == (a, b)
    with pytest.raises(ValueError):
        split_heads((a, b, a))


def test_shakeshake_and_resnext_small():
    from meanteacher.models import ResNeXt, ShakeShake26

    shake = ShakeShake26(num_classes=4, channels=8, blocks=1)
    a, b = shake(torch.randn(2, 3, 32, 32))
    assert a.shape == b.shape == (2, 4)
    resnext = ResNeXt((1, 1, 1, 1), num_classes=4, groups=4, heads=1)
    assert resnext(torch.randn(2, 3, 64, 64)).shape == (2, 4)


def tiny_factory(num_classes, in_channels, hidden=5):
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(hidden), torch.nn.Linear(hidden, num_classes))


def test_user_factory_by_import_path():
    model = create_model("tests.test_models:tiny_factory", 3, in_channels=1, hidden=6)
    assert model(torch.randn(2, 1, 4, 4)).shape == (2, 3)
    with pytest.raises(ValueError, match="does not take"):
        create_model("tests.test_models:tiny_factory", 3, bogus=1)
