"""Model registry: the paper's architectures by name, and any user factory.

A model maps images to logits, or to a pair ``(class_logits, consistency_logits)`` when it has
two heads. ``create_model`` also accepts ``"package.module:factory"`` to build a user's own model.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..plugins import import_reference
from .convnet import ConvNet13
from .resnext import ResNeXt
from .shakeshake import ShakeShake26

ModelFactory = Callable[..., nn.Module]
_REGISTRY: dict[str, tuple[ModelFactory, str]] = {}


def register_model(name: str, description: str = "") -> Callable[[ModelFactory], ModelFactory]:
    """Decorator adding ``factory(num_classes, in_channels, **options)`` to the registry under ``name``."""

    def add(factory: ModelFactory) -> ModelFactory:
        _REGISTRY[name] = (factory, description or (factory.__doc__ or "").strip().splitlines()[0])
        return factory

    return add


def list_models() -> dict[str, str]:
    """Registered model names with a one-line description each."""
    return {name: description for name, (_, description) in sorted(_REGISTRY.items())}


def create_model(name: str, num_classes: int, in_channels: int = 3, **options) -> nn.Module:
    """Build a registered model (or ``"package.module:factory"``) for ``num_classes`` classes."""
    if ":" in name:
        factory = import_reference(name, "model factory")
    elif name in _REGISTRY:
        factory = _REGISTRY[name][0]
    else:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    try:
        return factory(num_classes=num_classes, in_channels=in_channels, **options)
    except TypeError as error:
        raise ValueError(f"architecture {name!r} does not take these options: {error}") from None


def split_heads(output: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(class_logits, consistency_logits)`` of a model output; a one-head output serves as both."""
    if isinstance(output, torch.Tensor):
        return output, output
    if isinstance(output, (tuple, list)) and len(output) == 2:
        return output[0], output[1]
    raise ValueError("a model must return logits or a pair (class_logits, consistency_logits)")


@register_model("convnet13", "the paper's 13-layer ConvNet (Table 6); options: width, heads, input_noise, dropout")
def convnet13(num_classes: int, in_channels: int = 3, **options) -> nn.Module:
    return ConvNet13(num_classes, in_channels, **options)


@register_model("shakeshake26", "ResNet-26 Shake-Shake 2x96d for 32x32 images, two heads; options: channels, heads")
def shakeshake26(num_classes: int, in_channels: int = 3, **options) -> nn.Module:
    return ShakeShake26(num_classes, in_channels, **options)


@register_model(
    "resnext152", "ResNeXt-152 32x4d for 224x224 images, two heads; options: heads, groups, width_per_group"
)
def resnext152(num_classes: int, in_channels: int = 3, **options) -> nn.Module:
    return ResNeXt((3, 8, 36, 3), num_classes, in_channels, **options)


__all__ = ["ConvNet13", "ShakeShake26", "ResNeXt", "create_model", "list_models", "register_model", "split_heads"]
