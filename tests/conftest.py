from pathlib import Path

import pytest

SHARED_CIFAR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-jpeg.tar.gz"


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Each test gets its own decode cache, so none sees another's files."""
    monkeypatch.setenv("MEANTEACHER_CACHE", str(tmp_path / "cache"))
    yield


@pytest.fixture(scope="session")
def shared_cifar():
    if not SHARED_CIFAR.is_file():
        pytest.skip(f"{SHARED_CIFAR} not present")
    return SHARED_CIFAR
