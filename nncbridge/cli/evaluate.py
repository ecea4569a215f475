"""``nncbridge evaluate MODEL DATASET.csv [-o DIR]`` and ``nncbridge evaluate --predictions OUTPUT.csv``"""
from __future__ import annotations

import argparse
import json
import sys

from ..errors import DatasetError
from .predict import add_run_arguments, prepared_run


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", help=".nnp file")
    p.add_argument("dataset", nargs="?", help="labelled Console dataset CSV (header like x:image,y:label)")
    p.add_argument("--predictions", metavar="OUTPUT.csv",
                   help="score this output CSV with labels (ours or Console's output_result.csv) instead of "
                   "running a model")
    p.add_argument("-o", "--output-dir", metavar="DIR",
                   help="write output_result.csv, confusion_matrix.csv/.png or residuals.png, and summary.json here")
    p.add_argument("--task", choices=["auto", "classification", "regression"], default="auto",
                   help="auto (default): Softmax/Sigmoid outputs, or scores per class against a class index, "
                   "are classifications, other outputs regressions")
    p.add_argument("--no-plots", action="store_true", help="do not draw pictures")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_run_arguments(p)


def run(args: argparse.Namespace) -> int:
    from ..evaluation import evaluate, evaluate_predictions

    if args.predictions is not None:
        if args.model is not None:
            raise DatasetError("give either --predictions OUTPUT.csv or MODEL DATASET.csv, not both")
        evaluation = evaluate_predictions(args.predictions, args.output_dir, task=args.task,
                                          skip_errors=args.skip_errors, plots=not args.no_plots)
    else:
        if args.dataset is None:
            raise DatasetError("give MODEL DATASET.csv (or --predictions OUTPUT.csv)")
        with prepared_run(args, args.dataset) as (predictor, processes, progress):
            evaluation = evaluate(predictor, args.dataset, args.output_dir, task=args.task,
                                  batch_size=args.batch_size, workers=args.workers, processes=processes,
                                  skip_errors=args.skip_errors, progress=progress, plots=not args.no_plots)
    for message in evaluation.skipped:
        print(f"skipped: {message}", file=sys.stderr)
    if args.json:
        print(json.dumps(evaluation.as_dict()))
    else:
        print(evaluation.text())
        if evaluation.skipped:
            print(f"({len(evaluation.skipped)} rows skipped)")
        if args.output_dir is not None:
            print(f"wrote {', '.join(evaluation.files)}")
    for note in evaluation.notes:
        print(note, file=sys.stderr)
    return 0
