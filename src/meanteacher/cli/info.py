"""The commands for looking around: the presets, what a dataset path holds, and the demo."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..config.toml import list_presets


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """The parsers of presets, demo and data."""
    presets = commands.add_parser("presets", help="list the presets")
    presets.set_defaults(handler=command_presets)
    demo = commands.add_parser("demo", help="supervised-only vs Mean Teacher on the built-in digits, side by side")
    demo.add_argument("--out", help="folder for the demo's runs, table and plot")
    demo.add_argument("--steps", type=int, help="training steps per method (default: the demo preset's)")
    demo.add_argument("--quiet", action="store_true")
    demo.set_defaults(handler=command_demo)
    data = commands.add_parser("data", help="show what a dataset path holds")
    data.add_argument("path")
    data.add_argument("--test-data")
    data.add_argument("--data-format", default="auto", help="as for train")
    data.add_argument("--extra", action="store_true", help="also load SVHN's extra set")
    data.add_argument("--unlabeled", action="append", metavar="PATH", help="also read this unlabeled pile (repeatable)")
    data.add_argument("--json", action="store_true")
    data.set_defaults(handler=command_data)


def command_presets(args: argparse.Namespace) -> int:
    presets = list_presets()
    width = max(map(len, presets))
    for name, description in presets.items():
        print(f"{name:<{width}}  {description}")
    return 0


def command_data(args: argparse.Namespace) -> int:
    from ..data.sources import load_dataset

    summary = load_dataset(
        args.path, args.test_data, extra=args.extra, unlabeled=args.unlabeled or (), data_format=args.data_format
    ).summary()
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(
        f"{summary['name']} ({summary['format']}): {summary['train']} train, {summary['test']} test"
        + (f", {summary['extra']} extra" if summary["extra"] else "")
        + (f", {summary['unlabeled']} unlabeled (the pile)" if summary["unlabeled"] else "")
        + f" images of {'x'.join(map(str, summary['image_shape'][1:]))} pixels, {summary['channels']} channel(s), "
        f"{len(summary['classes'])} classes"
    )
    width = max(len(c) for c in summary["classes"])
    for name in summary["classes"]:
        print(
            f"  {name:<{width}}  train {summary['train_per_class'][name]:>6}  test {summary['test_per_class'][name]:>6}"
        )
    return 0


def command_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    out = Path(args.out) if args.out else Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    run_demo(out, steps=args.steps, progress=not args.quiet)
    return 0
