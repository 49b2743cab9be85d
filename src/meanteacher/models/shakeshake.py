"""Shake-Shake regularized ResNet for 32x32 images (the paper's ResNet-26 2x96d on CIFAR-10)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import Heads


class _Shake(torch.autograd.Function):
    """Mixes two branches with a random per-example weight forward and another one backward."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, training: bool) -> torch.Tensor:  # noqa: D102
        ctx.training = training
        if not training:
            return 0.5 * (a + b)
        alpha = torch.rand(a.shape[0], 1, 1, 1, device=a.device, dtype=a.dtype)
        return alpha * a + (1 - alpha) * b

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: D102
        if not ctx.training:
            return 0.5 * grad, 0.5 * grad, None
        beta = torch.rand(grad.shape[0], 1, 1, 1, device=grad.device, dtype=grad.dtype)
        return beta * grad, (1 - beta) * grad, None


def _branch(in_channels: int, channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ReLU(),
        nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
        nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
        nn.BatchNorm2d(channels),
    )


class ShiftConvDownsample(nn.Module):
    """Shortcut that halves resolution: two shifted subsamplings side by side, grouped 1x1 conv, BN."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2 * in_channels, out_channels, 1, groups=2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        x = torch.cat([x[:, :, 0::2, 0::2], x[:, :, 1::2, 1::2]], dim=1)
        return self.bn(self.conv(x))


class ShakeShakeBlock(nn.Module):
    """Residual block with two 3x3-conv branches mixed by shake-shake."""

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.branch_a = _branch(in_channels, channels, stride)
        self.branch_b = _branch(in_channels, channels, stride)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1:
            self.shortcut = ShiftConvDownsample(in_channels, channels)
        elif in_channels != channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, channels, 1, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = _Shake.apply(self.branch_a(x), self.branch_b(x), self.training)
        return self.shortcut(x) + mixed


class ShakeShake26(nn.Module):
    """ResNet-26 with shake-shake blocks: a 3x3 stem and three stages of 4 blocks of widths
    ``channels``, ``2 * channels``, ``4 * channels`` (96 gives the paper's 2x96d), one or two heads."""

    def __init__(
        self, num_classes: int = 10, in_channels: int = 3, channels: int = 96, heads: int = 2, blocks: int = 4
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16)]
        in_width = 16
        for stage, width in enumerate((channels, 2 * channels, 4 * channels)):
            for index in range(blocks):
                stride = 2 if stage > 0 and index == 0 else 1
                layers.append(ShakeShakeBlock(in_width, width, stride))
                in_width = width
        layers += [nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.head = Heads(in_width, num_classes, heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.features(x))
