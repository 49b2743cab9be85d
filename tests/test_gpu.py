"""GPU-only checks of the fast step; skipped where no CUDA device is present (CI has none).

They run with the rest of the suite on a GPU machine (`make test`): the CUDA-graph step trains like
the eager one, a step never synchronises with the host, and a CUDA-graph run resumes.
"""

import pytest
import torch

from meanteacher.train import Trainer
from tests.helpers import tiny_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

STABLE = {"steps": 16, "batch_size": 128, "labeled_per_batch": -1, "eval_every": 8, "checkpoint_every": 8, "device": "cuda"}


@pytest.mark.parametrize("method", ["mean-teacher", "temporal-ensembling", "pi", "supervised"])
def test_cuda_graph_step_trains_like_the_eager_step(tmp_path, method):
    eager = Trainer(tiny_config(method=method, **STABLE), tmp_path / "eager", progress=False)
    graphed = Trainer(tiny_config(method=method, cuda_graphs=True, **STABLE), tmp_path / "graphed", progress=False)
    eager.run()
    graphed.run()
    assert graphed.optimize.graph is not None  # captured and replayed, not eager all along
    for model_a, model_b in zip(eager.method.evaluation_models().values(), graphed.method.evaluation_models().values()):
        for a, b in zip(model_a.parameters(), model_b.parameters()):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_step_does_not_synchronise_with_the_host(tmp_path, precision):
    trainer = Trainer(tiny_config(cuda_graphs=True, precision=precision, channels_last=True, **STABLE), tmp_path, progress=False)
    trainer.method.model.train()
    for step in range(5):  # warm-up, capture, first replays
        trainer.train_step(step)
    torch.cuda.set_sync_debug_mode("error")
    try:
        for step in range(5, 10):
            trainer.train_step(step)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_cuda_graph_run_resumes_to_the_uninterrupted_result(tmp_path):
    config = tiny_config(cuda_graphs=True, **STABLE)
    whole = Trainer(config, tmp_path / "whole", progress=False)
    whole.run()
    (tmp_path / "parts").mkdir()
    first = Trainer(config, tmp_path / "parts", progress=False)
    for step in range(8):
        first.train_step(step)
        first.step = step + 1
    first.save_checkpoint()
    resumed = Trainer(config, tmp_path / "parts", resume=True, progress=False)
    resumed.run()
    for a, b in zip(whole.method.ema.module.parameters(), resumed.method.ema.module.parameters()):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)
