"""``meanteacher train``: a run from a preset, flags and ``--set``, or a killed run resumed."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ..config import Config, apply_settings
from ..config.checks import validate
from ..config.toml import load_preset, parse_duration, parse_set_options
from ..data.formats import BUILT_IN as BUILT_IN_FORMATS
from ..errors import MeanTeacherError
from ..methods import METHODS
from ..report import ema_name


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """The ``train`` command's parser."""
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
    parser.set_defaults(handler=command_train)


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
    validate(config)
    return config


RESUME_FLAG_KEYS = ("steps", "device", "precision")
"""The flags that may change a run that ``--resume`` continues."""


def command_train(args: argparse.Namespace) -> int:
    from ..run.rundir import RunDirectory, default_run_name
    from ..run.train import train

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
