"""An evaluation as text, as files (summary.json, confusion_matrix.csv) and as pictures (matplotlib)."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..util.files import atomic_output
from .metrics import ClassificationResult, RegressionResult

if TYPE_CHECKING:
    from . import Evaluation, Result

PLOT_HINT = 'pictures not drawn: matplotlib is not installed (pip install "nncbridge[plot]")'
_MAX_ANNOTATED_CLASSES = 30  # beyond this, counts no longer fit in the cells
_MAX_RESIDUAL_PANELS = 6


def text(evaluation: Evaluation) -> str:
    parts = [_classification_text(r) if isinstance(r, ClassificationResult) else _regression_text(r)
             for r in evaluation.results]
    if evaluation.unlabelled:
        parts.append(f"not scored (no label column): {', '.join(evaluation.unlabelled)}")
    return "\n\n".join(parts)


def _classification_text(r: ClassificationResult) -> str:
    lines = [f"{r.output} vs {r.label}: classification, {r.rows:,} rows, {len(r.classes)} classes",
             f"accuracy {100 * r.accuracy:.2f}% ({r.correct:,}/{r.rows:,})",
             "",
             f"{'class':>7}  {'precision':>9}  {'recall':>9}  {'F-measure':>9}  {'support':>8}"]
    for c, p, rc, f, s in zip(r.classes, r.precision, r.recall, r.f_measure, r.support):
        lines.append(f"{c:>7}  {p:9.4f}  {rc:9.4f}  {f:9.4f}  {s:8,}")
    lines.append(f"{'average':>7}  {r.avg_precision:9.4f}  {r.avg_recall:9.4f}  {r.avg_f_measure:9.4f}  {r.rows:8,}"
                 "   (mean over classes, Console's Avg.)")
    width = max(5, len(str(int(r.confusion_matrix.max()))) + 1)
    lines += ["", f"confusion matrix (rows: true class from {r.label}, columns: predicted from {r.output})",
              " " * 7 + "".join(f"{c:>{width}}" for c in r.classes)]
    for c, row in zip(r.classes, r.confusion_matrix):
        lines.append(f"{c:>7}" + "".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)


def _regression_text(r: RegressionResult) -> str:
    width = max(8, *(len(c) for c in r.columns))
    lines = [f"{r.output} vs {r.label}: regression, {r.rows:,} rows",
             f"{'column':<{width}}  {'MAE':>11}  {'RMSE':>11}  {'max error':>11}  {'R²':>9}"]
    for c, mae, rmse, worst, r2 in zip(r.columns, r.mae, r.rmse, r.max_error, r.r2):
        r2_text = f"{r2:9.5f}" if np.isfinite(r2) else f"{'undefined':>9}"
        lines.append(f"{c:<{width}}  {mae:11.5g}  {rmse:11.5g}  {worst:11.5g}  {r2_text}")
    return "\n".join(lines)


def write_files(evaluation: Evaluation, folder: Path, plots: bool) -> None:
    """The evaluation's files in ``folder``; a note if pictures were asked for but cannot be drawn."""
    classified = [r for r in evaluation.results if isinstance(r, ClassificationResult)]
    regressed = [r for r in evaluation.results if isinstance(r, RegressionResult)]
    figure_class = _figure_class() if plots else None
    files = []
    for r in classified:
        name = _file_name("confusion_matrix", r, len(classified))
        with atomic_output(folder / f"{name}.csv", "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow([f"{r.label} \\ {r.output}"] + r.classes)
            writer.writerows([c] + row for c, row in zip(r.classes, r.confusion_matrix.tolist()))
        files.append(f"{name}.csv")
        if figure_class is not None:
            _save(_confusion_figure(figure_class, r), folder / f"{name}.png")
            files.append(f"{name}.png")
    for regression in regressed:
        if figure_class is not None:
            name = _file_name("residuals", regression, len(regressed))
            _save(_residuals_figure(figure_class, regression), folder / f"{name}.png")
            files.append(f"{name}.png")
    files.append("summary.json")
    evaluation.files += [str(folder / name) for name in files]
    if plots and figure_class is None:
        evaluation.notes.append(PLOT_HINT)
    with atomic_output(folder / "summary.json", "w", encoding="utf-8") as f:
        json.dump(evaluation.as_dict(), f, indent=1, allow_nan=False)
        f.write("\n")


def _file_name(stem: str, result: Result, count: int) -> str:
    """``stem``, or with several outputs ``stem_<output>`` (the output's name made file-safe)."""
    return stem if count == 1 else f"{stem}_{re.sub(r'[^A-Za-z0-9_-]+', '_', result.output).strip('_') or 'output'}"


def json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _figure_class() -> Any:
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return Figure


def _save(figure: Any, path: Path) -> None:
    # Figure.savefig with Agg needs no pyplot (no global state, no display).
    with atomic_output(path, "wb") as f:
        figure.savefig(f, format="png", dpi=100)


def _confusion_figure(figure_class: Any, r: ClassificationResult) -> Any:
    classes = len(r.classes)
    size = min(14.0, max(5.0, 0.55 * classes + 2.5))
    figure = figure_class(figsize=(size + 1.2, size), layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(r.confusion_matrix, cmap="Blues", interpolation="nearest")
    figure.colorbar(image, ax=axes, label="rows", shrink=0.8)
    ticks = np.arange(classes)
    step = max(1, classes // 40)
    axes.set_xticks(ticks[::step], [r.classes[i] for i in ticks[::step]])
    axes.set_yticks(ticks[::step], [r.classes[i] for i in ticks[::step]])
    axes.set_xlabel(f"predicted class ({r.output})")
    axes.set_ylabel(f"true class ({r.label})")
    axes.set_title(f"Confusion matrix: {r.output} vs {r.label}\n"
                   f"accuracy {100 * r.accuracy:.2f}% ({r.correct:,} of {r.rows:,} rows), "
                   f"avg. F-measure {r.avg_f_measure:.3f}")
    if classes <= _MAX_ANNOTATED_CLASSES:
        threshold = r.confusion_matrix.max() / 2
        font = 10 if classes <= 12 else 8 if classes <= 20 else 6
        for (i, j), count in np.ndenumerate(r.confusion_matrix):
            axes.text(j, i, f"{count:,}", ha="center", va="center", fontsize=font,
                      color="white" if count > threshold else ("#a0a0a0" if count == 0 else "black"))
    return figure


def _residuals_figure(figure_class: Any, r: RegressionResult) -> Any:
    panels = len(r.columns) if len(r.columns) <= _MAX_RESIDUAL_PANELS else 1
    columns = min(panels, 3)
    rows = -(-panels // columns)
    figure = figure_class(figsize=(4.8 * columns, 4.6 * rows), layout="constrained")
    for k in range(panels):
        axes = figure.add_subplot(rows, columns, k + 1)
        if panels == 1 and len(r.columns) > 1:  # too many columns for a panel each: all together
            true, predicted = r.true.ravel(), r.predicted.ravel()
            title = f"{r.output} (all {len(r.columns)} columns) vs {r.label}"
            mae = float(np.mean(np.abs(predicted - true)))
            subtitle = f"MAE {mae:.4g}"
        else:
            true, predicted = r.true[:, k], r.predicted[:, k]
            title = f"{r.columns[k]} vs {r.label_columns[k]}"
            r2 = f"R² {r.r2[k]:.4f}" if np.isfinite(r.r2[k]) else "R² undefined"
            subtitle = f"{r2}, MAE {r.mae[k]:.4g}, RMSE {r.rmse[k]:.4g}"
        axes.scatter(true, predicted, s=8, alpha=0.6, label="rows" if len(true) == r.rows else "values")
        low, high = float(min(true.min(), predicted.min())), float(max(true.max(), predicted.max()))
        axes.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1, label="predicted = true")
        axes.set_xlabel(f"true ({title.split(' vs ')[1]})")
        axes.set_ylabel(f"predicted ({title.split(' vs ')[0]})")
        axes.set_title(f"{title}: {len(true):,} values\n{subtitle}", fontsize=10)
        axes.legend(loc="upper left", fontsize=8)
        axes.grid(True, alpha=0.3)
    return figure
