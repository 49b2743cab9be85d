"""Building blocks of the paper's ConvNet: weight norm, mean-only batch norm, input noise."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


class GaussianNoise(nn.Module):
    """Adds ``N(0, std**2)`` noise in train mode; the identity in eval mode."""

    def __init__(self, std: float) -> None:
        super().__init__()
        self.std = std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.std == 0:
            return x
        return x + self.std * torch.randn_like(x)


class _SumOverProcesses(torch.autograd.Function):
    """All-reduce (sum) whose backward sums the gradients over the processes in the same way."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone(memory_format=torch.contiguous_format)
        torch.distributed.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return _SumOverProcesses.apply(grad)


def mean_over_processes(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of ``tensor`` over the processes of the default group, differentiable (each process's
    gradient gathers every process's use of the mean); ``tensor`` itself outside a distributed run."""
    if (
        not (torch.distributed.is_available() and torch.distributed.is_initialized())
        or torch.distributed.get_world_size() == 1
    ):
        return tensor
    return _SumOverProcesses.apply(tensor) / torch.distributed.get_world_size()


class MeanOnlyBatchNorm(nn.Module):
    """Batch norm that only centres: subtracts the per-channel batch mean (train) or running mean (eval),
    then adds a learned bias. Pairs with weight normalization, which fixes the scale.

    The running mean is a true average of the batch means over the first ``1 / momentum`` batches,
    then an exponential moving average with weight ``momentum``, so short runs evaluate well too.
    """

    def __init__(self, channels: int, momentum: float = 0.01, sync: bool = False) -> None:
        super().__init__()
        self.momentum = momentum
        self.sync = sync  # average batch means over processes: SyncBatchNorm for mean-only batch norm
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduce_dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        if self.training:
            mean = x.mean(dim=reduce_dims)
            if self.sync:
                mean = mean_over_processes(mean)
            with torch.no_grad():
                self.num_batches_tracked += 1
                weight = torch.clamp(1.0 / self.num_batches_tracked.float(), min=self.momentum)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), weight)
        else:
            mean = self.running_mean.to(x.dtype)
        return x - (mean - self.bias.to(mean.dtype)).to(x.dtype).view(shape)  # one pass over x


def _weight_norm(direction: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    norm = direction.flatten(1).norm(dim=1).clamp_min(1e-12)
    return direction * (gain / norm).view(-1, *([1] * (direction.dim() - 1)))


class WNConv2d(nn.Module):
    """Convolution with weight normalization ``w = g * v / ||v||`` (one gain per output channel), no bias."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0) -> None:
        super().__init__()
        self.padding = padding
        self.direction = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        nn.init.kaiming_normal_(self.direction, a=0.1, nonlinearity="leaky_relu")
        self.gain = nn.Parameter(self.direction.detach().flatten(1).norm(dim=1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, _weight_norm(self.direction, self.gain), padding=self.padding)


class WNLinear(nn.Module):
    """Fully connected layer with weight normalization and a bias; with ``mean_only_batchnorm`` the
    bias is that of a mean-only batch norm on the outputs (the paper's softmax layer, Appendix B.1)."""

    def __init__(self, in_features: int, out_features: int, mean_only_batchnorm: bool = False) -> None:
        super().__init__()
        self.direction = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.normal_(self.direction, std=0.05)
        self.gain = nn.Parameter(torch.ones(out_features))
        if mean_only_batchnorm:
            self.norm = MeanOnlyBatchNorm(out_features)
        else:
            self.bias = nn.Parameter(torch.zeros(out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "norm"):
            return self.norm(F.linear(x, _weight_norm(self.direction, self.gain)))
        return F.linear(x, _weight_norm(self.direction, self.gain), self.bias)


class ConvUnit(nn.Sequential):
    """Weight-normalized convolution, mean-only batch norm, LeakyReLU(0.1)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int) -> None:
        super().__init__(
            WNConv2d(in_channels, out_channels, kernel_size, padding),
            MeanOnlyBatchNorm(out_channels),
            nn.LeakyReLU(0.1, inplace=True),
        )


class Heads(nn.Module):
    """One or two linear classifiers on shared features; two give ``(class_logits, consistency_logits)``."""

    def __init__(
        self, in_features: int, num_classes: int, count: int = 1, linear: Callable[[int, int], nn.Module] = nn.Linear
    ) -> None:
        super().__init__()
        if count not in (1, 2):
            raise ValueError(f"heads must be 1 or 2, got {count}")
        self.classifiers = nn.ModuleList(linear(in_features, num_classes) for _ in range(count))

    def forward(self, features: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if len(self.classifiers) == 1:
            return self.classifiers[0](features)
        return self.classifiers[0](features), self.classifiers[1](features)


def convert_sync_batchnorm(model: nn.Module) -> nn.Module:
    """``model`` with its batch statistics averaged over processes: PyTorch's ``SyncBatchNorm`` for
    its BatchNorm layers, and synchronised batch means for its mean-only batch norm."""
    model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for module in model.modules():
        if isinstance(module, MeanOnlyBatchNorm):
            module.sync = True
    return model
