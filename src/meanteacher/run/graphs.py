"""CUDA-graph capture of a whole training step: forward, backward, optimizer step and EMA update.

At batch 100 the paper's ConvNet launches a few hundred small kernels per step, and on a fast GPU
the launches, not the arithmetic, set the pace. Replaying a captured ``torch.cuda.CUDAGraph``
launches them all at once. What the captured step needs (and what the methods, ``EMATeacher`` and
``StepHyperparameters`` provide): no host synchronisation and no Python decision on a tensor's
value, inputs read from fixed buffers, and per-step values (learning rate, Adam betas, EMA decay,
consistency weight) read from 0-dim device tensors that are updated in place between replays.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from ..data.batch import Batch

StepFunction = Callable[[Batch], dict[str, torch.Tensor]]


def _tensor_fields(batch: Batch) -> dict[str, torch.Tensor]:
    return {
        f.name: getattr(batch, f.name)
        for f in dataclasses.fields(batch)
        if isinstance(getattr(batch, f.name), torch.Tensor)
    }


class GraphedStep:
    """Runs ``step_fn(batch)`` eagerly for its first ``warmup`` calls (on a side stream, as CUDA
    graphs require), then captures one call in a CUDA graph and replays that graph on every later call.

    Every call is a real training step: warm-up calls train too, and capturing is followed by a
    replay. Each call copies the batch into the static buffers the graph reads, so batches must keep
    one shape. The returned logs are the graph's static outputs, overwritten by the next call: read
    or accumulate them before then.
    """

    def __init__(self, step_fn: StepFunction, warmup: int = 3) -> None:
        self.step_fn = step_fn
        self.warmup = warmup
        self.calls = 0
        self.static_batch: Batch | None = None
        self.static_logs: dict[str, torch.Tensor] = {}
        self.graph: torch.cuda.CUDAGraph | None = None

    def load_batch(self, batch: Batch) -> Batch:
        """Copy ``batch`` into the static buffers (made from the first batch) and return them."""
        if self.static_batch is None:
            self.static_batch = dataclasses.replace(batch, **{k: v.clone() for k, v in _tensor_fields(batch).items()})
            return self.static_batch
        for name, tensor in _tensor_fields(batch).items():
            target = getattr(self.static_batch, name)
            if target is None or target.shape != tensor.shape:
                raise ValueError(
                    f"batch.{name} changed shape from {None if target is None else tuple(target.shape)} to "
                    f"{tuple(tensor.shape)}; a captured step needs one batch shape"
                )
            target.copy_(tensor, non_blocking=True)
        return self.static_batch

    def __call__(self, batch: Batch) -> dict[str, torch.Tensor]:
        static = self.load_batch(batch)
        if self.calls < self.warmup:
            self.calls += 1
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                logs = self.step_fn(static)
            torch.cuda.current_stream().wait_stream(side)
            return logs
        if self.graph is None:
            self.graph = torch.cuda.CUDAGraph()
            # thread_local: DataLoader threads (streamed data) may keep using CUDA during the capture
            with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
                self.static_logs = self.step_fn(static)
        self.graph.replay()
        return self.static_logs
