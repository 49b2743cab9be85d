"""A run's checkpoints: when one is due, what it holds (everything a killed run needs to go on bit for
bit: the student, the method with its EMA and per-example state, the optimizer, the normaliser, the logs
not yet recorded and the run's clock), and reading it back."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import MeanTeacherError
from ..teacher import unwrap
from .distributed import World
from .logbook import Logbook
from .pacing import Pacing
from .rundir import RunDirectory
from .setup import TrainingStep


class Checkpoints:
    """The checkpoints of one run: ``identity`` (architecture, classes, image shape, seed) goes into each,
    beside the state of the ``training_step``, the ``normalizer``, the ``logbook`` and the ``pacing``.
    The main process writes them; every process takes the same decision on when."""

    def __init__(
        self,
        run_dir: RunDirectory,
        world: World,
        device: torch.device,
        every: int,
        seconds: float,
        identity: dict[str, Any],
        training_step: TrainingStep,
        normalizer: Any,
        logbook: Logbook,
        pacing: Pacing,
    ) -> None:
        self.run_dir, self.world, self.device, self.every, self.seconds = run_dir, world, device, every, seconds
        self.identity, self.training_step, self.normalizer = identity, training_step, normalizer
        self.logbook, self.pacing = logbook, pacing

    def due(self, step: int, steps: int) -> bool:
        """At the last step; else every ``every`` steps once ``seconds`` have passed since the last one (or
        the start), as the main process's clock says."""
        if step == steps:
            return True
        if step % self.every:
            return False
        due = torch.tensor(self.pacing.since_checkpoint() >= self.seconds, device=self.device)
        if self.world.distributed:
            torch.distributed.broadcast(due, src=0)
        return bool(due)

    def save(self, step: int) -> None:
        """Write ``checkpoint.pt`` at ``step`` (steps taken) atomically, on the main process."""
        if not self.world.is_main:
            return
        training, pacing = self.training_step, self.pacing
        self.run_dir.save_checkpoint(
            {
                "arch": self.identity["arch"],
                "classes": self.identity["classes"],
                "image_shape": self.identity["image_shape"],
                "step": step,
                "model": unwrap(training.model).state_dict(),
                "method": training.method.state_dict(),
                "optimizer": training.optimizer.state_dict(),
                "normalizer": self.normalizer.state_dict(),
                "seed": self.identity["seed"],
                **self.logbook.state_dict(),
                "elapsed": pacing.elapsed,
                "eval_seconds": pacing.eval_seconds,
                "checkpoint_seconds": pacing.checkpoint_seconds,
            }
        )

    def load(self) -> int:
        """Restore the run from its checkpoint (keeping this run's own learning rate and betas, tensors or
        floats); returns the steps it had taken. The metrics logged after it are dropped."""
        state = self.run_dir.load_checkpoint()
        training, pacing = self.training_step, self.pacing
        optimizer = training.optimizer
        try:
            unwrap(training.model).load_state_dict(state["model"])
            training.method.load_state_dict(state["method"])
            own = [{key: value for key, value in group.items() if key != "params"} for group in optimizer.param_groups]
            optimizer.load_state_dict(state["optimizer"])
            for group, settings in zip(optimizer.param_groups, own):
                group.update(settings)
        except (RuntimeError, KeyError, ValueError) as error:
            raise MeanTeacherError(
                f"{self.run_dir.checkpoint}: does not fit this run's model ({str(error).splitlines()[0]})"
            ) from None
        self.logbook.load_state_dict(state)
        pacing.elapsed, pacing.eval_seconds = float(state["elapsed"]), float(state["eval_seconds"])
        pacing.checkpoint_seconds = float(state["checkpoint_seconds"])
        step = int(state["step"])
        if self.world.is_main:
            self.run_dir.truncate_metrics(step)
        return step
