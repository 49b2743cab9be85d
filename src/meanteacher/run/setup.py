"""A run's device and its training step: the student (with SyncBN, DDP, compile as configured), the
per-step schedule values, the optimizer, the method, and the step that joins them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from ..config import Config
from ..data.augment import Augmenter
from ..data.batch import Batch
from ..data.feed import InMemoryFeed, StreamedFeed, TrainingFeed
from ..data.sampler import TwoStreamBatches
from ..data.strong import StrongAugmenter
from ..data.views import batches_for
from ..errors import MeanTeacherError
from ..methods import Method
from ..models import create_model
from ..models.layers import convert_sync_batchnorm
from ..optim import CapturableAdam
from .distributed import World, init_world
from .evaluation import autocast
from .graphs import GraphedStep
from .hyperparameters import StepHyperparameters
from .plan import RunPlan
from .warm_start import warm_start


def resolve_device(name: str, world: World | None = None) -> torch.device:
    """The device ``name`` means, always with an index on CUDA (``torch.cuda.set_device`` needs one).

    ``auto`` picks CUDA when available; an index-less ``cuda`` is the local rank's GPU under torchrun,
    else the current CUDA device.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise MeanTeacherError(f"device {name!r} requested but no CUDA device is available")
        if name == "cuda":
            index = world.local_rank if world is not None and world.distributed else torch.cuda.current_device()
            name = f"cuda:{index}"
        elif world is not None and world.distributed:
            raise MeanTeacherError(
                f"device {name!r} under torchrun would put every process on one GPU: pass --device cuda "
                "(each process takes its own, LOCAL_RANK), and choose the GPUs with CUDA_VISIBLE_DEVICES"
            )
        try:
            device = torch.device(name)
        except RuntimeError:
            raise MeanTeacherError(f"device {name!r} is not a device name (cuda, cuda:N, cpu or auto)") from None
        if device.index >= torch.cuda.device_count():
            raise MeanTeacherError(
                f"device {name!r} requested but this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
        return device
    return torch.device(name)


def use_device(device: torch.device, deterministic: bool) -> None:
    """Make ``device`` this process's CUDA device, with cuDNN autotuning for fixed shapes unless
    ``deterministic`` (no-op on the CPU)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
        torch.cuda.set_device(device)


def open_world(config: Config) -> tuple[World, torch.device]:
    """This process's place in the run (joining torchrun's process group, if any) and its device, made
    ready (``use_device``)."""
    cuda = config.device.startswith("cuda") or (config.device == "auto" and torch.cuda.is_available())
    world = init_world("cuda" if cuda else "cpu")
    device = resolve_device(config.device, world)
    use_device(device, config.deterministic)
    if config.cuda_graphs and (device.type != "cuda" or world.distributed):
        raise MeanTeacherError("cuda_graphs needs one process on a CUDA device (not CPU, not torchrun)")
    return world, device


def build_model(config: Config, num_classes: int, in_channels: int) -> nn.Module:
    """The student network the configuration names."""
    return create_model(config.arch, num_classes, in_channels, **config.arch_options)


def check_input_size(model: nn.Module, image_shape: tuple[int, ...], config: Config, device: torch.device) -> None:
    """A one-line error when the network cannot take images of ``image_shape`` (e.g. too small for its
    pooling), found by one forward pass in eval mode, which changes no state and draws no random numbers."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *image_shape, device=device))
    except RuntimeError as error:
        small_pools = config.arch == "convnet13" and config.arch_options.get("pools", 2) == 2
        hint = "; `--set arch_options.pools=1` takes images down to 6x6" if small_pools else ""
        reason = str(error).strip().splitlines()[0]
        raise MeanTeacherError(
            f"architecture {config.arch!r} cannot take {image_shape[-2]}x{image_shape[-1]} images ({reason}){hint}"
        ) from None
    finally:
        model.train(was_training)


def build_optimizer(
    config: Config, model: nn.Module, hyperparameters: StepHyperparameters | None = None
) -> torch.optim.Optimizer:
    """Adam or SGD (Nesterov) over the student's parameters.

    With ``hyperparameters`` kept on the device, Adam is ``CapturableAdam``: it reads its learning
    rate and betas from those 0-dim tensors and makes no host read, so a CUDA graph can capture it.
    """
    if config.optimizer == "adam":
        if hyperparameters is not None and hyperparameters.on_device:
            tensors = hyperparameters.tensors
            return CapturableAdam(
                model.parameters(),
                tensors["lr"],
                tensors["adam_beta1"],
                tensors["adam_beta2"],
                eps=config.adam_epsilon,
                weight_decay=config.weight_decay,
            )
        return torch.optim.Adam(
            model.parameters(),
            lr=config.lr,
            betas=(config.adam_beta1, config.adam_beta2),
            eps=config.adam_epsilon,
            weight_decay=config.weight_decay,
        )
    return torch.optim.SGD(
        model.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.nesterov,
        weight_decay=config.weight_decay,
    )


def build_feed(plan: RunPlan, device: torch.device, world: World) -> tuple[TrainingFeed, TwoStreamBatches]:
    """The run's training data (held on the device, or streamed from its files) and its batch sampler."""
    config, dataset, split, masked_labels = plan.config, plan.dataset, plan.split, plan.masked_labels
    labeled_only = not plan.method.uses_unlabeled
    sample = partial(
        batches_for,
        split,
        num_train=len(dataset.train_labels),
        batch_size=config.batch_size,
        labeled_per_batch=config.labeled_per_batch,
        seed=config.seed,
        labeled_only=labeled_only,
    )
    if dataset.streamed:
        sampler = sample(extra=0)
        return StreamedFeed(
            dataset,
            masked_labels,
            sampler,
            config.seed,
            config.workers,
            device,
            config.eval_batch_size,
            world.rank,
            world.size,
        ), sampler
    augmenter = Augmenter(config.translate, config.flip, 0.0, config.fill)
    strong = (
        None
        if config.student_view == "weak"
        else StrongAugmenter(
            config.strong_ops, config.strong_magnitude, config.cutout, geometric=config.student_view == "strong"
        )
    )
    feed = InMemoryFeed(
        dataset,
        masked_labels,
        split,
        config.normalize,
        augmenter,
        config.extra_unlabeled,
        config.seed,
        device,
        config.eval_batch_size,
        world.rank,
        world.size,
        strong,
        with_pile=not labeled_only,
    )
    return feed, sample(extra=feed.extra)


@dataclass
class TrainingStep:
    """One training step and what it trains: ``optimize(batch)`` is one optimisation step on a batch
    (cost, backward, optimizer step, EMA update), captured in a CUDA graph with ``cuda_graphs``; it
    returns the detached cost terms. ``model`` is the student itself (not wrapped)."""

    model: nn.Module
    method: Method
    optimizer: torch.optim.Optimizer
    hyperparameters: StepHyperparameters
    optimize: Callable[[Batch], dict[str, torch.Tensor]]
    nonfinite: torch.Tensor
    """Set on the device when a step's cost was not finite (read every few steps, not every step)."""


def build_training_step(
    plan: RunPlan, num_examples: int, device: torch.device, world: World, warm: bool = True
) -> TrainingStep:
    """The student on ``device`` (checked against the image size; from ``config.init``'s weights when
    ``warm``, and the teacher with it), the schedules, the optimizer and the method (with per-example state
    for ``num_examples`` images), with SyncBN, DDP and compile as the plan's config and ``world`` ask."""
    config, num_classes, image_shape = plan.config, plan.dataset.num_classes, plan.dataset.image_shape
    model = build_model(config, num_classes, image_shape[0])
    if warm:
        warm_start(model, config.init)
    model = model.to(device)
    check_input_size(model, image_shape, config, device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if config.sync_batchnorm and world.distributed:
        model = convert_sync_batchnorm(model)
    hyperparameters = StepHyperparameters(config, device, on_device=config.cuda_graphs or config.device_schedules)
    optimizer = build_optimizer(config, model, hyperparameters)
    trained = model
    if world.distributed:
        trained = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if config.compile:
        trained = torch.compile(trained)
    method = plan.method.from_config(
        config,
        trained,
        hyperparameters.schedule("consistency_weight"),
        hyperparameters.schedule("ema_decay"),
        num_examples,
        num_classes,
    )
    if config.compile:
        method.compile()
    nonfinite = torch.zeros((), dtype=torch.bool, device=device)

    def optimize(batch: Batch) -> dict[str, torch.Tensor]:
        with autocast(device, config.precision, cache=not config.cuda_graphs):
            total, logs = method.loss(batch, hyperparameters.step)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        method.after_step(hyperparameters["step"])
        nonfinite.logical_or_(~torch.isfinite(total.detach()))
        logs["lr"] = torch.as_tensor(hyperparameters["lr"])
        logs["ema_decay"] = torch.as_tensor(hyperparameters["ema_decay"])
        return logs

    return TrainingStep(
        model, method, optimizer, hyperparameters, GraphedStep(optimize) if config.cuda_graphs else optimize, nonfinite
    )
