"""``nncbridge --version``: the versions that decide how a model runs, read from package metadata
(importing numpy, onnx, onnxruntime and nnabla just to ask for them would take longer than any command)."""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

DEPENDENCIES = ("numpy", "protobuf", "onnx", "onnxruntime", "h5py", "Pillow")
OPTIONAL = ("nnabla", "imagecodecs")


def version_report() -> str:
    import platform
    from importlib import metadata

    from .. import __version__

    lines = [f"nncbridge {__version__}", f"Python {platform.python_version()} ({sys.executable})"]
    for name in DEPENDENCIES + OPTIONAL:
        try:
            lines.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            if name in DEPENDENCIES:
                lines.append(f"{name} not installed")
    return "\n".join(lines)


class VersionAction(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="print the versions of nncbridge, Python and the packages it runs on, and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> NoReturn:
        try:
            print(version_report(), flush=True)
        except BrokenPipeError:  # `nncbridge --version | head -1`: the reader is gone
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        parser.exit()
