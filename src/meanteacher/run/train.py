"""The training loop: one step at a time, with evaluation, checkpoints and logs at their cadence.

``train(config, run_dir)`` runs (or, with ``resume=True``, continues) one run and writes its run
directory (see ``run.rundir``).
"""

from __future__ import annotations

import gc
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ..auto import resolve_auto, resolve_image_size
from ..config import Config
from ..config_checks import validate
from ..data.batch import NO_LABEL, Batch
from ..data.dataset import Dataset
from ..data.sampler import IndexBatch, mixed_seed
from ..data.splits import make_split, write_label_file
from ..data.streaming import FolderIndex
from ..data.views import to_device
from ..errors import MeanTeacherError
from ..methods import method_class
from ..report import ema_name
from .budget import fit_to_time, refitted_config
from .checkpointing import Checkpoints
from .distributed import any_true, average_float_buffers_, barrier, init_world, leave_world, rank_spread
from .evaluation import evaluate_batches
from .guard import DeadTeacherGuard
from .logbook import Logbook
from .pacing import Pacing
from .progress import Progress, duration, plan_line
from .rundir import RunDirectory, check_architecture
from .setup import build_feed, build_training_step, load_data, resolve_device, use_device


class TrainingError(MeanTeacherError):
    """Training cannot go on (e.g. the loss became non-finite)."""


def step_seed(seed: int, rank: int, step: int) -> int:
    """The seed of all randomness (noise, dropout, shake-shake) of one step on one process.

    Reseeding every step makes each step a pure function of (seed, rank, step): a resumed run
    repeats exactly what an uninterrupted one would have drawn, without saving generator states.
    """
    return mixed_seed(seed, rank, step, offset=12_345)


class Trainer:
    """One run: its data feed and training step, built from a config; ``step()`` trains one step, ``run()`` to the end."""

    def __init__(
        self,
        config: Config,
        run_dir: str | Path,
        resume: bool = False,
        progress: bool = True,
        dataset: Dataset | FolderIndex | None = None,
    ) -> None:
        validate(config)
        self.run_dir = RunDirectory(run_dir)
        self.world = init_world(
            "cuda"
            if config.device.startswith("cuda") or (config.device == "auto" and torch.cuda.is_available())
            else "cpu"
        )
        self.device = resolve_device(config.device, self.world)
        use_device(self.device, config.deterministic)
        self.show_progress = progress and self.world.is_main
        if config.cuda_graphs and (self.device.type != "cuda" or self.world.distributed):
            raise MeanTeacherError("cuda_graphs needs one process on a CUDA device (not CPU, not torchrun)")
        torch.manual_seed(config.seed)
        if config.tensorboard:
            from .tensorboard import summary_writer

            summary_writer()  # before anything is written: without the package, one line and no run directory
        if resume:
            check_architecture(self.run_dir.load_checkpoint(), config.arch, self.run_dir.checkpoint)
        config = resolve_image_size(config)
        cadence_is_automatic = config.eval_every is None
        self.dataset = dataset = load_data(config) if dataset is None else dataset
        self.split, self.masked_labels = make_split(
            dataset, config.labels, config.seed, config.label_file, config.validation_per_class
        )
        all_labeled = (
            len(self.split.labeled) == len(self.split.unlabeled)
            and config.extra_unlabeled == 0
            and not dataset.pile_size
        )
        self.requested = config
        """The run's config before automatic settings were resolved (``train`` gives it before the time fit)."""
        self._auto_inputs = (dataset.num_classes, all_labeled, len(self.split.labeled), self.device.type)
        self.config = config = resolve_auto(
            config, dataset.num_classes, all_labeled, len(self.split.labeled), self.device.type
        )
        self.feed, self.sampler = build_feed(config, dataset, self.split, self.masked_labels, self.device, self.world)
        self.training_step = build_training_step(
            config,
            dataset.num_classes,
            dataset.image_shape,
            len(dataset.train_labels) + self.feed.extra,
            self.device,
            self.world,
            warm=bool(config.init) and not resume,
        )
        self.training_step.method.hidden_labels = torch.cat(
            [dataset.train_labels, torch.full((self.feed.extra,), NO_LABEL, dtype=dataset.train_labels.dtype)]
        ).to(self.device)
        self.view_count, self.labeled_only = (
            method_class(config.method).view_count,
            not method_class(config.method).uses_unlabeled,
        )
        self.generator = torch.Generator(device=self.device)
        self.guard = DeadTeacherGuard(config)
        self.logbook = Logbook(self.run_dir, dataset.classes, ema_name(config.method), self.guard)
        self.pacing = Pacing(config.eval_every, cadence_is_automatic, self.world.distributed)
        identity = {
            "arch": config.arch,
            "classes": dataset.classes,
            "image_shape": list(dataset.image_shape),
            "seed": config.seed,
        }
        self.checkpoints = Checkpoints(
            self.run_dir,
            self.world,
            self.device,
            config.checkpoint_every,
            config.checkpoint_seconds,
            identity,
            self.training_step,
            self.feed.normalizer,
            self.logbook,
            self.pacing,
        )
        self.global_step = self.checkpoints.load() if resume else 0

    # ------------------------------------------------------------------ one step

    def batch(self, step: int, index_batch: IndexBatch | None = None) -> Batch:
        """The noised batch of 0-based ``step`` on this process's device (of ``index_batch``, the
        sampler's batch of that step, when the caller has it)."""
        index_batch = self.sampler.batch(step) if index_batch is None else index_batch
        views, labels, indices = self.feed.noised_views(step, index_batch, self.view_count, self.generator)
        if self.config.channels_last:
            views = [v.contiguous(memory_format=torch.channels_last) for v in views]
        return Batch(
            student_input=views[0],
            teacher_input=views[1] if len(views) > 1 else None,
            labels=labels,
            indices=to_device(indices, self.device),
            all_labeled=self.labeled_only,
        )

    def step(self) -> dict[str, torch.Tensor]:
        """Train one step (the next one); returns its detached cost terms.

        With ``cuda_graphs`` the returned tensors are overwritten by the next step: read them first.
        """
        step, training = self.global_step, self.training_step
        seed = step_seed(self.config.seed, self.world.rank, step)
        torch.manual_seed(seed)
        self.generator.manual_seed(seed + 1)
        index_batch = self.sampler.batch(step)  # cheap: permutations are cached per pass
        batch = self.batch(step, index_batch)
        training.hyperparameters.set_step(step)
        if not training.hyperparameters.on_device:  # floats: the optimizer takes this step's values
            values = training.hyperparameters.values
            for group in training.optimizer.param_groups:
                group["lr"] = values["lr"]
                if "betas" in group:
                    group["betas"] = (values["adam_beta1"], values["adam_beta2"])
        logs = training.optimize(batch)
        if index_batch.epoch_end:
            training.method.end_epoch()
        self.global_step += 1
        return logs

    # ------------------------------------------------------------------ the run

    def run(self) -> dict[str, Any]:
        """Train to ``config.steps``; returns the summary written to ``summary.json``."""
        cfg, run_dir = self.config, self.run_dir
        if self.world.is_main:
            run_dir.write_config(cfg)
            write_label_file(
                run_dir.labels_file,
                self.dataset.train_ids,
                self.dataset.classes,
                self.split.labeled,
                self.masked_labels[self.split.labeled],
            )
            if cfg.tensorboard:
                self.logbook.open_tensorboard(self.global_step)
        barrier(self.world)
        self.training_step.method.model.train()
        progress = Progress(cfg.steps, self.global_step, self.show_progress, self._plan(), cfg.batch_size)
        pacing = self.pacing
        pacing.start(self.global_step, cfg.steps)
        try:
            while self.global_step < cfg.steps:
                logs = self.step()
                self.logbook.add(logs)
                progress.step()
                step = self.global_step
                at_eval = step % pacing.eval_every == 0 or step == cfg.steps
                at_checkpoint = self.checkpoints.due(step, cfg.steps)
                if at_eval or at_checkpoint or step % 20 == 0:
                    self._check_finite()
                if at_eval:
                    with pacing.evaluating(step, cfg.steps):
                        self._evaluate_and_log(step, progress)
                if at_checkpoint:
                    with pacing.checkpointing():
                        self.save_checkpoint()
                pacing.tick()
                if pacing.refit_due(step, cfg.steps):
                    cfg = self._refit(
                        step,
                        pacing.trained_seconds() / (step - pacing.steps_started),
                        pacing.eval_seconds / max(pacing.evaluations, 1),
                    )
                    pacing.after_refit(step, cfg.steps)
                    progress.set_total(cfg.steps)
        finally:
            progress.close()
            self.logbook.close()
        summary = self._summary(pacing.trained_seconds(), self.global_step - pacing.steps_started)
        if self.world.is_main:
            from ..report import plot_curves

            run_dir.write_summary(summary)
            plot_curves(run_dir.metrics, run_dir.curves, cfg.method)
        barrier(self.world)
        return summary

    def _evaluate_and_log(self, step: int, progress: Progress) -> None:
        """Evaluate, and record the results with the mean training logs since the last evaluation."""
        record = self.logbook.record(step, self.evaluate(confusion=step == self.config.steps))
        if self.world.is_main:
            method = self.training_step.method
            self.logbook.write(record, method.evaluation_models(), method.ema_is_teacher)
        progress.report(step, record)

    def evaluate(self, confusion: bool = False) -> dict[str, Any]:
        """Test (and validation) error and classification cost of the student and the EMA network (and,
        with ``confusion``, their confusion matrices on the test set: ``ema_confusion``, ``student_confusion``)."""
        self._sync_ema_buffers()
        models, cfg = self.training_step.method.evaluation_models(), self.config
        num_classes = self.dataset.num_classes if confusion else 0
        results = evaluate_batches(models, self.feed.test_batches(), cfg.precision, cfg.channels_last, num_classes)
        if self.world.distributed:
            results["ema_rank_spread"] = rank_spread(self.training_step.method.ema.module, self.world)
        validation = self.feed.validation_batches()
        if validation is not None:
            results.update(
                {
                    f"validation_{k}": v
                    for k, v in evaluate_batches(models, validation, cfg.precision, cfg.channels_last).items()
                }
            )
        return results

    def _check_finite(self) -> None:
        if any_true(self.training_step.nonfinite, self.world):
            last = "no checkpoint yet"
            if self.run_dir.checkpoint.is_file():
                last = f"the last good checkpoint (step {self.run_dir.load_checkpoint()['step']}) is intact"
            raise TrainingError(
                f"loss became non-finite before step {self.global_step}; stopped, {last} in {self.run_dir.path}"
            )

    def _sync_ema_buffers(self) -> None:
        """Every process holds one EMA network (teacher): average its BatchNorm statistics."""
        if self.world.distributed:
            average_float_buffers_(self.training_step.method.ema.module, self.world)

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self) -> None:
        """Write ``checkpoint.pt`` atomically (main process only)."""
        self._sync_ema_buffers()
        self.checkpoints.save(self.global_step)

    def _refit(self, step: int, step_seconds: float, evaluation_seconds: float) -> Config:
        """A run with a deadline (``--time``), at 10 % and 50 % of its steps: the steps that end it on time
        at the speed measured so far (a probe's few steps can run faster than a long run, e.g. on a
        CPU whose clock drops under sustained load). The automatic settings that follow the steps
        (``auto.FOLLOW_THE_STEPS``, and an automatic evaluation cadence) are derived again for them, so the
        ramps keep their shares of the run; the ramp-down stays anchored at the end."""
        cfg = self.config
        steps = self.pacing.steps_to_deadline(step, cfg.steps, cfg.eval_every, step_seconds, evaluation_seconds)
        if steps == cfg.steps:
            return cfg
        if self.show_progress:
            print(
                f"at step {step:,}: a step takes {step_seconds:.3f} s in this run, so it now takes {steps:,} steps "
                f"(not {cfg.steps:,}) to end on time",
                file=sys.stderr,
                flush=True,
            )
        self.config = refitted_config(self.requested, cfg, steps, evaluation_seconds, self._auto_inputs)
        self.training_step.hyperparameters.config = self.config
        self.pacing.eval_every = self.config.eval_every
        self.guard.follow(self.config)
        if self.world.is_main:
            self.run_dir.write_config(self.config)  # a resumed run goes on to the new end
        return self.config

    # ------------------------------------------------------------------ what the run says

    def _plan(self) -> str:
        data, labeled = self.dataset, self.split.labeled
        per_class = torch.bincount(self.masked_labels[labeled], minlength=data.num_classes).tolist()
        return plan_line(
            self.config,
            data.name,
            per_class,
            len(self.split.unlabeled) - len(labeled),
            data.pile_size,
            self.sampler.labeled_per_batch,
            self.config.steps - self.global_step,
            self.run_dir.path,
        )

    def _summary(self, train_seconds: float, steps: int) -> dict[str, Any]:
        """The run's summary; its speed is that of the ``steps`` trained since this process started (``train_seconds``)."""
        last, cfg, pacing = self.run_dir.last_metrics(), self.config, self.pacing
        return {
            "method": cfg.method,
            "dataset": self.dataset.name,
            "labels": len(self.split.labeled),
            "seed": cfg.seed,
            "steps": self.global_step,
            "arch": cfg.arch,
            "student_error": last.get("student_error"),
            "ema_error": last.get("ema_error"),
            **{key: last[key] for key in ("validation_ema_error", "validation_student_error") if key in last},
            "precision": cfg.precision,
            "seconds": round(pacing.elapsed, 2),
            "train_seconds": round(pacing.elapsed - pacing.eval_seconds - pacing.checkpoint_seconds, 2),
            "eval_seconds": round(pacing.eval_seconds, 2),
            "checkpoint_seconds": round(pacing.checkpoint_seconds, 2),
            "images_per_second": round(steps * cfg.batch_size / train_seconds, 1) if train_seconds > 0 else None,
        }


def train(config: Config, run_dir: str | Path, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) training as configured and write the run directory; returns the summary.

    With ``time_budget`` (and not resuming) the steps are first fitted to the time, counted from here.
    """
    RunDirectory(run_dir).prepare(resume)
    dataset = None
    if config.time_budget is not None and not resume:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise MeanTeacherError("--time works in one process (not torchrun): set --steps for a distributed run")
        deadline = time.perf_counter() + config.time_budget
        config = requested = resolve_image_size(config)
        dataset = load_data(config)
        config, timing = fit_to_time(config, dataset, deadline, Trainer)
        if progress:
            print(
                f"time budget {duration(config.time_budget)}: a step takes {timing.step:.3f} s, an evaluation {timing.evaluation:.1f} s "
                f"and a checkpoint {timing.checkpoint:.1f} s here, so the run takes {config.steps:,} steps"
                + (f", evaluating every {config.eval_every:,}" if config.eval_every is not None else ""),
                file=sys.stderr,
                flush=True,
            )
    trainer = Trainer(config, run_dir, resume=resume, progress=progress, dataset=dataset)
    if config.time_budget is not None and not resume:
        trainer.pacing.deadline, trainer.requested = deadline, requested
    world = trainer.world
    try:
        return trainer.run()
    finally:
        del trainer  # its DDP wrapper holds the process group, which must be gone before the group ends
        gc.collect()
        leave_world(world)
