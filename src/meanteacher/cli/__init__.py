"""The ``meanteacher`` command. Each group of commands adds its parsers (``add_parsers``), and each parser
names the function that runs its command (its ``handler``): ``train`` (``cli.train``), the commands that
use finished runs (``cli.runs``: evaluate, predict, suggest, export, report) and the ones for looking
around (``cli.info``: presets, data, demo)."""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from . import info, runs, train

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meanteacher", description="Mean Teacher semi-supervised learning (Tarvainen & Valpola, 2017)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for group in (train, runs, info):
        group.add_parsers(commands)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"meanteacher: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; problems with the user's input end in one line, exit 2."""
    args = build_parser().parse_args(argv)
    warnings.showwarning = _one_line_warning
    try:
        return args.handler(args)
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
