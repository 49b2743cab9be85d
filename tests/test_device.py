"""Device choice on a machine with CUDA, faked on the CPU: every CUDA device gets an index."""

import pytest
import torch

from meanteacher.errors import MeanTeacherError
from meanteacher.run.distributed import World
from meanteacher.run.setup import resolve_device
from meanteacher.run.train import Trainer
from tests.helpers import tiny_config


class ReachedSetDevice(Exception):
    """Raised by the fake ``torch.cuda.set_device``: the set-up got that far."""


@pytest.fixture
def fake_cuda(monkeypatch):
    """Two CUDA devices, the second current; ``set_device`` is checked as torch checks it, then stops."""
    chosen = []

    def set_device(device):
        chosen.append(torch.cuda._utils._get_device_index(device))  # torch's own check: needs an index
        raise ReachedSetDevice

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_device", set_device)
    return chosen


@pytest.mark.parametrize("name", ["cuda", "auto"])
def test_cuda_and_auto_resolve_to_the_current_device(fake_cuda, name):
    assert resolve_device(name) == torch.device("cuda", 1)


def test_a_torchrun_process_takes_its_local_rank(fake_cuda):
    world = World(rank=2, size=4, local_rank=0)
    assert resolve_device("cuda", world) == torch.device("cuda", 0)
    with pytest.raises(MeanTeacherError, match="under torchrun would put every process on one GPU"):
        resolve_device("cuda:1", world)  # every rank on GPU 1


def test_a_device_the_machine_lacks_is_one_line(fake_cuda):
    with pytest.raises(MeanTeacherError, match="'cuda:2' requested but this machine has 2 CUDA device"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("name", ["cuda", "auto"])
def test_the_trainer_sets_an_indexed_device(fake_cuda, tmp_path, name):
    with pytest.raises(ReachedSetDevice):
        Trainer(tiny_config(device=name), tmp_path, progress=False)
    assert fake_cuda == [1]


def test_no_cuda_is_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(MeanTeacherError, match="no CUDA device is available"):
        resolve_device("cuda")


@pytest.mark.parametrize("deterministic", [False, True])
def test_cudnn_autotunes_unless_determinism_is_asked_for(fake_cuda, monkeypatch, tmp_path, deterministic):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", deterministic)  # the opposite of what is expected
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", not deterministic)
    with pytest.raises(ReachedSetDevice):
        Trainer(tiny_config(device="cuda", deterministic=deterministic), tmp_path, progress=False)
    assert torch.backends.cudnn.benchmark is not deterministic
    assert torch.backends.cudnn.deterministic is deterministic
