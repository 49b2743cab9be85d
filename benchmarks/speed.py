"""Training-step speed of the four methods, the data side and the EMA update as fractions of a step,
and our Mean Teacher step against a re-creation of the reference recipe, all in one process.

    python -m benchmarks.speed [--data PATH] [--width 1.0] [--repeats 5] [--json FILE]
    python -m benchmarks.speed --part views [--width 0.25] [--json docs/bench/views.json]
    python -m benchmarks.speed --part precision [--width 0.25] [--json docs/bench/precision.json]

``--part views``: what the student's strong view and TensorBoard logging cost, next to a Mean Teacher
step with the run's automatic precision, alternating in rounds (median of the per-round ratios).

``--part precision``: a bf16 step against an fp32 step, supervised-only and Mean Teacher, with channels_last
(the CPU recipe's), alternating in rounds: what bf16 autocast buys, or costs, on this CPU.

The reference recipe (``reference_recipe.py``) is what the original code does per step: per-image
augmentation in DataLoader worker processes, separate student and teacher forward calls, a Python
loop of ``mul_().add_()`` for the EMA, fp32.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from meanteacher.config import Config
from meanteacher.data.sources import load_dataset
from meanteacher.inference import LoadedRun
from meanteacher.run.train import Trainer

from .common import SHARED_CIFAR, machine, markdown_table, median_seconds, today, write_result
from .reference_recipe import ReferenceRecipe

METHODS = ("supervised", "pi", "mean-teacher", "temporal-ensembling", "vat", "mean-teacher-vat")


def bench_config(data: str, method: str, precision: str, width: float, batch_size: int) -> Config:
    return Config(
        dataset=data,
        labels=4000,
        method=method,
        precision=precision,
        arch_options={"width": width},
        batch_size=batch_size,
        labeled_per_batch=-1,
        flip=True,
        steps=10**6,
        rampup_steps=0,
        device="cpu",
    )


def time_steps(trainer: Trainer, repeats: int, warmup: int = 2) -> float:
    return median_seconds(trainer.step, repeats, warmup)


def time_data_side(trainer: Trainer, repeats: int) -> float:
    step = iter(range(10**6))
    return median_seconds(lambda: trainer.batch(next(step)), max(repeats, 20), 2)


def time_ema(trainer: Trainer, repeats: int) -> float:
    return median_seconds(lambda: trainer.training_step.method.after_step(1000), max(repeats, 20), 2)


def measure(data: str, width: float, repeats: int, batch_size: int, precisions: tuple[str, ...]) -> dict:
    dataset = load_dataset(data)
    results: dict = {"machine": machine(), "date": today(), "width": width, "batch_size": batch_size, "steps": {}}
    with tempfile.TemporaryDirectory() as scratch:
        for precision in precisions:
            for method in METHODS:
                trainer = Trainer(
                    bench_config(data, method, precision, width, batch_size),
                    Path(scratch) / f"{method}-{precision}",
                    progress=False,
                    dataset=dataset,
                )
                trainer.training_step.method.model.train()
                seconds = time_steps(trainer, repeats)
                entry = {"step_s": seconds, "images_per_s": batch_size / seconds}
                if method == "mean-teacher":
                    entry["data_s"] = time_data_side(trainer, repeats)
                    entry["ema_s"] = time_ema(trainer, repeats)
                    if precision == "fp32":
                        entry["predict_images_per_s"] = predict_rate(trainer, dataset)
                results["steps"][f"{method}/{precision}"] = entry
                print(f"{method:>20} {precision}: {seconds * 1e3:8.1f} ms/step", flush=True)
        fast = bench_config(data, "mean-teacher", "bf16", width, batch_size)
        fast.channels_last = True
        contenders = {
            "fp32": Trainer(
                bench_config(data, "mean-teacher", "fp32", width, batch_size),
                Path(scratch) / "ours",
                progress=False,
                dataset=dataset,
            ),
            "bf16+channels_last": Trainer(fast, Path(scratch) / "fast", progress=False, dataset=dataset),
        }
        for trainer in contenders.values():
            trainer.training_step.method.model.train()
            time_steps(trainer, 1)
        reference = ReferenceRecipe(dataset, width, batch_size, workers=2)
        rounds = []
        for _ in range(repeats):  # alternate, so all see the same machine noise
            rounds.append([reference.time_steps(3)] + [time_steps(t, 3, warmup=0) for t in contenders.values()])
        reference.close()
    results["repeats"] = repeats
    results["reference_step_s"] = statistics.median(r[0] for r in rounds)
    results["versus_reference"] = {
        name: {
            "step_s": statistics.median(r[i + 1] for r in rounds),
            "speedup": statistics.median(r[0] / r[i + 1] for r in rounds),
        }
        for i, name in enumerate(contenders)
    }
    return results


def measure_views(data: str, width: float, repeats: int, batch_size: int) -> dict:
    """The strong view's extra time over the weak one (``trainer.batch``), and TensorBoard's time per
    logged record, each as a share of a weak Mean Teacher step, measured side by side in rounds."""
    from meanteacher.run.tensorboard import TensorBoardLog

    dataset = load_dataset(data)
    with tempfile.TemporaryDirectory() as scratch:
        trainers = {
            view: Trainer(
                Config(
                    dataset=data,
                    labels=4000,
                    arch_options={"width": width},
                    batch_size=batch_size,
                    steps=10**6,
                    student_view=view,
                    device="cpu",
                ),
                Path(scratch) / view,
                progress=False,
                dataset=dataset,
            )
            for view in ("weak", "strong")
        }
        weak, strong = trainers["weak"], trainers["strong"]
        for trainer in trainers.values():
            trainer.training_step.method.model.train()
            time_steps(trainer, 1)
        record = {"step": 1, **{k: float(v) for k, v in weak.step().items()}, **weak.evaluate()}
        events = TensorBoardLog(Path(scratch) / "events")
        step = iter(range(10**6))
        rounds = []
        for _ in range(repeats):
            step_s = time_steps(weak, 3, warmup=0)
            strong_step_s = time_steps(strong, 3, warmup=0)
            weak_batch = median_seconds(lambda: weak.batch(next(step)), 5, 1)
            strong_batch = median_seconds(lambda: strong.batch(next(step)), 5, 1)
            logging = median_seconds(lambda: events.scalars(record), 5, 1)
            rounds.append((step_s, strong_step_s, weak_batch, strong_batch, logging))
        events.close()
    median = lambda index: statistics.median(r[index] for r in rounds)  # noqa: E731
    return {
        "machine": machine(),
        "date": today(),
        "width": width,
        "batch_size": batch_size,
        "repeats": repeats,
        "precision": weak.config.precision,
        "step_s": median(0),
        "strong_step_s": median(1),
        "weak_batch_s": median(2),
        "strong_batch_s": median(3),
        "tensorboard_record_s": median(4),
        "strong_view_share": statistics.median((r[3] - r[2]) / r[0] for r in rounds),
        "strong_step_ratio": statistics.median(r[1] / r[0] for r in rounds),
        "tensorboard_share": statistics.median(r[4] / r[0] for r in rounds),
        "command": f"python -m benchmarks.speed --part views --width {width} --repeats {repeats}",
    }


def measure_precision(data: str, width: float, repeats: int, batch_size: int) -> dict:
    """Seconds of a bf16 and of an fp32 step for supervised-only and Mean Teacher, side by side in rounds of
    2 steps each; the median of the per-round ratios bf16 / fp32."""
    from meanteacher.hardware import cpu_has_native_bf16

    dataset = load_dataset(data)
    result: dict = {
        "machine": machine(),
        "date": today(),
        "width": width,
        "batch_size": batch_size,
        "repeats": repeats,
        "native_bf16": cpu_has_native_bf16(),
        "methods": {},
        "command": f"python -m benchmarks.speed --part precision --width {width} --repeats {repeats}",
    }
    with tempfile.TemporaryDirectory() as scratch:
        for method in ("supervised", "mean-teacher"):
            trainers = {}
            for precision in ("fp32", "bf16"):
                config = bench_config(data, method, precision, width, batch_size)
                config.channels_last = True
                trainers[precision] = Trainer(
                    config, Path(scratch) / f"{method}-{precision}", progress=False, dataset=dataset
                )
                trainers[precision].training_step.method.model.train()
                time_steps(trainers[precision], 1)
            rounds = [{p: time_steps(t, 2, warmup=0) for p, t in trainers.items()} for _ in range(repeats)]
            result["methods"][method] = {
                "fp32_step_s": statistics.median(r["fp32"] for r in rounds),
                "bf16_step_s": statistics.median(r["bf16"] for r in rounds),
                "bf16_over_fp32": statistics.median(r["bf16"] / r["fp32"] for r in rounds),
            }
            print(method, result["methods"][method], flush=True)
    return result


def precision_table(result: dict) -> str:
    """The bf16 and fp32 steps and their ratio, per method."""
    rows = [
        [
            method,
            f"{1e3 * entry['fp32_step_s']:.0f}",
            f"{1e3 * entry['bf16_step_s']:.0f}",
            f"{entry['bf16_over_fp32']:.1f}x",
        ]
        for method, entry in result["methods"].items()
    ]
    return markdown_table(["step", "fp32 ms", "bf16 ms", "bf16 / fp32 (median of rounds)"], rows)


def views_table(result: dict) -> str:
    """The strong view's and TensorBoard's cost next to the step."""
    rows = [
        ["Mean Teacher step (weak views)", f"{1e3 * result['step_s']:.1f}", "100"],
        [
            "Mean Teacher step (strong student view)",
            f"{1e3 * result['strong_step_s']:.1f}",
            f"{100 * result['strong_step_ratio']:.1f}",
        ],
        [
            "the batch's views, weak",
            f"{1e3 * result['weak_batch_s']:.2f}",
            f"{100 * result['weak_batch_s'] / result['step_s']:.2f}",
        ],
        [
            "the batch's views, strong student",
            f"{1e3 * result['strong_batch_s']:.2f}",
            f"{100 * result['strong_batch_s'] / result['step_s']:.2f}",
        ],
        [
            "strong view's extra time",
            f"{1e3 * (result['strong_batch_s'] - result['weak_batch_s']):.2f}",
            f"{100 * result['strong_view_share']:.2f}",
        ],
        [
            "TensorBoard, one logged record",
            f"{1e3 * result['tensorboard_record_s']:.2f}",
            f"{100 * result['tensorboard_share']:.3f}",
        ],
    ]
    return markdown_table(["what", "ms", "% of a weak step"], rows)


def predict_rate(trainer: Trainer, dataset) -> float:
    run = LoadedRun(
        trainer.config,
        dataset.classes,
        dataset.image_shape,
        trainer.feed.normalizer,
        {"student": trainer.training_step.model, "ema": trainer.training_step.method.ema.module},
    )
    images = dataset.test_images[:2000]
    start = time.perf_counter()
    run.predict(images)
    rate = len(images) / (time.perf_counter() - start)
    trainer.training_step.model.train()
    return rate


def table(results: dict) -> str:
    steps = results["steps"]
    rows = []
    for key, entry in steps.items():
        method, precision = key.split("/")
        supervised = steps[f"supervised/{precision}"]["step_s"]
        mean_teacher = steps[f"mean-teacher/{precision}"]["step_s"]
        rows.append(
            [
                method,
                precision,
                f"{1e3 * entry['step_s']:.0f}",
                f"{entry['images_per_s']:.0f}",
                f"{entry['step_s'] / supervised:.2f}",
                f"{entry['step_s'] / mean_teacher:.2f}",
            ]
        )
    text = markdown_table(
        ["method", "precision", "ms / step", "images / s", "step / supervised step", "step / Mean Teacher step"], rows
    )
    mt = steps["mean-teacher/fp32"]
    text += (
        f"\nMean Teacher, fp32: data side (sampling + two augmented views) {1e3 * mt['data_s']:.2f} ms = "
        f"{100 * mt['data_s'] / mt['step_s']:.1f}% of the step; EMA update {1e3 * mt['ema_s']:.2f} ms = "
        f"{100 * mt['ema_s'] / mt['step_s']:.2f}% of the step; predict {mt['predict_images_per_s']:.0f} images/s.\n"
    )
    text += (
        f"\nReference recipe (per-image augmentation in 2 DataLoader workers, separate forward calls, "
        f"per-parameter EMA loop, fp32): {1e3 * results['reference_step_s']:.0f} ms/step. Alternating with it "
        f"in rounds of 3 steps each (median of per-round ratios):\n\n"
    )
    rows = [
        [f"ours, {name}", f"{1e3 * entry['step_s']:.0f}", f"{entry['speedup']:.2f}x"]
        for name, entry in results["versus_reference"].items()
    ]
    return text + markdown_table(["Mean Teacher step", "ms / step", "faster than the reference recipe"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(SHARED_CIFAR) if SHARED_CIFAR.is_file() else "digits")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--json")
    parser.add_argument("--part", choices=("all", "views", "precision"), default="all")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    if args.part == "precision":
        results = measure_precision(args.data, args.width, args.repeats, args.batch_size)
        print(precision_table(results))
        if args.json:
            write_result(Path(args.json), results)
        return 0
    if args.part == "views":
        results = measure_views(args.data, args.width, args.repeats, args.batch_size)
        print(views_table(results))
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        return 0
    results = measure(args.data, args.width, args.repeats, args.batch_size, tuple(args.precisions.split(",")))
    print()
    print(f"{results['machine']}, {results['date']}, ConvNet-13 width {args.width}, batch {args.batch_size}")
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
