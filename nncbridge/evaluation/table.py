"""Which columns of a Console output CSV are compared with which, and reading their values.

Console names an output after the label it predicts with a prime: ``y'`` (or ``y'__0`` … for several
values) is compared with ``y`` (``y:label``, or ``y__0`` … for one-hot or vector labels), as
Console's ``confusion_matrix.py`` (``extract_modals``) pairs them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..dataset.csv_io import Column, DatasetCsv, is_float
from ..errors import DatasetError

CLASSIFIER_FUNCTIONS = ("Softmax", "Sigmoid")
TASKS = ("auto", "classification", "regression")


@dataclass(frozen=True)
class Pair:
    """One output compared with its label: which columns, and how (``kind``)."""

    output: str
    values: int
    """The output's values per row (its columns in the output CSV)."""
    label_columns: tuple[Column, ...]
    prediction_columns: tuple[Column, ...]
    kind: str
    """``classification``, ``regression``, or ``auto``: decided from the values once all are read."""

    @property
    def label(self) -> str:
        return ", ".join(c.header for c in self.label_columns[:2]) + (" …" if len(self.label_columns) > 2 else "")

    @property
    def classes(self) -> int:
        """Classes an output of this many values names: one per value, or 0 and 1 for a probability."""
        return self.values if self.values > 1 else 2


def label_name(output: str) -> str:
    """The label an output predicts: ``y'`` -> ``y``."""
    return output[:-1] if output.endswith("'") else output


def make_pairs(table: DatasetCsv, outputs: list[tuple[str, int, str]], task: str,
               with_predictions: bool) -> tuple[list[Pair], list[str]]:
    """Pairs for ``outputs`` (name, values per row, layer type or "") that have a label column in
    ``table``, and the names of those that have none."""
    if task not in TASKS:
        raise DatasetError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    pairs: list[Pair] = []
    unlabelled: list[str] = []
    for name, values, function in outputs:
        labels = tuple(table.columns_for(label_name(name))) if name.endswith("'") else ()
        if not labels:
            unlabelled.append(name)
            continue
        predictions = tuple(table.columns_for(name)) if with_predictions else ()
        pairs.append(Pair(name, values, labels, predictions, _kind(table.path, name, values, labels, function, task)))
    return pairs, unlabelled


def _kind(path: os.PathLike[str], name: str, values: int, labels: tuple[Column, ...], function: str,
          task: str) -> str:
    one_label = len(labels) == 1
    if task == "classification" or (task == "auto" and function in CLASSIFIER_FUNCTIONS):
        if one_label or len(labels) == values:
            return "classification"
    elif task == "regression" or function:
        if len(labels) == values:
            return "regression"
    elif one_label and values > 1:
        return "classification"  # a class index per row, scores per class
    elif len(labels) == values:
        return "auto"
    wanted = "one label column (a class index)" + (f" or {values} (one-hot)" if values > 1 else "")
    if task == "regression" or (function and function not in CLASSIFIER_FUNCTIONS):
        wanted = f"{_count(values, 'label column')}, one per value"
    raise DatasetError(f"{path}: output {name!r} has {_count(values, 'value')} per row but its label "
                       f"{label_name(name)!r} has {_count(len(labels), 'column')} ({labels[0].header!r} …); "
                       f"expected {wanted}")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' * (number != 1)}"


@dataclass
class Values:
    """The labels and predictions read for one pair, a row each."""

    labels: np.ndarray
    predictions: np.ndarray


def read_values(table: DatasetCsv, pairs: list[Pair], skip_errors: bool) -> tuple[list[Values], list[str]]:
    """Every row's label (and prediction) values for each pair, checked; a bad row stops the reading
    with a DatasetError naming line and column, or with ``skip_errors`` is left out and described."""
    labels = [_Block(len(pair.label_columns)) for pair in pairs]
    predictions = [_Block(len(pair.prediction_columns)) for pair in pairs]
    errors: list[str] = []
    for line, cells in table.rows():
        try:
            row = [(_numbers(cells, pair.label_columns, pair, True), _numbers(cells, pair.prediction_columns, pair, False))
                   for pair in pairs]
        except DatasetError as e:
            message = f"{table.path}: line {line}: {e}"
            if not skip_errors:
                raise DatasetError(message) from None
            errors.append(message)
            continue
        for k, (label, prediction) in enumerate(row):
            labels[k].add(label)
            predictions[k].add(prediction)
    return [Values(lab.array(), pred.array()) for lab, pred in zip(labels, predictions)], errors


class _Block:
    """Rows of ``width`` numbers, gathered into float64 arrays every few thousand rows (Python
    lists of floats take five times the memory)."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.rows: list[list[float]] = []
        self.blocks: list[np.ndarray] = []

    def add(self, row: list[float]) -> None:
        self.rows.append(row)
        if len(self.rows) == 4096:
            self._flush()

    def _flush(self) -> None:
        self.blocks.append(np.array(self.rows, dtype=np.float64).reshape(len(self.rows), self.width))
        self.rows = []

    def array(self) -> np.ndarray:
        self._flush()
        return np.concatenate(self.blocks)


def _numbers(cells: list[str], columns: tuple[Column, ...], pair: Pair, is_label: bool) -> list[float]:
    values = []
    for column in columns:
        if column.index >= len(cells):
            raise DatasetError(f"column {column.header!r}: missing (the row has only {_count(len(cells), 'cell')})")
        cell = cells[column.index].strip()
        if not is_float(cell):
            hint = "" if is_label or "/" not in cell else \
                " (outputs written as files cannot be compared; predict with --values-in-columns)"
            raise DatasetError(f"column {column.header!r}: {cell!r} is not a number{hint}")
        value = float(cell)
        if is_label and pair.kind == "classification" and len(columns) == 1 and not (
                value.is_integer() and 0 <= value < pair.classes):
            what = "0 or 1 for the probability" if pair.values == 1 else \
                f"a whole number from 0 to {pair.classes - 1} for the {pair.values} values"
            raise DatasetError(f"column {column.header!r}: {cell!r} is not a class index ({what} of output {pair.output!r})")
        values.append(value)
    return values


def resolve_kind(pair: Pair, values: Values) -> str:
    """An ``auto`` pair is a classification when its labels are 0/1 (one per row among several
    columns) and its predictions probabilities; otherwise a regression."""
    if pair.kind != "auto":
        return pair.kind
    labels, predictions = values.labels, values.predictions
    binary = bool(np.all((labels == 0) | (labels == 1)))
    one_hot = labels.shape[1] == 1 or bool(np.all(labels.sum(axis=1) == 1))
    probabilities = bool(np.all((predictions >= 0) & (predictions <= 1)))
    return "classification" if binary and one_hot and probabilities else "regression"
