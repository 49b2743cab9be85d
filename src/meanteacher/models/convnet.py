"""The 13-layer ConvNet of the paper's Table 6."""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from .layers import ConvUnit, GaussianNoise, Heads, WNLinear


class ConvNet13(nn.Module):
    """Table 6 of the paper: Gaussian input noise, 3x conv128, max-pool, dropout, 3x conv256, max-pool,
    dropout, conv512 3x3 valid, conv256 1x1, conv128 1x1, global average pool, fully connected.

    Every convolution is weight-normalized, followed by mean-only batch norm and LeakyReLU(0.1).
    ``width`` scales every channel count (0.25 gives a quick CPU model); ``heads=2`` adds the second
    output used by the two-head (logit distance) variant; ``pools=1`` drops the second max-pool for
    small images (8x8 digits). The softmax layer is weight-normalized with mean-only batch norm as
    in Appendix B.1; ``output_batchnorm=False`` gives it a plain bias instead. Translation and flips
    belong to the data side.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        width: float = 1.0,
        heads: int = 1,
        input_noise: float = 0.15,
        dropout: float = 0.5,
        pools: int = 2,
        output_batchnorm: bool = True,
    ) -> None:
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        if pools not in (1, 2):
            raise ValueError(f"pools must be 1 or 2, got {pools}")
        c128, c256, c512 = (max(1, round(c * width)) for c in (128, 256, 512))
        self.features = nn.Sequential(
            GaussianNoise(input_noise),
            ConvUnit(in_channels, c128, 3, 1),
            ConvUnit(c128, c128, 3, 1),
            ConvUnit(c128, c128, 3, 1),
            nn.MaxPool2d(2, 2),
            nn.Dropout(dropout),
            ConvUnit(c128, c256, 3, 1),
            ConvUnit(c256, c256, 3, 1),
            ConvUnit(c256, c256, 3, 1),
            nn.MaxPool2d(2, 2) if pools == 2 else nn.Identity(),
            nn.Dropout(dropout),
            ConvUnit(c256, c512, 3, 0),
            ConvUnit(c512, c256, 1, 0),
            ConvUnit(c256, c128, 1, 0),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = Heads(c128, num_classes, heads, partial(WNLinear, mean_only_batchnorm=output_batchnorm))

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.features(x))
