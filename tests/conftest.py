import os
from pathlib import Path

import pytest

from meanteacher.hardware import NATIVE_BF16_VARIABLE

SHARED_CIFAR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-jpeg.tar.gz"

SLOWEST_FIRST = (
    "test_regression.py",
    "test_own_data.py",
    "test_train.py",
    "test_gpu_check.py",
    "test_capture_safety.py",
    "test_distributed.py",
)
"""The test files that take longest (``pytest --durations``), started first, so that the processes that run
files side by side (``make test``) finish together rather than one of them starting a long file last."""


def pytest_collection_modifyitems(items):
    order = {name: rank for rank, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: order.get(item.path.name, len(SLOWEST_FIRST)))


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Each test gets its own decode cache, so none sees another's files."""
    monkeypatch.setenv("MEANTEACHER_CACHE", str(tmp_path / "cache"))
    yield


@pytest.fixture(autouse=True)
def pinned_processor(monkeypatch):
    """Automatic settings that read the processor see the same one on every machine: a CPU without bf16
    in hardware, unless the suite is run with ``MEANTEACHER_NATIVE_BF16`` set (``make test-kernels`` runs
    the sensitive tests with it at 1). Subprocesses inherit the pin."""
    if os.environ.get(NATIVE_BF16_VARIABLE) not in ("0", "1"):
        monkeypatch.setenv(NATIVE_BF16_VARIABLE, "0")
    yield


@pytest.fixture(scope="session")
def shared_cifar():
    if not SHARED_CIFAR.is_file():
        pytest.skip(f"{SHARED_CIFAR} not present")
    return SHARED_CIFAR
