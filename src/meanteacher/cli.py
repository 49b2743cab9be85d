"""The ``meanteacher`` command: train, evaluate, predict, export, presets, report, demo, data."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from .config import Config, apply_settings, list_presets, load_preset, parse_set_options
from .data.formats import BUILT_IN as BUILT_IN_FORMATS
from .errors import MeanTeacherError
from .methods import METHODS
from .report import ema_name
from .run.budget import parse_duration
from .suggest import DEFAULT_STRATEGY, STRATEGIES

EXIT_USAGE = 2


def _train_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "train",
        help="train a model (from a preset and/or flags)",
        description="Train a model. Without a preset, schedules follow --steps: the consistency weight and learning "
        "rate ramp up over the first 27% of the run (Adam's beta2 and the EMA decay switch there) and the learning "
        "rate ramps down over the last 17% (the paper's 40k and 25k of 150k steps); set any of them with --set, "
        "e.g. --set rampup_steps=5000. Half of each batch is labeled, three quarters when the run makes under 50 passes "
        "over the labeled images at half; the line at the start of a run says when its passes are fewer than Mean Teacher "
        "needed on CIFAR-10 (about 75). A preset keeps the paper's exact values. The run's config.toml records the "
        "numbers used.",
    )
    parser.add_argument("--preset", help="start from a named preset (see `meanteacher presets`)")
    parser.add_argument(
        "--data", dest="dataset", help="dataset: 'digits', a CIFAR/SVHN/idx folder, an image folder or archive"
    )
    parser.add_argument("--test-data", help="separate test folder (class sub-folders) for an image-folder dataset")
    parser.add_argument(
        "--data-format",
        help="how --data is read: auto (default: the format that recognises it), "
        + ", ".join(f.name for f in BUILT_IN_FORMATS)
        + ", or package.module:Class (a DataFormat of your own)",
    )
    parser.add_argument(
        "--labels", type=int, help="labeled examples, spread as evenly over the classes as they allow (0: all)"
    )
    parser.add_argument("--label-file", help="file of 'image-id label' lines naming the labeled examples")
    parser.add_argument(
        "--unlabeled",
        action="append",
        metavar="PATH",
        help="a pile of unlabeled images (repeatable): a folder "
        "of any depth, an archive, or a text file of image paths; its images join the unlabeled stream, "
        "as does an unlabeled/ folder beside the class folders",
    )
    parser.add_argument("--method", help=", ".join(METHODS) + ", or package.module:Class (a Method of your own)")
    parser.add_argument("--arch", help="architecture name or package.module:factory")
    parser.add_argument("--steps", type=int)
    parser.add_argument(
        "--time",
        dest="time_budget",
        metavar="DURATION",
        help="train for about this long (e.g. 90s, 10m, 1.5h), the set-up, evaluations and checkpoints included: "
        "a step is timed on this machine and --steps set to what fits",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        help="bring larger images of a folder down to N x N as they are decoded "
        "(shorter side to N, centre crop; default 32, and 224 crops for streamed folders)",
    )
    parser.add_argument("--batch-size", type=int)
    parser.add_argument(
        "--labeled-per-batch",
        type=int,
        help="labeled examples per batch; -1 samples labeled and unlabeled alike "
        "(default without a preset: half the batch, or -1 when every image is labeled)",
    )
    parser.add_argument(
        "--ema-decay",
        type=float,
        help="EMA decay after the ramp-up (default without a preset: the EMA "
        "averages over a 50th of the run, 10 to 1000 steps)",
    )
    parser.add_argument(
        "--consistency", type=float, help="maximum consistency weight (default without a preset: 3 per class)"
    )
    parser.add_argument(
        "--consistency-type",
        help="mse, kl, tau:<value>, or the teacher's confident pseudo-labels: pseudo:<threshold> "
        "(FixMatch's cost, e.g. pseudo:0.95) or pseudo:adaptive (FreeMatch's threshold); mean-teacher and fixmatch",
    )
    parser.add_argument(
        "--unlabeled-ratio",
        type=float,
        help="FixMatch's mu: unlabeled images per labeled one in each batch (instead of --labeled-per-batch)",
    )
    parser.add_argument("--logit-distance", type=float, help="two-head logit distance weight")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--device", help="auto, cpu or cuda[:N]")
    parser.add_argument("--precision", help="fp32 or bf16 (autocast)")
    parser.add_argument("--out", help="run directory (default runs/<dataset>-<method>-<labels>-s<seed>)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR where it stopped")
    parser.add_argument(
        "--init",
        metavar="RUN_DIR|MODEL.pt",
        help="warm start: the student and the teacher begin from a "
        "finished run's EMA network, or from an exported state_dict of the same architecture",
    )
    parser.add_argument(
        "--student-view",
        choices=("weak", "strong", "photometric"),
        help="the student's noise: weak (the paper's, as the teacher's), strong (RandAugment-style "
        "operations and cutout on top) or photometric (strong without moving pixels)",
    )
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any configuration key (repeatable), e.g. --set arch_options.width=0.25",
    )
    parser.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write TensorBoard event files to RUN_DIR/tensorboard (pip install 'meanteacher[tensorboard]')",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")


FLAG_KEYS = (
    "dataset",
    "test_data",
    "data_format",
    "labels",
    "label_file",
    "unlabeled",
    "method",
    "arch",
    "steps",
    "batch_size",
    "labeled_per_batch",
    "ema_decay",
    "consistency",
    "consistency_type",
    "unlabeled_ratio",
    "logit_distance",
    "seed",
    "device",
    "precision",
    "image_size",
    "init",
    "student_view",
)


def resolve_config(args: argparse.Namespace) -> Config:
    """Preset (or defaults), then the explicit flags, then ``--set`` overrides."""
    config = load_preset(args.preset) if args.preset else Config()
    flags = {key: getattr(args, key) for key in FLAG_KEYS if getattr(args, key, None) is not None}
    if args.time_budget is not None:
        flags["time_budget"] = parse_duration(args.time_budget)
    if args.unlabeled:  # absolute, so that --resume and later commands find the pile from anywhere
        flags["unlabeled"] = [str(Path(path).resolve()) for path in args.unlabeled]
    if getattr(args, "tensorboard", False):
        flags["tensorboard"] = True
    config = apply_settings(config, flags, "command line")
    config = apply_settings(config, parse_set_options(args.settings), "--set")
    if args.preset and not config.dataset:
        expected = config.description.rsplit(";", 1)[-1].strip()
        raise MeanTeacherError(
            f"no dataset: preset {args.preset} expects {expected if expected.startswith('--data') else '--data PATH'}"
        )
    config.validate()
    return config


RESUME_FLAG_KEYS = ("steps", "device", "precision")
"""The flags that may change a run that ``--resume`` continues."""


def command_train(args: argparse.Namespace) -> int:
    from .run.rundir import RunDirectory, default_run_name
    from .run.train import train

    if args.resume:
        flag_names = {"dataset": "data", "time_budget": "time"}
        ignored = [
            f"--{flag_names.get(key, key).replace('_', '-')}"
            for key in (*FLAG_KEYS, "time_budget", "preset")
            if key not in RESUME_FLAG_KEYS and getattr(args, key, None) is not None
        ]
        if ignored:
            raise MeanTeacherError(
                f"--resume continues the run as its config.toml records it: {', '.join(ignored)} cannot change it "
                "(--steps, --device, --precision and --set can)"
            )
        RunDirectory(args.resume).prepare(resume=True)
        config = RunDirectory(args.resume).read_config()
        overrides = {key: getattr(args, key) for key in RESUME_FLAG_KEYS if getattr(args, key, None) is not None}
        config = apply_settings(config, {**overrides, **parse_set_options(args.settings)}, "command line")
        run_dir = Path(args.resume)
    else:
        config = resolve_config(args)
        run_dir = Path(args.out) if args.out else Path("runs") / default_run_name(config)
    summary = train(config, run_dir, resume=bool(args.resume), progress=not args.quiet)
    if int(os.environ.get("RANK", "0")) == 0:  # one line for a torchrun run, not one per process
        _print_summary(summary, run_dir)
    return 0


def _print_summary(summary: dict[str, Any], run_dir: Path) -> None:
    print(
        f"{run_dir}: {summary['method']} on {summary['dataset']} ({summary['labels']} labels), {summary['steps']} steps: "
        f"{ema_name(summary['method'])} error {summary['ema_error']:.2%}, student error {summary['student_error']:.2%} "
        f"({summary['seconds']:.0f} s)"
    )


def command_evaluate(args: argparse.Namespace) -> int:
    from .inference import load_run
    from .report import per_class_errors, per_class_rows, plot_confusion, text_table

    run = load_run(args.run_dir)
    precision = args.precision or run.config.precision
    results = run.evaluate(args.data, precision, confusion=True)
    matrices = {name: results.pop(f"{name}_confusion") for name in ("ema", "student")}
    names = {"ema": ema_name(run.config.method), "student": "student"}
    plot_path = Path(args.confusion or Path(args.run_dir) / "confusion.png")
    plot_confusion(matrices["ema"], run.classes, plot_path, f"{names['ema']}: {results['ema_error']:.2%} error")
    if args.json:
        per_class = {name: dict(zip(run.classes, per_class_errors(matrix))) for name, matrix in matrices.items()}
        print(
            json.dumps(
                {
                    **results,
                    "precision": precision,
                    "classes": run.classes,
                    "per_class_error": per_class,
                    "confusion": matrices,
                    "confusion_plot": str(plot_path),
                },
                indent=2,
            )
        )
        return 0
    for name in ("ema", "student"):
        print(
            f"{names[name]} error: {results[f'{name}_error']:.2%}  "
            f"(test classification cost {results[f'{name}_class_cost']:.4f}, {precision})"
        )
    print()
    print(text_table(*per_class_rows(run.classes, matrices, names)), end="")
    print(f"\nconfusion matrix of the {names['ema']}: {plot_path}")
    return 0


def command_predict(args: argparse.Namespace) -> int:
    from .files import atomic_write_text
    from .inference import load_run

    if not 0 <= args.min_confidence <= 1:
        raise MeanTeacherError(f"--min-confidence must be between 0 and 1, got {args.min_confidence}")
    run = load_run(args.run_dir)
    rows = run.predict_paths(args.images)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["image", "class", "confidence"])
    for path, label, confidence in rows:
        writer.writerow([path, label, f"{confidence:.4f}"])
    if args.label_file_out:
        sure = [(path, label) for path, label, confidence in rows if confidence >= args.min_confidence]
        atomic_write_text(args.label_file_out, "".join(f"{path} {label}\n" for path, label in sure))
        print(
            f"wrote {len(sure)} of {len(rows)} images the teacher gives at least {args.min_confidence:g} to "
            f"{args.label_file_out} (the model's guesses, not labels)",
            file=sys.stderr,
        )
    if args.out:
        atomic_write_text(args.out, buffer.getvalue())
        print(f"wrote {len(rows)} predictions to {args.out}")
    else:
        sys.stdout.write(buffer.getvalue())
    return 0


def command_suggest(args: argparse.Namespace) -> int:
    from .files import atomic_write_text
    from .inference import load_run
    from .suggest import copy_picks, path_candidates, rank, run_candidates, score

    if args.n < 1:
        raise MeanTeacherError(f"--n must be at least 1, got {args.n}")
    run = load_run(args.run_dir)
    candidates = path_candidates(args.sources, run.image_shape) if args.sources else run_candidates(run)
    if not candidates.names:
        raise MeanTeacherError(
            f"{args.run_dir}: no unlabeled images to rank (every image is labeled and there is no pile): "
            "name some with --from PATH"
        )
    if args.n > len(candidates.names):
        raise MeanTeacherError(
            f"--n {args.n} is more than the {len(candidates.names):,} unlabeled images there are to rank"
        )
    scores, classes, confidences = score(run, candidates.images, args.by, args.views, args.seed)
    picks = rank(scores, classes if args.balanced else None)[: args.n]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["rank", "image", "predicted_class", "confidence", f"{args.by}_score"])
    for number, index in enumerate(picks, start=1):
        writer.writerow(
            [
                number,
                candidates.names[index],
                run.classes[int(classes[index])],
                f"{float(confidences[index]):.4f}",
                f"{float(scores[index]):.6g}",
            ]
        )
    out = Path(args.out) if args.out else Path(args.run_dir) / f"suggest-{args.by}.csv"
    atomic_write_text(out, buffer.getvalue())
    print(
        f"wrote the {len(picks)} images to label next (by {args.by}{', balanced over classes' if args.balanced else ''}) "
        f"of {len(candidates.names):,} to {out}"
    )
    if args.copy_to:
        copy_picks(candidates, picks, Path(args.copy_to))
        print(f"copied them to {args.copy_to}: sort them into class folders, and the next run takes them as labels")
    return 0


def command_export(args: argparse.Namespace) -> int:
    from .inference import export_model

    weights, description = export_model(args.run_dir, args.out, args.which)
    print(f"wrote the {args.which} network to {weights} and how to rebuild it to {description}")
    return 0


def command_presets(args: argparse.Namespace) -> int:
    presets = list_presets()
    width = max(map(len, presets))
    for name, description in presets.items():
        print(f"{name:<{width}}  {description}")
    return 0


def _find_runs(paths: list[str]) -> list[Path]:
    runs = []
    for path in map(Path, paths):
        if (path / "summary.json").is_file():
            runs.append(path)
        elif path.is_dir():
            found = sorted(p.parent for p in path.rglob("summary.json"))
            if not found:
                raise MeanTeacherError(f"{path}: no finished runs (summary.json) found")
            runs += found
        else:
            raise MeanTeacherError(f"{path}: no such run directory")
    return runs


def command_report(args: argparse.Namespace) -> int:
    from .files import atomic_write_text
    from .report import aggregate
    from .run.rundir import read_summary

    runs = _find_runs(args.run_dirs)
    summaries = [read_summary(run) for run in runs]
    table = aggregate(summaries)
    if args.per_class:
        table += per_class_section(runs, summaries)
    if args.out:
        atomic_write_text(args.out, table)
    print(table, end="")
    return 0


def per_class_section(runs: list[Path], summaries: list[dict[str, Any]]) -> str:
    """Per-class tables, one per dataset, method and labels, over the runs that wrote ``confusion.json``."""
    from collections import defaultdict

    from .report import per_class_over_runs
    from .run.rundir import read_confusion

    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    missing = 0
    for run, summary in zip(runs, summaries):
        confusion = read_confusion(run)
        if confusion is None:
            missing += 1
            continue
        groups[(summary["dataset"], summary["labels"], summary["method"], summary["steps"])].append(confusion)
    text = "".join(
        f"\n{dataset}, {labels} labels, {method}, {steps} steps:\n\n" + per_class_over_runs(group)
        for (dataset, labels, method, steps), group in sorted(groups.items())
    )
    if missing:
        text += f"\n{missing} run(s) without confusion.json (written at the end of a run; `meanteacher evaluate` shows their classes)\n"
    return text


def command_data(args: argparse.Namespace) -> int:
    from .data.sources import load_dataset

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
    from .demo import run_demo

    out = Path(args.out) if args.out else Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    run_demo(out, steps=args.steps, progress=not args.quiet)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meanteacher", description="Mean Teacher semi-supervised learning (Tarvainen & Valpola, 2017)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _train_parser(commands)
    evaluate = commands.add_parser("evaluate", help="test error of a run's EMA (teacher) and student")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--data", help="evaluate on this dataset's test split instead of the run's")
    evaluate.add_argument(
        "--precision", choices=("fp32", "bf16"), help="default: the run's own, as in its training-time evaluations"
    )
    evaluate.add_argument(
        "--json", action="store_true", help="the same numbers (overall, per class, confusion matrices) as JSON"
    )
    evaluate.add_argument(
        "--confusion", metavar="PNG", help="where to write the confusion matrix (default RUN_DIR/confusion.png)"
    )
    predict = commands.add_parser(
        "predict", help="class and confidence per image, from a run's EMA (Mean Teacher's teacher)"
    )
    predict.add_argument("run_dir")
    predict.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER")
    predict.add_argument("--out", help="CSV file to write (default: standard output)")
    predict.add_argument(
        "--min-confidence",
        type=float,
        default=0.95,
        help="with --label-file-out: the teacher's probability an image needs (default 0.95)",
    )
    predict.add_argument(
        "--label-file-out",
        metavar="FILE",
        help="also write 'image class' lines for the images the teacher gives at least --min-confidence: the model's "
        "guesses, not labels; check them before training on them",
    )
    suggest = commands.add_parser(
        "suggest", help="which unlabeled images to label next: a run's pile and hidden-label images, ranked"
    )
    suggest.add_argument("run_dir")
    suggest.add_argument("--n", type=int, default=100, help="how many images to pick (default 100)")
    suggest.add_argument(
        "--by",
        choices=STRATEGIES,
        default=DEFAULT_STRATEGY,
        help="disagreement: the student's and the teacher's predictions differ under noise; entropy: the teacher "
        "is unsure; margin: the teacher's top two classes are close; random: the baseline "
        f"(default {DEFAULT_STRATEGY})",
    )
    suggest.add_argument("--balanced", action="store_true", help="spread the picks over the predicted classes")
    suggest.add_argument(
        "--from",
        dest="sources",
        action="append",
        metavar="PATH",
        help="rank these images instead (repeatable): a folder, an archive or a text file of image paths",
    )
    suggest.add_argument("--views", type=int, default=4, help="pairs of noisy views for disagreement (default 4)")
    suggest.add_argument("--seed", type=int, default=0)
    suggest.add_argument("--out", help="CSV file to write (default RUN_DIR/suggest-<strategy>.csv)")
    suggest.add_argument(
        "--copy-to", metavar="DIR", help="copy the picked images here, to be sorted into class folders"
    )
    export = commands.add_parser(
        "export", help="write a run's teacher (EMA) or student as a plain state_dict and a JSON"
    )
    export.add_argument("run_dir")
    export.add_argument("--out", required=True, help="weights file to write, e.g. model.pt (model.json goes beside it)")
    export.add_argument(
        "--which",
        choices=("teacher", "student"),
        default="teacher",
        help="teacher: the EMA weights (every method has them; usually the better model); student: the raw weights",
    )
    commands.add_parser("presets", help="list the presets")
    report = commands.add_parser("report", help="mean ± std table (markdown) over finished runs")
    report.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    report.add_argument("--out", help="also write the table to this file")
    report.add_argument(
        "--per-class",
        action="store_true",
        help="add each class's error (mean ± std over the runs of "
        "each dataset, method and labels, from their confusion.json)",
    )
    demo = commands.add_parser("demo", help="supervised-only vs Mean Teacher on the built-in digits, side by side")
    demo.add_argument("--out", help="folder for the demo's runs, table and plot")
    demo.add_argument("--steps", type=int, help="training steps per method (default: the demo preset's)")
    demo.add_argument("--quiet", action="store_true")
    data = commands.add_parser("data", help="show what a dataset path holds")
    data.add_argument("path")
    data.add_argument("--test-data")
    data.add_argument("--data-format", default="auto", help="as for train")
    data.add_argument("--extra", action="store_true", help="also load SVHN's extra set")
    data.add_argument("--unlabeled", action="append", metavar="PATH", help="also read this unlabeled pile (repeatable)")
    data.add_argument("--json", action="store_true")
    return parser


COMMANDS = {
    "train": command_train,
    "evaluate": command_evaluate,
    "predict": command_predict,
    "suggest": command_suggest,
    "export": command_export,
    "presets": command_presets,
    "report": command_report,
    "data": command_data,
    "demo": command_demo,
}


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"meanteacher: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; problems with the user's input end in one line, exit 2."""
    args = build_parser().parse_args(argv)
    warnings.showwarning = _one_line_warning
    try:
        return COMMANDS[args.command](args)
    except ValueError as error:  # MeanTeacherError and the library's argument checks
        if os.environ.get("MEANTEACHER_DEBUG"):
            raise
        print(f"meanteacher: error: {' '.join(str(error).split())}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        if os.environ.get("MEANTEACHER_DEBUG"):
            raise
        print(
            f"meanteacher: error: {error.filename or ''}: {error.strerror or error}".replace(": : ", ": "),
            file=sys.stderr,
        )
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("meanteacher: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
