"""The commands that use finished runs: evaluate, predict, suggest, export and report."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import MeanTeacherError
from ..report import ema_name
from ..suggest import DEFAULT_STRATEGY, STRATEGIES


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """The parsers of evaluate, predict, suggest, export and report."""
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
    evaluate.set_defaults(handler=command_evaluate)
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
    predict.set_defaults(handler=command_predict)
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
    suggest.set_defaults(handler=command_suggest)
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
    export.set_defaults(handler=command_export)
    report = commands.add_parser("report", help="mean ± std table (markdown) over finished runs")
    report.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    report.add_argument("--out", help="also write the table to this file")
    report.add_argument(
        "--per-class",
        action="store_true",
        help="add each class's error (mean ± std over the runs of "
        "each dataset, method and labels, from their confusion.json)",
    )
    report.set_defaults(handler=command_report)


def command_evaluate(args: argparse.Namespace) -> int:
    from ..inference import load_run
    from ..report import per_class_errors, per_class_rows, plot_confusion, text_table

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
    from ..files import atomic_write_text
    from ..inference import load_run

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
    from ..files import atomic_write_text
    from ..inference import load_run
    from ..suggest import copy_picks, path_candidates, rank, run_candidates, score

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
    from ..inference import export_model

    weights, description = export_model(args.run_dir, args.out, args.which)
    print(f"wrote the {args.which} network to {weights} and how to rebuild it to {description}")
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
    from ..files import atomic_write_text
    from ..report import aggregate
    from ..run.rundir import read_summary

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

    from ..report import per_class_over_runs
    from ..run.rundir import read_confusion

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
