"""``nncbridge check MODEL``: one line per problem; exit 0 clean (warnings allowed), 1 problems, 2 unreadable."""
from __future__ import annotations

import argparse
import json

EXIT_CLEAN = 0
EXIT_PROBLEMS = 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="+", help=".nnp file, folder of NNP parts, or the parts themselves")
    p.add_argument("--json", action="store_true", help="print the problems as a JSON list")
    p.add_argument("--quiet", "-q", action="store_true", help="print errors only, no warnings or summary")


def run(args: argparse.Namespace) -> int:
    from ..format.reader import read
    from ..model.validate import check

    source = args.model[0] if len(args.model) == 1 else args.model
    model = read(source)
    problems = check(model)
    errors = [p for p in problems if p.is_error]
    warnings = [p for p in problems if not p.is_error]
    if args.json:
        print(json.dumps([{"severity": p.severity, "message": p.message, "network": p.network, "layer": p.layer,
                           "variable": p.variable} for p in problems], indent=2, ensure_ascii=False))
    else:
        for p in problems:
            if p.is_error or not args.quiet:
                print(p)
        if not args.quiet:
            summary = (f"{model.source.path}: {_n(len(model.networks), 'network')} and "
                       f"{_n(len(model.executors), 'executor')} checked: ")
            if not problems:
                summary += "OK, no problems found"
            else:
                summary += f"{_n(len(errors), 'error')}, {_n(len(warnings), 'warning')}"
            print(summary)
    return EXIT_PROBLEMS if errors else EXIT_CLEAN


def _n(count: int, what: str) -> str:
    return f"{count} {what}" + ("" if count == 1 else "s")
