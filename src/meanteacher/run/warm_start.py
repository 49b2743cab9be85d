"""A warm start (``--init``): the student and the teacher begin from a finished run's EMA network or from
a saved ``state_dict`` of the same architecture, instead of from random weights.

The paper's authors' first rule of thumb: train supervised-only until it works, then add Mean Teacher;
``meanteacher train --method supervised ...`` followed by ``meanteacher train --init RUN_DIR ...`` does that.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import MeanTeacherError
from .rundir import load_checkpoint, read_tensors


def initial_weights(source: str | Path) -> dict[str, torch.Tensor]:
    """The weights ``source`` holds: a run directory's (or its checkpoint's) EMA network, or a file of a
    ``state_dict`` (``meanteacher export`` writes one), read with ``torch.load(weights_only=True)``."""
    path = Path(source)
    if path.is_dir():
        path = path / "checkpoint.pt"
        if not path.is_file():
            raise MeanTeacherError(f"--init {source}: a run directory with no checkpoint.pt")
    if not path.is_file():
        raise MeanTeacherError(f"--init {source}: no such run directory or weights file")
    state = read_tensors(path, f"--init {source}: not a readable weights file")
    if isinstance(state, dict) and "format" in state:
        state = load_checkpoint(path)["method"]["ema"]["module"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MeanTeacherError(f"--init {source}: holds no state_dict (names of parameters and buffers to tensors)")
    return state


def warm_start(model: nn.Module, source: str | Path) -> None:
    """Load ``source`` (see ``initial_weights``) into ``model``; one line naming the first parameter or
    buffer that is missing, extra or of another shape."""
    state = initial_weights(source)
    own = model.state_dict()
    for name, tensor in own.items():
        if name not in state:
            raise MeanTeacherError(
                f"--init {source}: has no {name!r} (shape {tuple(tensor.shape)}): another architecture?"
            )
        if state[name].shape != tensor.shape:
            raise MeanTeacherError(
                f"--init {source}: {name!r} has shape {tuple(state[name].shape)} there and "
                f"{tuple(tensor.shape)} here (another width, class count or architecture?)"
            )
    extra = next((name for name in state if name not in own), None)
    if extra is not None:
        raise MeanTeacherError(
            f"--init {source}: {extra!r} is not in this run's {type(model).__name__}: another architecture?"
        )
    model.load_state_dict(state)
