"""examples/segmentation.py runs, and both of its methods learn to segment in a short version."""

import importlib.util
from pathlib import Path

import torch

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "segmentation.py"


def _example():
    spec = importlib.util.spec_from_file_location("segmentation_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_short_segmentation_example_learns():
    example = _example()
    images, masks = example.make_images(64, 32, torch.Generator().manual_seed(99))
    torch.manual_seed(0)
    untrained = example.mean_iou(example.EncoderDecoder(), images, masks)
    results = example.compare([0], steps=60, labeled=8, mask="confidence", unlabeled=200)
    assert set(results) == {"supervised", "mean-teacher"}
    for method, (iou,) in results.items():
        assert 0.0 <= iou <= 1.0
        assert iou > untrained + 0.1, (method, iou, untrained)
    assert example.main(["--seeds", "0", "--steps", "2", "--labeled", "4"]) == 0
