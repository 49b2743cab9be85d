"""What a larger unlabeled pile buys: the CIFAR-10 analogue of the paper's Table 3 (SVHN with 0, 100k and
500k extra images), on the shared CIFAR-10 JPEGs at the CPU recipe's budget (the ``cifar10-cpu-1000``
preset: 1500 steps, ConvNet-13 at width 0.25, bf16), as a user with real data runs it.

Each label set (``--seeds``) keeps 100 training images per class as class folders; the pile is the first
0, 2,000, 10,000 or 49,000 of the other training images in the label set's own shuffled order, given
with ``--unlabeled`` as a text file of paths, and beside them an off-topic pile: 10,000 images of
``OFF_TOPIC_CLASSES`` only. The test set is the standard 10,000 images (``--test-data``). Mean Teacher
runs with the preset's recipe as it runs by default (the paper's weak noise); supervised-only ignores the
pile and runs once per label set. Label sets are trained one after the other, so that every finished
one is paired. ``decode`` times reading the 49,000-image pile on one core and states its memory.

    python -m benchmarks.pile [--phase table|decode|report] [--seeds 0 1 2] [--workers 2] [--json docs/bench/pile.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import tarfile
import time
from pathlib import Path
from typing import Any

import torch

from meanteacher.config import apply_settings
from meanteacher.config.toml import load_preset
from meanteacher.report import mean_std, plot_comparison, pyplot, save_figure
from meanteacher.run.rundir import read_metrics

from .common import SHARED_CIFAR, machine, paired_gain, today, write_result
from .runner import Job, finished, run_jobs

OUT = "runs/pile"
PILE_SIZES = (0, 2_000, 10_000, 49_000)
OFF_TOPIC_CLASSES = ("airplane", "automobile", "bird", "cat", "deer")
OFF_TOPIC_SIZE = 10_000
OFF_TOPIC = f"offtopic-{OFF_TOPIC_SIZE}"
LABELED_PER_CLASS = 100
EVALUATIONS = 10
FIGURE = Path(__file__).resolve().parents[1] / "docs" / "pile-size.png"
CURVES = Path(__file__).resolve().parents[1] / "docs" / "pile-curves.png"


def extracted(out: Path) -> Path:
    """The shared archive's images as files under ``out`` (extracted once)."""
    root = out / "cifar10-jpeg"
    if not (root / ".complete").is_file():
        with tarfile.open(SHARED_CIFAR) as archive:
            archive.extractall(root, filter="data")
        (root / ".complete").touch()
    return next(p.parent for p in root.rglob("train") if p.is_dir() and (p.parent / "test").is_dir())


def label_set(out: Path, seed: int) -> dict[str, Path]:
    """Seed ``seed``'s class folders of labeled images (links to the extracted files) and its pile lists:
    ``labeled``, ``test``, and ``pile-N`` / ``OFF_TOPIC`` text files of image paths."""
    data = extracted(out)
    folder = out / "data" / f"s{seed}"
    folder, data = folder.resolve(), data.resolve()
    paths = {"labeled": folder / "labeled", "test": data / "test"}
    paths |= {f"pile-{size}": folder / f"pile-{size}.txt" for size in PILE_SIZES if size}
    paths[OFF_TOPIC] = folder / f"{OFF_TOPIC}.txt"
    if (folder / ".complete").is_file():
        return paths
    generator = torch.Generator().manual_seed(seed)
    rest = []
    for class_folder in sorted(p for p in (data / "train").iterdir() if p.is_dir()):
        files = sorted(class_folder.iterdir())
        order = torch.randperm(len(files), generator=generator).tolist()
        (paths["labeled"] / class_folder.name).mkdir(parents=True, exist_ok=True)
        for index in order[:LABELED_PER_CLASS]:
            link = paths["labeled"] / class_folder.name / files[index].name
            if not link.is_symlink():
                link.symlink_to(files[index].resolve())
        rest += [files[index].resolve() for index in order[LABELED_PER_CLASS:]]
    rest = [rest[i] for i in torch.randperm(len(rest), generator=generator).tolist()]
    for size in PILE_SIZES:
        if size:
            paths[f"pile-{size}"].write_text("".join(f"{p}\n" for p in rest[:size]))
    off_topic = [p for p in rest if p.parent.name in OFF_TOPIC_CLASSES][:OFF_TOPIC_SIZE]
    paths[OFF_TOPIC].write_text("".join(f"{p}\n" for p in off_topic))
    (folder / ".complete").touch()
    return paths


ROWS = ("supervised", *(f"pile-{size}" for size in PILE_SIZES), OFF_TOPIC)
"""The rows of the table: supervised-only, Mean Teacher with each pile, and with the off-topic pile."""


def job(out: Path, row: str, seed: int) -> Job:
    """One run of the CPU recipe on seed ``seed``'s class folders with ``row``'s pile."""
    paths = label_set(out, seed)
    base = load_preset("cifar10-cpu-1000")
    settings: dict[str, Any] = {
        "dataset": str(paths["labeled"]),
        "test_data": str(paths["test"]),
        "labels": 0,
        "validation_per_class": 0,
        "seed": seed,
        "eval_every": base.steps // EVALUATIONS,
        "method": "supervised" if row == "supervised" else "mean-teacher",
    }
    if row in paths:
        settings["unlabeled"] = [str(paths[row])]
    return Job(f"{row}-s{seed}", apply_settings(base, settings, "pile benchmark"), {"row": row, "seed": seed})


def pile_size(row: str) -> int:
    return 0 if row == "supervised" else int(row.split("-")[1])


def _final_error(run: Path) -> float:
    return 100 * [r for r in read_metrics(run / "metrics.jsonl") if "ema_error" in r][-1]["ema_error"]


def report(out: Path, seeds: list[int]) -> dict[str, Any]:
    """Per row: the EMA test error over the finished label sets, and the paired gain over supervised-only
    (its error minus the row's: positive, the pile paid)."""
    done = {name for name in finished([job(out, row, seed) for seed in seeds for row in ROWS], out)}
    table: dict[str, Any] = {}
    supervised = {seed: _final_error(out / f"supervised-s{seed}") for seed in seeds if f"supervised-s{seed}" in done}
    for row in ROWS:
        errors = {seed: _final_error(out / f"{row}-s{seed}") for seed in seeds if f"{row}-s{seed}" in done}
        if not errors:
            continue
        entry: dict[str, Any] = {
            "pile": pile_size(row),
            "error": mean_std(list(errors.values())),
            "per_label_set": errors,
        }
        gain = paired_gain(supervised, errors)
        if row != "supervised" and gain:
            entry["gain_over_supervised"] = gain
        table[row] = entry
    return table


def plot(table: dict[str, Any], path: Path) -> None:
    """The paired gain over supervised-only against the pile's size (the off-topic pile as its own mark)."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    on_topic = [
        (entry["pile"], *entry["gain_over_supervised"]["gain"])
        for row, entry in table.items()
        if row.startswith("pile-") and "gain_over_supervised" in entry
    ]
    if on_topic:
        sizes, gains, stds = zip(*on_topic)
        axis.errorbar(
            [max(s, 500) for s in sizes],
            gains,
            yerr=stds,
            marker="o",
            capsize=3,
            label="Mean Teacher, pile of the same classes",
        )
    if "gain_over_supervised" in table.get(OFF_TOPIC, {}):
        gain, std = table[OFF_TOPIC]["gain_over_supervised"]["gain"]
        axis.errorbar(
            [OFF_TOPIC_SIZE],
            [gain],
            yerr=[std],
            marker="s",
            color="C3",
            capsize=3,
            label=f"off-topic pile ({len(OFF_TOPIC_CLASSES)} classes)",
        )
    axis.axhline(0, color="grey", linewidth=1)
    axis.set_xscale("log")
    axis.set(
        xlabel="unlabeled images in the pile (0 drawn at 500)",
        ylabel="test error points below supervised-only",
        title="CIFAR-10, 1000 labels, 1500 steps: what the pile buys",
    )
    axis.grid(alpha=0.3)
    axis.legend()
    save_figure(figure, path)


def decode_rate(out: Path) -> dict[str, Any]:
    """Seconds and memory to read the largest pile once, uncached, on one core."""
    from meanteacher.data.pile import load_pile

    torch.set_num_threads(1)
    pile_list = label_set(out, 0)[f"pile-{max(PILE_SIZES)}"]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    pile = load_pile([pile_list], (3, 32, 32), use_cache=False)
    seconds = time.perf_counter() - start
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    images = len(pile["ids"])
    return {
        "images": images,
        "seconds": round(seconds, 1),
        "per_second": round(images / seconds),
        "tensor_mib": round(pile["images"].numel() / 2**20, 1),
        "peak_memory_growth_mib": round(grown / 1024, 1),
        "image_shape": [3, 32, 32],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=OUT)
    parser.add_argument("--phase", choices=("table", "decode", "report"), default="table")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", help="write the table (and the decode figures) here")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    previous = json.loads(Path(args.json).read_text()) if args.json and Path(args.json).is_file() else {}
    decode = previous.get("decode")
    if args.phase == "decode":
        decode = decode_rate(out) | {
            "machine": machine(),
            "date": today(),
            "command": "python -m benchmarks.pile --phase decode",
        }
        print(json.dumps(decode, indent=2))
    elif args.phase == "table":
        for seed in args.seeds:  # one label set at a time: every finished one is paired
            run_jobs([job(out, row, seed) for row in ROWS], out, args.workers)
    table = report(out, args.seeds)
    for row, entry in table.items():
        print(row, entry["error"], entry.get("gain_over_supervised", {}).get("gain"))
    if table:
        plot(table, FIGURE)
        groups = {row: [out / f"{row}-s{seed}" for seed in entry["per_label_set"]] for row, entry in table.items()}
        plot_comparison(groups, CURVES, "CIFAR-10, 1000 labels, 1500 steps: test error by pile")
    if args.json:
        write_result(
            Path(args.json),
            {
                "machine": machine(),
                "date": today(),
                "table": table,
                "decode": decode,
                "command": f"python -m benchmarks.pile --seeds {' '.join(map(str, args.seeds))}",
            },
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
