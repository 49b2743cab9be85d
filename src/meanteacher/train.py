"""The training loop: data on the device, one method, schedules, evaluation, checkpoints, logs.

``train(config, run_dir)`` runs (or, with ``resume=True``, continues) one run and writes its run
directory: ``config.toml``, ``metrics.jsonl``, ``checkpoint.pt``, ``labels.txt``, ``summary.json``
and ``curves.png``.
"""

from __future__ import annotations

import contextlib
import gc
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn

from .config import CONSISTENCY_PAYS_FROM_PASSES, Config, load_config_file, resolve_auto, to_toml
from .data.augment import Augmenter, Normalizer
from .data.batches import IndexBatch
from .data.pipeline import DeviceData, batches_for, device_data, make_split, to_device
from .data.sources import Dataset, load_dataset
from .data.streaming import FolderIndex, imagenet_normalizer, index_image_folder, evaluation_loader, train_loader
from .data.splits import write_label_file
from .distributed import World, any_true, average_, barrier, init_world, leave_world
from .errors import MeanTeacherError
from .files import atomic_torch_save, atomic_write_text
from .graphs import GraphedStep
from .hyperparameters import StepHyperparameters
from .losses import classification_cost
from .methods import METHODS, VAT, Batch, MeanTeacher, MeanTeacherVAT, Method, PiModel, Supervised, TemporalEnsembling
from .models import create_model, split_heads
from .models.layers import MeanOnlyBatchNorm
from .optim import CapturableAdam
from .teacher import unwrap

CHECKPOINT_FORMAT = 2
"""2: every method keeps an EMA of the student (``method.ema``); 1 had a teacher for Mean Teacher only."""


class TrainingError(MeanTeacherError):
    """Training cannot go on (e.g. the loss became non-finite)."""


def step_seed(seed: int, rank: int, step: int) -> int:
    """The seed of all randomness (noise, dropout, shake-shake) of one step on one process.

    Reseeding every step makes each step a pure function of (seed, rank, step): a resumed run
    repeats exactly what an uninterrupted one would have drawn, without saving generator states.
    """
    return (seed * 1_000_003 + rank * 7_919 + step * 104_729 + 12_345) % (2**63 - 1)


def extra_subset(available: int, count: int, seed: int) -> torch.Tensor:
    """Indices of ``count`` extra images drawn at random (by ``seed``) from ``available``, in order."""
    if count > available:
        raise MeanTeacherError(f"extra_unlabeled={count} but the dataset has {available} extra images")
    generator = torch.Generator().manual_seed(seed * 7_919 + 4_242)
    return torch.randperm(available, generator=generator)[:count].sort().values


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
        try:
            device = torch.device(name)
        except RuntimeError:
            raise MeanTeacherError(f"device {name!r} is not a device name (cuda, cuda:N, cpu or auto)") from None
        if device.index >= torch.cuda.device_count():
            raise MeanTeacherError(f"device {name!r} requested but this machine has {torch.cuda.device_count()} CUDA device(s)")
        return device
    return torch.device(name)


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
        raise MeanTeacherError(f"architecture {config.arch!r} cannot take {image_shape[-2]}x{image_shape[-1]} images ({reason}){hint}") from None
    finally:
        model.train(was_training)


def build_method(
    config: Config, model: nn.Module, num_examples: int, num_classes: int, hyperparameters: StepHyperparameters
) -> Method:
    """The configured method around ``model``; its schedules read the current step's ``hyperparameters``."""
    def consistency(step: int) -> float | torch.Tensor:
        return hyperparameters["consistency_weight"]

    def ema_decay(step: int) -> float | torch.Tensor:
        return hyperparameters["ema_decay"]

    cls = METHODS[config.method]
    if cls is Supervised:
        return Supervised(model, config.class_normalize, ema_decay)
    if cls is PiModel:
        return PiModel(model, consistency, config.consistency_type, config.class_normalize, ema_decay)
    if cls is TemporalEnsembling:
        return TemporalEnsembling(
            model, num_examples, num_classes, config.te_alpha, consistency, config.consistency_type, config.class_normalize, ema_decay,
        )
    if cls is VAT:
        return VAT(model, consistency, config.vat_eps, config.vat_xi, config.vat_power_iterations, config.entropy_weight,
                   config.class_normalize, ema_decay)
    options = {"eps": config.vat_eps, "xi": config.vat_xi, "power_iterations": config.vat_power_iterations} if cls is MeanTeacherVAT else {}
    return cls(
        model, consistency, config.consistency_type, ema_decay, config.logit_distance,
        config.consistency_on_labeled, config.bn_buffers, config.class_normalize, config.logit_distance_classes, **options,
    )


def build_optimizer(config: Config, model: nn.Module, hyperparameters: StepHyperparameters | None = None) -> torch.optim.Optimizer:
    """Adam or SGD (Nesterov) over the student's parameters.

    With ``hyperparameters`` kept on the device, Adam is ``CapturableAdam``: it reads its learning
    rate and betas from those 0-dim tensors and makes no host read, so a CUDA graph can capture it.
    """
    if config.optimizer == "adam":
        if hyperparameters is not None and hyperparameters.on_device:
            tensors = hyperparameters.tensors
            return CapturableAdam(model.parameters(), tensors["lr"], tensors["adam_beta1"], tensors["adam_beta2"],
                                  eps=config.adam_epsilon, weight_decay=config.weight_decay)
        return torch.optim.Adam(
            model.parameters(), lr=config.lr, betas=(config.adam_beta1, config.adam_beta2),
            eps=config.adam_epsilon, weight_decay=config.weight_decay,
        )
    return torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
        weight_decay=config.weight_decay,
    )


def _autocast(device: torch.device, precision: str, cache: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast or nothing; ``cache=False`` under CUDA-graph capture, which autocast's weight cache breaks."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=cache)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate_batches(
    models: dict[str, nn.Module], batches: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]],
    precision: str = "fp32", channels_last: bool = False,
) -> dict[str, float]:
    """Error rate and mean classification cost of each model (in eval mode) over ``batches()``,
    an iterable of (network input, labels) pairs."""
    results = {}
    device = next(next(iter(models.values())).parameters()).device
    for name, model in models.items():
        was_training = model.training
        model.eval()
        wrong = torch.zeros((), dtype=torch.long, device=device)  # summed on the device: one host read per model
        cost = torch.zeros((), dtype=torch.float64, device=device)
        count = 0
        for x, y in batches():
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with _autocast(device, precision):
                logits, _ = split_heads(model(x))
            wrong += (logits.argmax(1) != y).sum()
            cost += classification_cost(logits.float(), y, "batch").double() * len(y)
            count += len(y)
        model.train(was_training)
        results[f"{name}_error"] = int(wrong) / max(count, 1)
        results[f"{name}_class_cost"] = float(cost) / max(count, 1)
    return results


def evaluate(
    models: dict[str, nn.Module],
    images: torch.Tensor,
    labels: torch.Tensor,
    normalizer: Normalizer,
    batch_size: int = 500,
    precision: str = "fp32",
    channels_last: bool = False,
) -> dict[str, float]:
    """Error rate and mean classification cost of each model on stored (see ``Normalizer.prepare``) ``images``."""
    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, len(images), batch_size):
            yield normalizer(images[start : start + batch_size]), labels[start : start + batch_size]

    return evaluate_batches(models, batches, precision, channels_last)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


@dataclass
class Progress:
    """Progress bar on a terminal, plain log lines otherwise (only on the main process).

    After the first ``TIMED_STEPS`` steps it prints ``plan`` (what the run will do) with the time the
    whole run will take at the speed of those steps.
    """

    total: int
    start: int
    enabled: bool
    plan: str = ""

    TIMED_STEPS = 5

    def __post_init__(self) -> None:
        self.bar = None
        self.started = time.perf_counter()
        self.first_step_done: float | None = None
        self.steps_done = 0
        if self.enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, initial=self.start, unit="step", dynamic_ncols=True)

    def step(self) -> None:
        self.steps_done += 1
        if self.steps_done == 1:
            self.first_step_done = time.perf_counter()  # the first step warms up: time from its end
        elif self.enabled and self.plan and (self.steps_done == self.TIMED_STEPS + 1 or self.start + self.steps_done == self.total):
            self.plan, plan = "", self.plan  # printed once
            per_step = (time.perf_counter() - self.first_step_done) / (self.steps_done - 1)
            left = self.total - self.start - self.steps_done
            text = f"{plan}; about {_duration(left * per_step)} to go ({per_step:.3f} s/step over the first steps)"
            if self.bar is not None:
                self.bar.write(text, file=sys.stderr)
            else:
                print(text, file=sys.stderr, flush=True)
        if self.bar is not None:
            self.bar.update(1)

    def report(self, step: int, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        shown = {k: record[k] for k in ("class_cost", "consistency_cost", "student_error", "ema_error") if k in record}
        text = "  ".join(f"{k} {v:.2%}" if k.endswith("error") else f"{k} {v:.4f}" for k, v in shown.items())
        if self.bar is not None:
            self.bar.set_postfix_str(text)
            return
        elapsed = time.perf_counter() - self.started
        rate = (step - self.start) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - step) / rate if rate > 0 else 0.0
        print(f"step {step}/{self.total}  {text}  {rate:.2f} steps/s  ETA {eta / 60:.1f} min", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Trainer:
    """One run: builds data, model, method and optimizer from a config, trains, evaluates, saves."""

    def __init__(self, config: Config, run_dir: str | Path, resume: bool = False, progress: bool = True, dataset: Dataset | FolderIndex | None = None) -> None:
        config.validate()
        self.config = config
        self.run_dir = Path(run_dir)
        self.world = init_world("cuda" if config.device.startswith("cuda") or (config.device == "auto" and torch.cuda.is_available()) else "cpu")
        self.device = resolve_device(config.device, self.world)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = not config.deterministic  # fixed shapes: keep the fastest kernels
            torch.backends.cudnn.deterministic = config.deterministic
            torch.cuda.set_device(self.device)
        self.show_progress = progress and self.world.is_main
        if config.cuda_graphs and (self.device.type != "cuda" or self.world.distributed):
            raise MeanTeacherError("cuda_graphs needs one process on a CUDA device (not CPU, not torchrun)")
        torch.manual_seed(config.seed)
        if resume:
            check_architecture(load_checkpoint(self.checkpoint_path), config.arch, self.checkpoint_path)
        if dataset is not None:
            self.dataset = dataset
        elif config.streaming:
            self.dataset = index_image_folder(config.dataset, config.image_size)
        else:
            self.dataset = load_dataset(config.dataset, config.test_data or None, extra=config.extra_unlabeled != 0)
        self._build()
        self.step = 0
        self.log_sums: dict[str, float | torch.Tensor] = {}  # summed on the device: no sync per step
        self.log_count = 0
        self.elapsed = 0.0
        self.eval_seconds = 0.0
        self.checkpoint_seconds = 0.0
        if resume:
            self._load_checkpoint()

    # ------------------------------------------------------------------ set-up

    def _build_in_memory(self, masked_labels: torch.Tensor) -> int:
        """Training, test and validation tensors on the device; returns the number of extra images."""
        config, data = self.config, self.dataset
        normalizer = Normalizer(config.normalize).fit(data.train_images)
        augmenter = Augmenter(config.translate, config.flip, 0.0, config.fill)
        images, labels = data.train_images, masked_labels
        extra = 0
        if data.extra_images is not None and config.extra_unlabeled != 0:
            extra_images = data.extra_images if config.extra_unlabeled < 0 else data.extra_images[extra_subset(len(data.extra_images), config.extra_unlabeled, config.seed)]
            extra = len(extra_images)
            images = torch.cat([images, extra_images])
            labels = torch.cat([labels, torch.full((extra,), -1, dtype=labels.dtype)])
        self.train_data: DeviceData | None = device_data(images, labels, normalizer, augmenter, self.device)
        self.normalizer = normalizer
        self.test_images = normalizer.prepare(data.test_images).to(self.device)
        self.test_labels = data.test_labels.to(self.device)
        self.validation_images = normalizer.prepare(data.train_images[self.split.validation]).to(self.device)
        self.validation_labels = data.train_labels[self.split.validation].to(self.device)
        return extra

    def _build(self) -> None:
        data = self.dataset
        self.split, masked_labels = make_split(data, self.config.labels, self.config.seed, self.config.label_file, self.config.validation_per_class)
        all_labeled = len(self.split.unlabeled) == 0 and self.config.extra_unlabeled == 0
        self.config = config = resolve_auto(self.config, data.num_classes, all_labeled, labeled_images=len(self.split.labeled))
        self.method_cls = METHODS[config.method]
        self.masked_labels = masked_labels
        if config.streaming:
            self.train_data, extra = None, 0
            self.normalizer = imagenet_normalizer()
            self.validation_labels = masked_labels[:0]
        else:
            extra = self._build_in_memory(masked_labels)
        self.sampler = batches_for(
            self.split, extra, len(data.train_labels), config.batch_size, config.labeled_per_batch, config.seed,
            labeled_only=not self.method_cls.uses_unlabeled,
        )
        self.loader_iterator: Iterator | None = None
        in_channels = data.image_shape[0]
        model = build_model(config, data.num_classes, in_channels).to(self.device)
        check_input_size(model, data.image_shape, config, self.device)
        if config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if config.sync_batchnorm and self.world.distributed:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            for module in model.modules():
                if isinstance(module, MeanOnlyBatchNorm):
                    module.sync = True
        self.model = model
        self.hyperparameters = StepHyperparameters(config, self.device, on_device=config.cuda_graphs or config.device_schedules)
        self.optimizer = build_optimizer(config, model, self.hyperparameters)
        trained = model
        if self.world.distributed:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            trained = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        if config.compile:
            trained = torch.compile(trained)
        self.method = build_method(config, trained, len(data.train_labels) + extra, data.num_classes, self.hyperparameters)
        if config.compile and isinstance(self.method, MeanTeacher):
            self.method.teacher_forward = torch.compile(self.method.teacher.module)
        self.generator = torch.Generator(device=self.device)
        self.nonfinite = torch.zeros((), dtype=torch.bool, device=self.device)
        self.optimize: Callable[[Batch], dict[str, torch.Tensor]] = GraphedStep(self._optimize) if config.cuda_graphs else self._optimize


    # ------------------------------------------------------------------ checkpoints

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoint.pt"

    def _checkpoint(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "arch": self.config.arch,
            "classes": self.dataset.classes,
            "image_shape": list(self.dataset.image_shape),
            "step": self.step,
            "model": unwrap(self.model).state_dict(),
            "method": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "normalizer": self.normalizer.state_dict(),
            "seed": self.config.seed,
            "log_sums": {key: float(value) for key, value in self.log_sums.items()},
            "log_count": self.log_count,
            "elapsed": self.elapsed,
            "eval_seconds": self.eval_seconds,
            "checkpoint_seconds": self.checkpoint_seconds,
        }

    def save_checkpoint(self) -> None:
        """Write ``checkpoint.pt`` atomically (main process only)."""
        self._sync_ema_buffers()
        if self.world.is_main:
            atomic_torch_save(self._checkpoint(), self.checkpoint_path)

    def _load_checkpoint(self) -> None:
        state = load_checkpoint(self.checkpoint_path)
        try:
            unwrap(self.model).load_state_dict(state["model"])
            self.method.load_state_dict(state["method"])
            self._load_optimizer_state(state["optimizer"])
        except (RuntimeError, KeyError, ValueError) as error:
            raise MeanTeacherError(f"{self.checkpoint_path}: does not fit this run's model ({str(error).splitlines()[0]})") from None
        self.step = int(state["step"])
        self.log_sums = dict(state["log_sums"])
        self.log_count = int(state["log_count"])
        self.elapsed = float(state["elapsed"])
        self.eval_seconds = float(state["eval_seconds"])
        self.checkpoint_seconds = float(state["checkpoint_seconds"])
        self._truncate_metrics()

    def _load_optimizer_state(self, state: dict[str, Any]) -> None:
        """Restore moments and step counts, keeping this run's own settings (a run resumed with or
        without CUDA graphs keeps its own learning-rate tensors or floats)."""
        own = [{key: value for key, value in group.items() if key != "params"} for group in self.optimizer.param_groups]
        self.optimizer.load_state_dict(state)
        for group, settings in zip(self.optimizer.param_groups, own):
            group.update(settings)

    def _truncate_metrics(self) -> None:
        path = self.run_dir / "metrics.jsonl"
        if not self.world.is_main or not path.is_file():
            return
        kept = []
        for line in path.read_text().splitlines():
            try:
                if json.loads(line)["step"] <= self.step:
                    kept.append(line)
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line cut short when the run was killed
        atomic_write_text(path, "".join(line + "\n" for line in kept))

    def _sync_ema_buffers(self) -> None:
        """Average the EMA's BatchNorm statistics over processes, so every rank holds one EMA (teacher)."""
        if self.world.distributed:
            average_([b for b in self.method.ema.module.buffers() if b.is_floating_point()], self.world)

    # ------------------------------------------------------------------ the loop

    def _set_hyperparameters(self) -> None:
        """Give the optimizer this step's learning rate and betas as floats (with device
        hyperparameters Adam holds the tensors themselves, which ``set_step`` updates in place)."""
        values = self.hyperparameters.values
        for group in self.optimizer.param_groups:
            group["lr"] = values["lr"]
            if "betas" in group:
                group["betas"] = (values["adam_beta1"], values["adam_beta2"])

    def _streamed_batch(self) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        if self.loader_iterator is None:
            cfg = self.config
            self.loader_iterator = iter(train_loader(
                self.dataset, self.masked_labels, self.sampler, self.method_cls.views, cfg.seed, self.step,
                cfg.workers, self.world.rank, self.world.size,
            ))
        *views, labels, indices = next(self.loader_iterator)
        return [v.to(self.device, non_blocking=True) for v in views], labels.to(self.device, non_blocking=True), indices

    def _batch(self, index_batch: IndexBatch) -> Batch:
        if self.config.streaming:
            views, labels, indices = self._streamed_batch()
        else:
            if self.world.distributed:
                index_batch = index_batch.shard(self.world.rank, self.world.size)
            views, labels = self.train_data.views(index_batch, self.method_cls.views, self.generator)
            indices = index_batch.indices
        if self.config.channels_last:
            views = [v.contiguous(memory_format=torch.channels_last) for v in views]
        return Batch(
            student_input=views[0],
            teacher_input=views[1] if len(views) > 1 else None,
            labels=labels,
            indices=to_device(indices, self.device),
            all_labeled=not self.method_cls.uses_unlabeled,  # the sampler draws labeled rows only
        )

    def _optimize(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Cost, backward pass, optimizer step and teacher update on one batch: the part a CUDA graph captures."""
        hp = self.hyperparameters
        with _autocast(self.device, self.config.precision, cache=not self.config.cuda_graphs):
            total, logs = self.method.loss(batch, hp.step)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        self.method.after_step(hp["steps_taken"])
        self.nonfinite |= ~torch.isfinite(total.detach())
        logs["lr"] = torch.as_tensor(hp["lr"])
        return logs

    def train_step(self, step: int) -> dict[str, torch.Tensor]:
        """One optimizer step at 0-based ``step``; returns the detached cost terms.

        With ``cuda_graphs`` the returned tensors are overwritten by the next step: read them first.
        """
        seed = step_seed(self.config.seed, self.world.rank, step)
        torch.manual_seed(seed)
        self.generator.manual_seed(seed + 1)
        index_batch = self.sampler.batch(step)  # cheap: permutations are cached per pass
        batch = self._batch(index_batch)
        self.hyperparameters.set_step(step)
        if not self.hyperparameters.on_device:
            self._set_hyperparameters()
        logs = self.optimize(batch)
        if index_batch.epoch_end:
            self.method.end_epoch()
        return logs

    def _check_finite(self) -> None:
        if any_true(self.nonfinite, self.world):
            last = "no checkpoint yet"
            if self.checkpoint_path.is_file():
                last = f"the last good checkpoint (step {load_checkpoint(self.checkpoint_path)['step']}) is intact"
            raise TrainingError(f"loss became non-finite before step {self.step}; stopped, {last} in {self.run_dir}")

    def _ema_rank_spread(self) -> float:
        """Largest difference between processes of the EMA's parameter checksum (0 when identical)."""
        checksum = torch.stack([p.double().sum() for p in self.method.ema.module.parameters()]).sum().reshape(1)
        gathered = [torch.zeros_like(checksum) for _ in range(self.world.size)]
        torch.distributed.all_gather(gathered, checksum)
        values = torch.cat(gathered)
        return float(values.max() - values.min())

    def _evaluate(self) -> dict[str, float]:
        self._sync_ema_buffers()
        models = self.method.evaluation_models()
        cfg = self.config
        if cfg.streaming:
            loader = evaluation_loader(self.dataset, cfg.eval_batch_size, cfg.workers)
            results = evaluate_batches(models, lambda: loader, cfg.precision, cfg.channels_last)
        else:
            results = evaluate(models, self.test_images, self.test_labels, self.normalizer, cfg.eval_batch_size, cfg.precision, cfg.channels_last)
        if self.world.distributed:
            results["ema_rank_spread"] = self._ema_rank_spread()
        if len(self.validation_labels):
            validation = evaluate(models, self.validation_images, self.validation_labels, self.normalizer, cfg.eval_batch_size, cfg.precision, cfg.channels_last)
            results.update({f"validation_{k}": v for k, v in validation.items()})
        return results

    def _checkpoint_due(self) -> bool:
        """Whether ``checkpoint_seconds`` have passed since the last checkpoint (or the start), as the
        main process's clock says: every process must take the same decision."""
        due = torch.tensor(time.perf_counter() - self.last_checkpoint >= self.config.checkpoint_seconds, device=self.device)
        if self.world.distributed:
            torch.distributed.broadcast(due, src=0)
        return bool(due)

    def _write_metrics(self, record: dict[str, Any]) -> None:
        if self.world.is_main:
            with open(self.run_dir / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps(record) + "\n")

    def run(self) -> dict[str, Any]:
        """Train to ``config.steps``; returns the summary written to ``summary.json``."""
        cfg = self.config
        if self.world.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.run_dir / "config.toml", to_toml(cfg))
            write_label_file(self.run_dir / "labels.txt", self.dataset.train_ids, self.dataset.classes,
                             self.split.labeled, self.masked_labels[self.split.labeled])
        barrier(self.world)
        self.method.model.train()
        progress = Progress(cfg.steps, self.step, self.show_progress, self._plan())
        self.last_checkpoint = time.perf_counter()
        started = time.perf_counter() - self.elapsed
        steps_started, since, side_seconds = self.step, time.perf_counter(), self.eval_seconds + self.checkpoint_seconds
        try:
            while self.step < cfg.steps:
                logs = self.train_step(self.step)
                self.step += 1
                for key, value in logs.items():
                    self.log_sums[key] = self.log_sums.get(key, 0.0) + value.detach().float()
                self.log_count += 1
                progress.step()
                at_eval = self.step % cfg.eval_every == 0 or self.step == cfg.steps
                at_checkpoint = self.step == cfg.steps or (self.step % cfg.checkpoint_every == 0 and self._checkpoint_due())
                if at_eval or at_checkpoint or self.step % 20 == 0:
                    self._check_finite()
                if at_eval:
                    evaluation_start = time.perf_counter()
                    record = {"step": self.step, **{k: float(v) / self.log_count for k, v in self.log_sums.items()}, **self._evaluate()}
                    self.log_sums, self.log_count = {}, 0
                    self._write_metrics(record)
                    progress.report(self.step, record)
                    self.eval_seconds += time.perf_counter() - evaluation_start
                if at_checkpoint:
                    checkpoint_start = time.perf_counter()
                    self.elapsed = time.perf_counter() - started  # the checkpoint records the time so far
                    self.save_checkpoint()
                    self.checkpoint_seconds += time.perf_counter() - checkpoint_start
                    self.last_checkpoint = time.perf_counter()
                self.elapsed = time.perf_counter() - started
        finally:
            progress.close()
        train_seconds = time.perf_counter() - since - (self.eval_seconds + self.checkpoint_seconds - side_seconds)
        summary = self._summary(train_seconds, self.step - steps_started)
        if self.world.is_main:
            atomic_write_text(self.run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
            from .report import plot_curves

            plot_curves(self.run_dir / "metrics.jsonl", self.run_dir / "curves.png")
        barrier(self.world)
        return summary

    def _plan(self) -> str:
        """One line on what the run will do: data, labels, steps, batch composition, run directory."""
        cfg, labeled = self.config, self.sampler.labeled_per_batch
        if labeled is None:
            batch = f"{cfg.batch_size} images (labeled and unlabeled alike)"
        else:
            passes = (cfg.steps - self.step) * labeled / max(len(self.split.labeled), 1)
            batch = f"{cfg.batch_size} images ({labeled} labeled: {passes:,.0f} passes over the labeled images)"
            if cfg.method != "supervised" and passes < CONSISTENCY_PAYS_FROM_PASSES:
                batch += (f" - few for {cfg.method}: on CIFAR-10 Mean Teacher beat supervised-only from about "
                          f"{CONSISTENCY_PAYS_FROM_PASSES} passes (more --steps, or fewer labels per batch)")
        return (f"{cfg.method} on {self.dataset.name}: {len(self.dataset.train_labels):,} training images, "
                f"{len(self.split.labeled):,} labeled, {self.dataset.num_classes} classes; {cfg.steps - self.step:,} steps of {batch}; "
                f"run directory {self.run_dir}")

    def _summary(self, train_seconds: float, steps: int) -> dict[str, Any]:
        """The run's summary; its speed is that of the ``steps`` trained since this process started (``train_seconds``)."""
        metrics_path = self.run_dir / "metrics.jsonl"
        last = {}
        if metrics_path.is_file():
            lines = [line for line in metrics_path.read_text().splitlines() if line.strip()]
            last = json.loads(lines[-1]) if lines else {}
        images_per_step = self.config.batch_size
        return {
            "method": self.config.method,
            "dataset": self.dataset.name,
            "labels": len(self.split.labeled),
            "seed": self.config.seed,
            "steps": self.step,
            "arch": self.config.arch,
            "student_error": last.get("student_error"),
            "ema_error": last.get("ema_error"),
            **{key: last[key] for key in ("validation_ema_error", "validation_student_error") if key in last},
            "precision": self.config.precision,
            "seconds": round(self.elapsed, 2),
            "train_seconds": round(self.elapsed - self.eval_seconds - self.checkpoint_seconds, 2),
            "eval_seconds": round(self.eval_seconds, 2),
            "checkpoint_seconds": round(self.checkpoint_seconds, 2),
            "images_per_second": round(steps * images_per_step / train_seconds, 1) if train_seconds > 0 else None,
        }


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``; a clear error if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise MeanTeacherError(f"{path}: no checkpoint found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any failure to unpickle means a bad file
        raise MeanTeacherError(f"{path}: not a readable meanteacher checkpoint ({str(error).splitlines()[0][:120]})") from None
    if not isinstance(state, dict) or not isinstance(state.get("format"), int):
        raise MeanTeacherError(f"{path}: not a meanteacher checkpoint (format {CHECKPOINT_FORMAT})")
    if state["format"] != CHECKPOINT_FORMAT:
        raise MeanTeacherError(f"{path}: checkpoint format {state['format']} was written by another meanteacher version; this one reads format {CHECKPOINT_FORMAT}")
    return state


def check_architecture(state: dict[str, Any], arch: str, path: Path) -> None:
    """A clear error when a checkpoint was written for another architecture."""
    if state.get("arch") != arch:
        raise MeanTeacherError(f"{path}: checkpoint is for architecture {state.get('arch')!r}, not {arch!r}")


def prepare_run_dir(run_dir: Path, resume: bool) -> None:
    """Refuse to overwrite a finished or started run unless resuming, and to resume nothing."""
    if resume:
        if not (run_dir / "checkpoint.pt").is_file():
            raise MeanTeacherError(f"{run_dir}: no checkpoint to resume from")
    elif (run_dir / "checkpoint.pt").is_file() or (run_dir / "metrics.jsonl").is_file():
        raise MeanTeacherError(f"{run_dir}: a run already exists there; use --resume {run_dir} or another --out")


def train(config: Config, run_dir: str | Path, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) training as configured and write the run directory; returns the summary."""
    run_dir = Path(run_dir)
    prepare_run_dir(run_dir, resume)
    trainer = Trainer(config, run_dir, resume=resume, progress=progress)
    world = trainer.world
    try:
        return trainer.run()
    finally:
        del trainer  # its DDP wrapper holds the process group, which must be gone before the group ends
        gc.collect()
        leave_world(world)


def resume_config(run_dir: str | Path) -> Config:
    """The resolved configuration a run directory was started with."""
    path = Path(run_dir) / "config.toml"
    if not path.is_file():
        raise MeanTeacherError(f"{run_dir}: not a run directory (no config.toml)")
    return load_config_file(path)


def default_run_name(config: Config) -> str:
    """``runs/<dataset>-<method>-<labels>-s<seed>`` style name for a run directory."""
    dataset = Path(config.dataset).name
    for suffix in (".tar.gz", ".tgz", ".tar", ".zip"):
        dataset = dataset.removesuffix(suffix)
    labels = config.labels or "all"
    return f"{dataset}-{config.method}-{labels}-s{config.seed}"
