"""The numbers of Console's Evaluation tab, from labels and predictions.

Classification follows Neural Network Console's own code, ``confusion_matrix.py`` of the
desktop app (github.com/sony/nnc-desktop, ``local_editor/runner_component/core/src/confusion_matrix.py``,
functions ``countup_result`` and ``compute_score``), which turns the evaluation's
``output_result.csv`` into the tab's confusion matrix:

- the true class is the label cell as a whole number (Console truncates other numbers; here they
  are an error naming line and column), or the index of the largest of several label columns
  (one-hot labels); the predicted class is the index of the largest output value
  (the first one on ties), or, for one output value, ``round(y')``, which for a probability
  (Sigmoid) is 1 above 0.5 and 0 otherwise;
- the confusion matrix counts rows by (true class, predicted class);
- recall of a class = its correct rows / rows of that true class; precision = its correct rows /
  rows predicted as that class; F-measure = 2 · precision · recall / (precision + recall); each is
  0 when its denominator is 0;
- accuracy = correct rows / all rows; ``Avg.Precision``, ``Avg.Recall`` and ``Avg.F-Measures`` are
  the plain means over the classes (what scikit-learn calls the macro average).

One deliberate difference: Console sizes the matrix by the largest true class in the data, and
silently leaves out rows predicted as a class above it; here the classes are those the output can
name (its number of values, or 0 and 1 for a single probability), so every row is counted and
a class absent from the labels shows a row of zeros. On data where every class occurs (the Console
exports in the tests) both give the same numbers.

Support (rows per true class) is not on Console's tab; it is the row sums of the matrix.

Regression outputs have no metrics in Console; per output column we give the textbook ones, as
scikit-learn defines them (``mean_absolute_error``, ``root_mean_squared_error``, ``max_error``,
``r2_score``): MAE = mean |ŷ − y|, RMSE = √(mean (ŷ − y)²), max error = max |ŷ − y|,
R² = 1 − Σ(ŷ − y)² / Σ(y − ȳ)², which is undefined (None) when every label is the same.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class ClassificationResult:
    """Console's confusion matrix and scores for one output (rows: true class, columns: predicted)."""

    output: str
    """The output's column name in the output CSV (``y'``)."""
    label: str
    """The label column(s) it is compared with (``y:label``)."""
    confusion_matrix: np.ndarray
    accuracy: float
    precision: np.ndarray
    recall: np.ndarray
    f_measure: np.ndarray
    support: np.ndarray
    kind: str = field(default="classification", init=False)

    @property
    def rows(self) -> int:
        return int(self.confusion_matrix.sum())

    @property
    def correct(self) -> int:
        return int(np.trace(self.confusion_matrix))

    @property
    def classes(self) -> list[str]:
        return [str(i) for i in range(len(self.confusion_matrix))]

    @property
    def avg_precision(self) -> float:
        return float(np.mean(self.precision))

    @property
    def avg_recall(self) -> float:
        return float(np.mean(self.recall))

    @property
    def avg_f_measure(self) -> float:
        return float(np.mean(self.f_measure))

    def as_dict(self) -> dict[str, Any]:
        return {"output": self.output, "label": self.label, "kind": self.kind, "rows": self.rows,
                "correct": self.correct, "accuracy": self.accuracy, "avg_precision": self.avg_precision,
                "avg_recall": self.avg_recall, "avg_f_measure": self.avg_f_measure,
                "classes": [{"class": c, "precision": float(p), "recall": float(r), "f_measure": float(f),
                             "support": int(s)}
                            for c, p, r, f, s in zip(self.classes, self.precision, self.recall, self.f_measure,
                                                     self.support)],
                "confusion_matrix": self.confusion_matrix.tolist()}


@dataclass
class RegressionResult:
    """Error measures per output column of one output."""

    output: str
    label: str
    columns: list[str]
    """The output's columns (``y'`` or ``y'__0`` …), each compared with the label column at its place."""
    label_columns: list[str]
    mae: np.ndarray
    rmse: np.ndarray
    max_error: np.ndarray
    r2: np.ndarray
    """R² per column; NaN where undefined (constant labels)."""
    predicted: np.ndarray
    true: np.ndarray
    kind: str = field(default="regression", init=False)

    @property
    def rows(self) -> int:
        return len(self.true)

    def as_dict(self) -> dict[str, Any]:
        return {"output": self.output, "label": self.label, "kind": self.kind, "rows": self.rows,
                "columns": [{"column": c, "label": lc, "mae": float(a), "rmse": float(r), "max_error": float(m),
                             "r2": _finite_or_none(r2)}
                            for c, lc, a, r, m, r2 in zip(self.columns, self.label_columns, self.mae, self.rmse,
                                                          self.max_error, self.r2)]}


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def predicted_classes(predictions: np.ndarray) -> np.ndarray:
    """Console's predicted class per row of an (N, k) array: argmax, or for k == 1 above 0.5."""
    if predictions.shape[1] == 1:
        return (predictions[:, 0] > 0.5).astype(np.int64)
    return np.argmax(predictions, axis=1).astype(np.int64)


def classify(output: str, label: str, true: np.ndarray, predicted: np.ndarray,
             classes: int) -> ClassificationResult:
    """Scores from true and predicted class indices (each in ``range(classes)``)."""
    matrix = np.bincount(true * classes + predicted, minlength=classes * classes).reshape(classes, classes)
    correct = np.diag(matrix).astype(np.float64)
    per_true = matrix.sum(axis=1)
    per_predicted = matrix.sum(axis=0)
    recall = _ratio(correct, per_true)
    precision = _ratio(correct, per_predicted)
    f_measure = _ratio(2 * precision * recall, precision + recall)
    total = matrix.sum()
    accuracy = float(correct.sum() / total) if total else 0.0
    return ClassificationResult(output, label, matrix, accuracy, precision, recall, f_measure, per_true)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (as Console)."""
    out = np.zeros(len(numerator), dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def regress(output: str, label: str, columns: list[str], label_columns: list[str], true: np.ndarray,
            predicted: np.ndarray) -> RegressionResult:
    """Error measures per column of (N, k) arrays of labels and predictions."""
    error = predicted.astype(np.float64) - true
    squared = np.sum(error ** 2, axis=0)
    spread = np.sum((true - true.mean(axis=0)) ** 2, axis=0)
    r2 = np.full(len(squared), np.nan)
    np.subtract(1.0, squared / np.where(spread != 0, spread, 1.0), out=r2, where=spread != 0)
    return RegressionResult(output, label, columns, label_columns, mae=np.mean(np.abs(error), axis=0),
                            rmse=np.sqrt(squared / len(error)), max_error=np.max(np.abs(error), axis=0),
                            r2=r2, predicted=predicted, true=true)
