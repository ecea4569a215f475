"""``nncbridge predict MODEL DATASET.csv -o OUT.csv``"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..predictor import Predictor

# Below this many rows, starting worker processes (about a second) costs more than it saves.
PROCESSES_FROM_ROWS = 20_000


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help=".nnp file")
    p.add_argument("dataset", help="Console dataset CSV (header like x:image,y:label)")
    p.add_argument("-o", "--output", required=True, help="output CSV (nnabla_cli forward layout)")
    add_run_arguments(p)
    p.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="run on a Ray cluster: ADDRESS (auto, HOST:PORT, ray://HOST:PORT), else RAY_ADDRESS, "
                   "else a new local Ray; --processes then counts Ray workers (default: one per CPU of the "
                   "cluster). Every node must see the dataset's files at the same paths")
    p.add_argument("--values-in-columns", action="store_true",
                   help="write matrix and map outputs as values in columns (y'__0 …) instead of CSV/PNG files")
    p.add_argument("--json", action="store_true", help="print a JSON summary (rows, seconds, rows/s)")


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Options of running a model over a dataset, shared with ``nncbridge evaluate``."""
    p.add_argument("--batch-size", type=int, default=64, help="rows per inference call (default: 64)")
    p.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "nnabla"],
                   help="auto (default): onnxruntime, or nnabla if onnxruntime is missing")
    p.add_argument("--executor", help="executor to run (default: the only runtime executor)")
    p.add_argument("--workers", type=int, help="threads sharing the model when not using processes "
                   "(default: CPU count, at most 8)")
    p.add_argument("--processes", type=int, help="worker processes, each loading the model; this one "
                   "predicts too while they are busy (default: one fewer than CPUs, at most 7, for "
                   f"{PROCESSES_FROM_ROWS:,} rows or more; 0 for none)")
    p.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: onnxruntime's "
                   "choice, or 1 with worker processes)")
    p.add_argument("--skip-errors", action="store_true", help="skip bad rows (listed at the end) instead of stopping")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..dataset.batch import predict_csv

    with prepared_run(args, args.dataset) as (predictor, processes, progress):
        if args.ray is not None:
            from ..ray.batch import predict_csv as predict_csv_on_ray

            summary = predict_csv_on_ray(predictor, args.dataset, args.output, address=args.ray or None,
                                         workers=args.processes, batch_size=args.batch_size,
                                         skip_errors=args.skip_errors, progress=progress,
                                         output_files=not args.values_in_columns)
        else:
            summary = predict_csv(predictor, args.dataset, args.output, batch_size=args.batch_size,
                                  workers=args.workers, skip_errors=args.skip_errors, progress=progress,
                                  processes=processes, output_files=not args.values_in_columns)
    for message in summary.skipped:
        print(f"skipped: {message}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary.as_dict()))
    else:
        print(f"wrote {summary.rows} row{'s' * (summary.rows != 1)} to {args.output} in {summary.seconds:.2f} s"
              + (f" ({len(summary.skipped)} skipped)" if summary.skipped else ""), file=sys.stderr)
    return 0


@contextlib.contextmanager
def prepared_run(args: argparse.Namespace,
                 dataset: str) -> Iterator[tuple[Predictor, int, Callable[[int], Any] | None]]:
    """The predictor, the worker processes to use, and the progress bar's update (None if not on a
    terminal); the bar is closed at the end of the block."""
    from ..dataset.batch import count_rows
    from ..predictor import load

    on_ray = getattr(args, "ray", None) is not None  # evaluate has no --ray
    if on_ray:
        from ..ray.cluster import require_ray

        require_ray()  # fails at once, saying how to install it
    show_bar = not args.quiet and not args.json and sys.stderr.isatty()
    rows = count_rows(dataset) if show_bar or (args.processes is None and not on_ray) else None
    processes = args.processes
    if on_ray:
        processes = 0  # the Ray workers predict; this process reads and writes
    elif processes is None:
        cpus = os.cpu_count() or 1
        processes = min(cpus - 1, 7) if cpus > 1 and rows is not None and rows >= PROCESSES_FROM_ROWS else 0
    # With worker processes this process predicts too, on one thread like each of them (and Ray's).
    threads = args.threads or (1 if processes or on_ray else None)
    options = {"intra_op_num_threads": threads} if threads and args.backend != "nnabla" else {}
    predictor = load(args.model, executor=args.executor, backend=args.backend, **options)
    bar = None
    if show_bar:
        from tqdm import tqdm

        bar = tqdm(total=rows, unit="rows", file=sys.stderr, dynamic_ncols=True)
    try:
        yield predictor, processes, bar.update if bar is not None else None
    finally:
        if bar is not None:
            bar.close()
