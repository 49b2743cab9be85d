"""CapturableAdam: torch's Adam with lr and betas read from 0-dim device tensors and no host read."""

import copy
import sys

import pytest
import torch

from meanteacher.optim import CapturableAdam
from tests.helpers import HostReads


def _parameters(seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.nn.Parameter(torch.randn(shape, dtype=torch.float64, generator=generator))
        for shape in ((5, 3), (3,), (2, 2, 2))
    ]


def _gradients(parameters, step):
    generator = torch.Generator().manual_seed(1000 + step)
    for p in parameters:
        p.grad = torch.randn(p.shape, dtype=torch.float64, generator=generator)


def _step_both(optimizer, ours, torch_adam, reference, step):
    """One step of each optimizer on the same gradients; the parameters must stay equal."""
    _gradients(ours, step)
    _gradients(reference, step)
    optimizer.step()
    torch_adam.step()
    for a, b in zip(ours, reference):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0.0)


@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_equals_torch_adam_step_for_step_while_lr_and_betas_change(weight_decay):
    ours, reference = _parameters(), _parameters()
    lr, beta1, beta2 = (torch.tensor(v, dtype=torch.float64) for v in (0.01, 0.9, 0.99))
    optimizer = CapturableAdam(ours, lr, beta1, beta2, eps=1e-8, weight_decay=weight_decay)
    torch_adam = torch.optim.Adam(reference, lr=0.01, betas=(0.9, 0.99), eps=1e-8, weight_decay=weight_decay)
    for step in range(40):
        values = (0.01 * (1 + step) / 40, 0.9 - 0.01 * step, 0.99 + 0.0002 * step)  # every step its own values
        for tensor, value in zip((lr, beta1, beta2), values):
            tensor.fill_(value)
        torch_adam.param_groups[0]["lr"] = values[0]
        torch_adam.param_groups[0]["betas"] = values[1:]
        _step_both(optimizer, ours, torch_adam, reference, step)
    moved = max(float((a.detach() - b.detach()).abs().max()) for a, b in zip(ours, _parameters()))
    assert moved > 0.05  # the comparison is over parameters that did move


def test_one_step_reads_nothing_on_the_host():
    parameters = _parameters()
    lr, beta1, beta2 = (torch.tensor(v, dtype=torch.float64) for v in (0.01, 0.9, 0.99))
    optimizer = CapturableAdam(parameters, lr, beta1, beta2, weight_decay=1e-4)
    for step in range(2):  # the first step creates the state, the second runs on it
        _gradients(parameters, step)
        with HostReads() as guard:
            optimizer.step()
        assert guard.reads == []


def test_the_guard_catches_torch_capturable_adam_reading_tensor_betas(monkeypatch):
    # torch refuses capturable=True on CPU tensors by a device check alone; lifted here, its foreach
    # update runs on the CPU and reads the tensor betas on the host, which capture would refuse.
    monkeypatch.setattr(
        sys.modules["torch.optim.adam"], "_get_capturable_supported_devices", lambda supports_xla=True: ["cpu"]
    )
    parameters = _parameters()
    lr, beta1, beta2 = (torch.tensor(v, dtype=torch.float64) for v in (0.01, 0.9, 0.99))
    optimizer = torch.optim.Adam(parameters, lr=lr, betas=(beta1, beta2), capturable=True, foreach=True)
    _gradients(parameters, 0)
    with HostReads() as guard:
        optimizer.step()
    assert "aten._local_scalar_dense" in guard.reads


def test_state_moves_between_torch_adam_and_capturable_adam():
    lr, beta1, beta2 = (torch.tensor(v, dtype=torch.float64) for v in (0.01, 0.9, 0.99))
    ours, reference = _parameters(), _parameters()
    torch_adam = torch.optim.Adam(reference, lr=0.01, betas=(0.9, 0.99))
    for step in range(3):
        _gradients(reference, step)
        torch_adam.step()
    with torch.no_grad():
        for a, b in zip(ours, reference):
            a.copy_(b)
    optimizer = CapturableAdam(ours, lr, beta1, beta2)
    optimizer.load_state_dict(copy.deepcopy(torch_adam.state_dict()))  # as from a checkpoint file
    assert optimizer.param_groups[0]["lr"] is lr  # its own tensors, not the loaded floats
    for step in range(3, 6):
        _step_both(optimizer, ours, torch_adam, reference, step)
    back = torch.optim.Adam(_parameters(), lr=0.01, betas=(0.9, 0.99))
    back.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    assert float(back.state[back.param_groups[0]["params"][0]]["step"]) == 6


def test_refuses_float_hyperparameters():
    with pytest.raises(ValueError, match="lr as a 0-dim tensor"):
        CapturableAdam(_parameters(), 0.01, torch.tensor(0.9), torch.tensor(0.99))
