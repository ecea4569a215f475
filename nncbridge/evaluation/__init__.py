"""Console's Evaluation tab from a script: run a model over a labelled dataset (or read an output
CSV) and score each output against its label.

The scores follow Console's own definitions (see ``metrics``); the output CSV is the one
``nncbridge predict`` writes (``predict_csv``: same preprocessing, streaming, workers, progress).
"""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from ..dataset.csv_io import DatasetCsv
from ..errors import DatasetError
from .metrics import ClassificationResult, RegressionResult, classify, predicted_classes, regress
from .table import Pair, Values, label_name, make_pairs, read_values, resolve_kind

if TYPE_CHECKING:
    from ..predictor import Predictor

Result = Union[ClassificationResult, RegressionResult]
PREDICTIONS_FILE = "output_result.csv"  # Console's name for the evaluation's output CSV

__all__ = ["Evaluation", "ClassificationResult", "RegressionResult", "evaluate", "evaluate_predictions"]


@dataclass
class Evaluation:
    """Scores per labelled output, with the rows they come from."""

    results: list[Result]
    rows: int
    predictions: str
    """The output CSV the scores were computed from."""
    skipped: list[str] = field(default_factory=list)
    """Rows left out (``skip_errors``), each with the reason."""
    unlabelled: list[str] = field(default_factory=list)
    """Outputs without a label column, not scored."""
    files: list[str] = field(default_factory=list)
    """Files written by ``write_files`` (and ``evaluate``'s output CSV)."""
    notes: list[str] = field(default_factory=list)
    """Things a reader should know, e.g. that pictures could not be drawn."""

    def as_dict(self) -> dict[str, Any]:
        """Everything as JSON-ready values (None for numbers that are not finite)."""
        from .report import json_safe

        return json_safe({"rows": self.rows, "predictions": self.predictions, "skipped": len(self.skipped),
                          "skipped_rows": self.skipped, "unlabelled_outputs": self.unlabelled,
                          "outputs": [r.as_dict() for r in self.results], "files": self.files})

    def text(self) -> str:
        """The report as a person reads it."""
        from .report import text

        return text(self)

    def write_files(self, folder: str | os.PathLike[str], plots: bool = True) -> None:
        """Write ``summary.json``, ``confusion_matrix.csv`` (+ ``.png``) per classified output and
        ``residuals.png`` per regression into ``folder`` (added to ``files``). Without matplotlib
        the pictures are left out, with a note in ``notes``."""
        from .report import write_files

        write_files(self, Path(folder), plots)


def evaluate(model: str | os.PathLike[str] | Predictor, dataset: str | os.PathLike[str],
             output_dir: str | os.PathLike[str] | None = None, *, task: str = "auto", batch_size: int = 64,
             workers: int | None = None, processes: int = 0, skip_errors: bool = False,
             progress: Callable[[int], None] | None = None, plots: bool = True) -> Evaluation:
    """Run ``model`` over a labelled Console dataset CSV and score each output against its label.

    ``model``: an ``.nnp`` path or a ``Predictor``. Outputs named ``y'`` are compared with the
    dataset's ``y`` columns (Console's naming). ``task``: ``auto`` (Softmax / Sigmoid outputs, or
    scores per class against a class-index label, are classifications; the rest regressions),
    ``classification`` or ``regression``. Label cells are checked before the model runs: a bad one
    raises a ``DatasetError`` naming the line and column (``skip_errors`` leaves such rows out).
    ``output_dir``: where ``output_result.csv`` (the output CSV ``nncbridge predict`` writes, with
    matrix and map outputs as values in columns), ``summary.json`` and the tables and pictures go;
    without it the output CSV is temporary. The other arguments are ``predict_csv``'s.
    """
    from ..dataset.batch import predict_csv
    from ..predictor import Predictor, load

    with contextlib.suppress(OSError):  # a missing file: DatasetCsv says so
        if not stat.S_ISREG(os.stat(dataset).st_mode):
            raise DatasetError(f"{dataset}: not a regular file; evaluate reads the dataset twice (its labels "
                               "are checked before the model runs), so give a file, not a pipe")
    predictor = model if isinstance(model, Predictor) else load(model)
    outputs = [(o.data_name or o.name, int(np.prod(o.shape)) if o.shape else 1, o.function)
               for o in predictor.outputs]
    with DatasetCsv(dataset) as table:
        pairs, _ = make_pairs(table, outputs, task, with_predictions=False)
        if not pairs:
            raise DatasetError(_no_labels_message(table, [name for name, _, _ in outputs]))
        _, label_errors = read_values(table, pairs, skip_errors)
    with tempfile.TemporaryDirectory(prefix="nncbridge-evaluate-") as scratch:
        folder = Path(output_dir) if output_dir is not None else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        output = folder / PREDICTIONS_FILE
        summary = predict_csv(predictor, dataset, output, batch_size=batch_size, workers=workers,
                              skip_errors=skip_errors, progress=progress, processes=processes, output_files=False)
        # Rows with bad labels were reported above with their line in the dataset: here they are dropped.
        evaluation = _evaluate_csv(output, {name: function for name, _, function in outputs}, task,
                                   skip_errors, source=Path(dataset), skipped=len(label_errors + summary.skipped))
        evaluation.skipped = label_errors + summary.skipped
        evaluation.predictions = str(output) if output_dir is not None else ""
        if output_dir is not None:
            evaluation.files.append(str(output))
            evaluation.write_files(folder, plots)
    return evaluation


def evaluate_predictions(predictions: str | os.PathLike[str], output_dir: str | os.PathLike[str] | None = None,
                         *, task: str = "auto", skip_errors: bool = False, plots: bool = True) -> Evaluation:
    """Score an output CSV that has the labels (ours, or Console's ``output_result.csv``) without
    running a model: each ``y'`` column group against its ``y`` column(s). Without the model the
    output's layer is unknown, so with ``task="auto"`` a single output column is a classification
    when its labels are 0/1 and its values probabilities, scores per class against a class index
    are one too, and anything else a regression."""
    evaluation = _evaluate_csv(Path(predictions), {}, task, skip_errors)
    if output_dir is not None:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        evaluation.write_files(output_dir, plots)
    return evaluation


def _evaluate_csv(path: Path, functions: dict[str, str], task: str, skip_errors: bool,
                  source: Path | None = None, skipped: int | None = None) -> Evaluation:
    """The evaluation of output CSV ``path``; ``source`` and ``skipped``: the dataset it comes from
    and the rows left out of it before, for the message when no row is left."""
    with DatasetCsv(path) as table:
        names = list(functions) or list(dict.fromkeys(c.variable for c in table.columns if c.variable.endswith("'")))
        outputs = [(name, len(table.columns_for(name)), functions.get(name, "")) for name in names]
        pairs, unlabelled = make_pairs(table, [o for o in outputs if o[1]], task, with_predictions=True)
        if not pairs:
            raise DatasetError(_no_labels_message(table, names))
        values, errors = read_values(table, pairs, skip_errors)
    rows = len(values[0].labels)
    if rows == 0:
        skipped = len(errors) if skipped is None else skipped
        raise DatasetError(f"{source or path}: no rows to evaluate" + (f" ({skipped} skipped)" if skipped else ""))
    results = [_score(pair, v) for pair, v in zip(pairs, values)]
    return Evaluation(results, rows, str(path), errors, unlabelled)


def _no_labels_message(table: DatasetCsv, outputs: list[str]) -> str:
    if not outputs:
        return f"{table.path}: no output columns (named like y' or y'__0) to evaluate; the header has: " \
               f"{', '.join(table.header)}"
    wanted = ", ".join(f"{label_name(name)!r} for {name!r}" for name in outputs)
    return (f"{table.path}: no label column for any output (expected {wanted}, e.g. 'y:label'); "
            f"the header has: {', '.join(table.header)}")


def _score(pair: Pair, values: Values) -> Result:
    columns = [c.header for c in pair.prediction_columns]
    if resolve_kind(pair, values) == "regression":
        return regress(pair.output, pair.label, columns, [c.header for c in pair.label_columns],
                       values.labels, values.predictions)
    labels = values.labels
    true = labels[:, 0].astype(np.int64) if labels.shape[1] == 1 else np.argmax(labels, axis=1)
    return classify(pair.output, pair.label, true, predicted_classes(values.predictions), pair.classes)
