"""Small models and configurations shared by the tests."""

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from meanteacher.config import Config
from meanteacher.models import ConvNet13

TINY = {
    "dataset": "digits",
    "labels": 50,
    "arch": "convnet13",
    "arch_options": {"width": 0.125, "pools": 1},
    "steps": 30,
    "batch_size": 32,
    "labeled_per_batch": 8,
    "consistency": 1.0,
    "consistency_type": "mse",
    "rampup_steps": 10,
    "rampdown_steps": 5,
    "ema_decay": 0.9,
    "ema_decay_rampup": 0.9,
    "translate": 1,
    "flip": False,
    "student_view": "weak",
    "eval_every": 10,
    "checkpoint_every": 10,
    "checkpoint_seconds": 0.0,
    "precision": "fp32",
}


def tiny_config(**overrides) -> Config:
    return Config(**{**TINY, **overrides})


class NaNAfter(nn.Module):
    """A ConvNet whose outputs turn into NaN after ``steps`` training forward passes."""

    def __init__(self, num_classes, in_channels, steps=12, **options):
        super().__init__()
        self.net = ConvNet13(num_classes, in_channels, **options)
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        self.steps = steps

    def forward(self, x):
        out = self.net(x)
        if self.training:
            self.calls += 1
            if self.calls > self.steps:
                out = out * float("nan")
        return out


def nan_after(num_classes, in_channels, **options):
    return NaNAfter(num_classes, in_channels, **options)


class Float64(nn.Module):
    """A network computing in float64: for tests of claims that are exact in real arithmetic.

    In float32, a tiny ConvNet trained with Adam is chaotic: a rounding difference of 1e-7 (another
    CPU kernel, a scalar given as a tensor) turns a near-zero gradient's sign, Adam turns that into a
    step of the full learning rate, and after 16 steps two runs that should agree differ by ~2e-3
    (measured under ATEN_CPU_CAPABILITY=avx2), as much as a real bug makes them differ. In float64
    the same rounding is 1e-16 and stays far below any bug.
    """

    def __init__(self, net):
        super().__init__()
        self.net = net.double()

    def forward(self, x):
        return self.net(x.double())


def convnet64(num_classes, in_channels, **options):
    return Float64(ConvNet13(num_classes, in_channels, **options))


def mlp(num_classes, in_channels, hidden=32):
    """A deterministic model without batch norm or dropout (for exact 1- vs 2-process comparisons)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 64, hidden), nn.Tanh(), nn.Linear(hidden, num_classes))


def mlp64(num_classes, in_channels, hidden=32):
    return Float64(mlp(num_classes, in_channels, hidden))


class HostReads(TorchDispatchMode):
    """Records every operation that makes the host wait for a tensor's value: ``item()`` and every
    implicit conversion to a Python number or bool (all are ``aten._local_scalar_dense``, also inside
    C++), operations whose output shape depends on tensor values (``nonzero``, boolean masks), and a
    Python number assigned through a tensor index (``x[indices] = True``): on a GPU PyTorch makes that
    value in host memory and copies it over, which CUDA-graph capture refuses. ``constants`` records the
    tensors made from Python data (``torch.tensor([...])``): on a GPU each is a copy from the host that
    waits for it."""

    VALUE_DEPENDENT = {
        "aten.nonzero",
        "aten.masked_select",
        "aten._unique2",
        "aten.unique_consecutive",
        "aten.unique_dim",
    }

    def __init__(self):
        super().__init__()
        self.reads: list[str] = []
        self.constants: list[str] = []
        self.paused = False
        self._python_numbers: dict[
            int, torch.Tensor
        ] = {}  # tensors made from a Python number, by id (kept, so no id is reused)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = str(func.overloadpacket)
        if not self.paused:
            boolean_index = name in ("aten.index", "aten.index_put", "aten.index_put_") and any(
                isinstance(i, torch.Tensor) and i.dtype == torch.bool
                for i in (args[1] if len(args) > 1 else ())
                if i is not None
            )
            if func is torch.ops.aten._local_scalar_dense.default or name in self.VALUE_DEPENDENT or boolean_index:
                self.reads.append(name)
            if name in ("aten.index_put", "aten.index_put_") and id(args[2]) in self._python_numbers:
                self.reads.append(f"{name} of a Python number")
        if name == "aten.lift_fresh" and not self.paused:
            self.constants.append(f"{name} {tuple(args[0].shape)}")
        result = func(*args, **kwargs)
        if name in ("aten.scalar_tensor", "aten.lift_fresh"):
            self._python_numbers[id(result)] = result
        return result


class Watched(nn.Module):
    """A slow ConvNet that keeps, at its second training forward pass (the second step of a supervised
    run), what the process had written to ``sys.stderr`` by then (``Watched.seen``)."""

    seen: list[str] = []

    def __init__(self, num_classes, in_channels, **options):
        super().__init__()
        self.net = ConvNet13(num_classes, in_channels, **options)
        self.calls = 0

    def forward(self, x):
        import sys
        import time

        if self.training:
            self.calls += 1
            time.sleep(0.5)
            if self.calls == 2:
                Watched.seen.append(sys.stderr.getvalue())
        return self.net(x)


def watched(num_classes, in_channels, **options):
    return Watched(num_classes, in_channels, **options)
