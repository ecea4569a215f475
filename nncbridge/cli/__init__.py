"""``nncbridge`` command line: a thin layer over the library. Each subcommand lives in its own module."""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from ..errors import NncBridgeError

# subcommand -> module in this package exposing ``add_arguments(parser)`` and ``run(args) -> int``
COMMANDS = {
    "info": "Describe a model: format, executors with their inputs and outputs, layers, parameters.",
    "check": "Validate a model; exit 0 if clean (warnings allowed), 1 on problems, 2 if unreadable.",
    "convert": "Convert one executor of a model to ONNX.",
    "predict": "Run a model over a Console dataset CSV and write Console's output CSV.",
    "evaluate": "Score a model on a labelled dataset CSV (or an output CSV): Console's Evaluation tab.",
    "serve": "Serve models over HTTP: Open Inference Protocol v2, /predict for images and a page at /.",
}

EXIT_UNREADABLE = 2


def build_parser() -> argparse.ArgumentParser:
    from ._versions import VersionAction

    parser = argparse.ArgumentParser(prog="nncbridge", description="Use Neural Network Console models from Python.")
    parser.add_argument("--version", action=VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ImportError:
            continue
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "_run"):
        parser.print_help()
        return EXIT_UNREADABLE
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_printer(args.command)
            return int(args._run(args))
    except NncBridgeError as e:
        print(f"nncbridge {args.command}: error: {e}", file=sys.stderr)
        return EXIT_UNREADABLE
    except KeyboardInterrupt:
        print(f"nncbridge {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output is gone (``| head``): nothing left to say
        return 1


def _warning_printer(command: str) -> Callable[..., None]:
    def show(message: Warning | str, *_: Any, **__: Any) -> None:
        print(f"nncbridge {command}: warning: {message}", file=sys.stderr)

    return show


def console_main() -> NoReturn:
    """The ``nncbridge`` command: ``main``, then exit without tearing the interpreter down.

    By then the command's files are closed and its threads and processes have ended; unloading
    every module and onnxruntime's session would only add 0.05-0.1 s to each run.
    """
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe: the reader is gone
        code = code or 1
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    console_main()
