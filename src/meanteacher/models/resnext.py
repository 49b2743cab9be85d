"""ResNeXt for 224x224 images (the paper's ResNeXt-152 32x4d on ImageNet)."""

from __future__ import annotations

import torch
from torch import nn

from .layers import Heads


class Bottleneck(nn.Module):
    """1x1 reduce, grouped 3x3, 1x1 expand (x4), with a projection shortcut when shapes change."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int, groups: int, width_per_group: int) -> None:
        super().__init__()
        width = planes * width_per_group * groups // 64
        out_channels = planes * self.expansion
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class ResNeXt(nn.Module):
    """ResNeXt with bottleneck stages ``layers``; ``(3, 8, 36, 3)``, 32 groups of width 4 is ResNeXt-152 32x4d."""

    def __init__(
        self,
        layers: tuple[int, ...] = (3, 8, 36, 3),
        num_classes: int = 1000,
        in_channels: int = 3,
        groups: int = 32,
        width_per_group: int = 4,
        heads: int = 2,
    ) -> None:
        super().__init__()
        modules: list[nn.Module] = [
            nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        ]
        in_width = 64
        for stage, count in enumerate(layers):
            planes = 64 * 2**stage
            for index in range(count):
                stride = 2 if stage > 0 and index == 0 else 1
                modules.append(Bottleneck(in_width, planes, stride, groups, width_per_group))
                in_width = planes * Bottleneck.expansion
        modules += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*modules)
        self.head = Heads(in_width, num_classes, heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.features(x))
