"""The training loop: one step at a time, with evaluation, checkpoints and logs at their cadence.

``train(config, run_dir)`` runs (or, with ``resume=True``, continues) one run and writes its run
directory (see ``run.rundir``).
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import torch

from ..config import Config
from ..config.checks import validate
from ..data.batch import NO_LABEL, Batch
from ..data.sampler import IndexBatch, mixed_seed
from ..data.sources import DataSource
from ..data.splits import write_label_file
from ..data.views import to_device
from ..errors import MeanTeacherError
from .budget import fit_run_to_time, refit
from .checkpointing import Checkpoints
from .distributed import any_true, average_float_buffers_, barrier, leave_world, rank_spread
from .evaluation import evaluate_feed
from .guard import DeadTeacherGuard
from .logbook import Logbook
from .pacing import Pacing
from .plan import plan_run
from .progress import Progress, plan_line
from .rundir import RunDirectory, check_architecture
from .setup import build_feed, build_training_step, open_world
from .summary import run_summary


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
        dataset: DataSource | None = None,
        requested: Config | None = None,
    ) -> None:
        validate(config)
        self.run_dir = RunDirectory(run_dir)
        self.world, self.device = open_world(config)
        self.show_progress = progress and self.world.is_main
        torch.manual_seed(config.seed)
        if config.tensorboard:
            from .tensorboard import summary_writer

            summary_writer()  # before anything is written: without the package, one line and no run directory
        if resume:
            check_architecture(self.run_dir.load_checkpoint(), config.arch, self.run_dir.checkpoint)
        cadence_is_automatic = config.eval_every is None
        self.plan = plan_run(config, self.device.type, dataset, requested)
        config, dataset = self.plan.config, self.plan.dataset
        self.feed, self.sampler = build_feed(self.plan, self.device, self.world)
        self.training_step = build_training_step(
            self.plan,
            len(dataset.train_labels) + self.feed.extra,
            self.device,
            self.world,
            warm=bool(config.init) and not resume,
        )
        self.training_step.method.hidden_labels = torch.cat(
            [dataset.train_labels, torch.full((self.feed.extra,), NO_LABEL, dtype=dataset.train_labels.dtype)]
        ).to(self.device)
        method = self.plan.method
        self.view_count, self.labeled_only = method.view_count, not method.uses_unlabeled
        self.generator = torch.Generator(device=self.device)
        self.guard = DeadTeacherGuard(config)
        self.logbook = Logbook(self.run_dir, dataset.classes, method.ema_display_name(), self.guard)
        self.pacing = Pacing(config.eval_every, cadence_is_automatic, self.world.distributed)
        shape = list(dataset.image_shape)
        identity = {"arch": config.arch, "classes": dataset.classes, "image_shape": shape, "seed": config.seed}
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

    @property
    def config(self) -> Config:
        """The run's configuration, every setting with its value (the plan's: a refit changes it)."""
        return self.plan.config

    @property
    def dataset(self) -> DataSource:
        return self.plan.dataset

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
        training.hyperparameters.set_step(step, training.optimizer)
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
            labeled = self.plan.split.labeled
            data = self.dataset
            write_label_file(
                run_dir.labels_file, data.train_ids, data.classes, labeled, self.plan.masked_labels[labeled]
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
                    cfg = refit(
                        self,
                        step,
                        pacing.trained_seconds() / (step - pacing.steps_started),
                        pacing.eval_seconds / max(pacing.evaluations, 1),
                    )
                    pacing.after_refit(step, cfg.steps)
                    progress.set_total(cfg.steps)
        finally:
            progress.close()
            self.logbook.close()
        last = run_dir.last_metrics()
        labels, steps_timed = len(self.plan.split.labeled), self.global_step - pacing.steps_started
        summary = run_summary(cfg, self.dataset.name, labels, self.global_step, last, pacing, steps_timed)
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
        results = evaluate_feed(models, self.feed, cfg.precision, cfg.channels_last, num_classes)
        if self.world.distributed:
            results["ema_rank_spread"] = rank_spread(self.training_step.method.ema.module, self.world)
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

    # ------------------------------------------------------------------ what the run says

    def _plan(self) -> str:
        data, split = self.dataset, self.plan.split
        per_class = torch.bincount(self.plan.masked_labels[split.labeled], minlength=data.num_classes).tolist()
        return plan_line(
            self.config,
            data.name,
            per_class,
            len(split.unlabeled) - len(split.labeled),
            data.pile_size,
            self.sampler.labeled_per_batch,
            self.config.steps - self.global_step,
            self.run_dir.path,
        )


def train(config: Config, run_dir: str | Path, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) training as configured and write the run directory; returns the summary.

    With ``time_budget`` (and not resuming) the steps are first fitted to the time, counted from here.
    """
    RunDirectory(run_dir).prepare(resume)
    timed = fit_run_to_time(config, Trainer, progress) if config.time_budget is not None and not resume else None
    if timed:
        trainer = Trainer(timed.config, run_dir, resume, progress, timed.dataset, timed.requested)
        trainer.pacing.deadline = timed.deadline
    else:
        trainer = Trainer(config, run_dir, resume=resume, progress=progress)
    world = trainer.world
    try:
        return trainer.run()
    finally:
        del trainer  # its DDP wrapper holds the process group, which must be gone before the group ends
        gc.collect()
        leave_world(world)
