"""How long a step takes on this machine for photos brought down to each image size, and for ConvNet-13
at each width: the evidence the defaults of a run on a CPU without a preset are chosen from (the size an
in-memory image folder is brought down to, ``auto.FOLDER_IMAGE_SIZE``, and the network's width,
``auto.CPU_WIDTH``).

    python -m benchmarks.image_size [--sizes 32 48 64 96] [--widths 0.25 0.5 1.0] [--json docs/bench/image_size.json]

Mean Teacher, batch 100, ConvNet-13, the run's automatic precision, on synthetic images of each size
(timing does not depend on pixel values); median of ``--repeats`` steps after 2 warm-up steps, all in
one process. The rule: a 10-minute run should take ``STEPS_WANTED`` steps: the 75 passes over the
labeled images from which Mean Teacher paid on CIFAR-10 (``auto.CONSISTENCY_PAYS_FROM_PASSES``), for
1,000 labels at 50 per batch of 100. First the sizes at width 0.25: the default size is the largest that
fits (the smallest if none does); then the widths at that size: the default width is the widest that
fits (the narrowest if none does).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

from meanteacher.config import Config
from meanteacher.config.auto import CONSISTENCY_PAYS_FROM_PASSES
from meanteacher.data.dataset import Dataset
from meanteacher.run.train import Trainer

from .common import machine, markdown_table, median_seconds, today

MINUTES = 10
STEPS_WANTED = CONSISTENCY_PAYS_FROM_PASSES * 1000 // 50


def synthetic(size: int, images: int = 1000) -> Dataset:
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (images, 3, size, size), dtype=torch.uint8, generator=generator)
    labels = torch.arange(images) % 10
    return Dataset(
        f"synthetic-{size}", pixels, labels, pixels[:100].clone(), labels[:100].clone(), [str(c) for c in range(10)]
    )


def step_seconds(size: int, width: float, repeats: int, scratch: Path) -> tuple[float, str]:
    config = Config(
        dataset="synthetic", labels=100, steps=10**6, arch_options={"width": width}, device="cpu", flip=True
    )
    trainer = Trainer(config, scratch / f"{size}-{width}", progress=False, dataset=synthetic(size))
    trainer.training_step.method.model.train()
    return median_seconds(trainer.step, repeats, warmup=2), trainer.config.precision


def largest_fitting(step_seconds: dict[str, float]) -> str:
    """The largest key (a size or a width) whose step lets ``STEPS_WANTED`` steps fit in ``MINUTES``
    minutes; the smallest if none does."""
    budget = MINUTES * 60 / STEPS_WANTED
    keys = sorted(step_seconds, key=float)
    return max((key for key in keys if step_seconds[key] <= budget), key=float, default=keys[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 48, 64, 96])
    parser.add_argument("--widths", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results: dict = {
        "machine": machine(),
        "date": today(),
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "steps_wanted": STEPS_WANTED,
        "minutes": MINUTES,
        "step_seconds": {},
    }

    def measure(size: int, width: float) -> float:
        if str(width) not in results["step_seconds"].get(str(size), {}):
            seconds, results["precision"] = step_seconds(size, width, args.repeats, Path(folder))
            results["step_seconds"].setdefault(str(size), {})[str(width)] = round(seconds, 4)
            print(f"{size:>4} px  width {width:<5} {seconds:.3f} s/step ({results['precision']})", flush=True)
        return results["step_seconds"][str(size)][str(width)]

    with tempfile.TemporaryDirectory() as folder:
        chosen_size = largest_fitting({str(size): measure(size, 0.25) for size in args.sizes})
        chosen_width = largest_fitting({str(width): measure(int(chosen_size), width) for width in args.widths})
    results["chosen"], results["chosen_width"] = int(chosen_size), float(chosen_width)
    results["command"] = " ".join(["python -m benchmarks.image_size", *(sys.argv[1:] if argv is None else argv)])
    print(f"chosen default image size: {results['chosen']} px, width {results['chosen_width']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def table(results: dict) -> str:
    """The step times, one row per size (a dash where a width was not measured at that size)."""
    widths = sorted({w for by_width in results["step_seconds"].values() for w in by_width}, key=float)
    rows = [
        [
            size,
            *(f"{by_width[w]:.3f}" if w in by_width else "–" for w in widths),
            f"{MINUTES * 60 / by_width['0.25']:,.0f}" if "0.25" in by_width else "–",
        ]
        for size, by_width in results["step_seconds"].items()
    ]
    return markdown_table(
        ["image size (px)", *(f"s/step, width {w}" for w in widths), f"steps in {MINUTES} min, width 0.25"], rows
    )


if __name__ == "__main__":
    raise SystemExit(main())
