"""`nncbridge evaluate`: Console's Evaluation-tab numbers, checked against scikit-learn on Console's own
output CSVs (inside the exported .nnp files), on the digits sample and on the sin regression export."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn import metrics

import nncbridge
from nncbridge.cli import main
from nncbridge.errors import DatasetError
from tests.conftest import ROOT
from tests.reference import sin_references

DIGITS = ROOT / "sample_projects" / "digits"


def console_output_csv(exports: Path, model: str, folder: Path) -> Path:
    """Console's own evaluation output (output_result.csv inside output_result.zip inside the .nnp)."""
    with zipfile.ZipFile(exports / "mnist-4or9-and-lenet" / model) as nnp:
        inner = zipfile.ZipFile(io.BytesIO(nnp.read("output_result.zip")))
    path = folder / f"{Path(model).stem}.csv"
    path.write_bytes(inner.read("output_result.csv"))
    return path


def read_columns(path: Path) -> tuple[list[str], np.ndarray, list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], np.array(rows[1:], dtype=object), rows[1:]


def numbers(table: np.ndarray, header: list[str], prefix: str) -> np.ndarray:
    indices = [i for i, h in enumerate(header) if h.split(":")[0] == prefix or h.startswith(prefix + "__")]
    return table[:, indices].astype(np.float64)


def assert_matches_sklearn(result, y_true: np.ndarray, y_pred: np.ndarray, classes: int) -> None:
    labels = list(range(classes))
    assert result.rows == len(y_true)
    np.testing.assert_array_equal(result.confusion_matrix, metrics.confusion_matrix(y_true, y_pred, labels=labels))
    assert result.accuracy == pytest.approx(metrics.accuracy_score(y_true, y_pred), abs=1e-15)
    precision, recall, f_measure, support = metrics.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0)
    np.testing.assert_allclose(result.precision, precision, rtol=1e-14)
    np.testing.assert_allclose(result.recall, recall, rtol=1e-14)
    np.testing.assert_allclose(result.f_measure, f_measure, rtol=1e-14)
    np.testing.assert_array_equal(result.support, support)
    macro = metrics.precision_recall_fscore_support(y_true, y_pred, labels=labels, average="macro", zero_division=0)
    assert (result.avg_precision, result.avg_recall, result.avg_f_measure) == pytest.approx(macro[:3], rel=1e-14)


def test_console_lenet_output_matches_sklearn(shared_exports, tmp_path):
    path = console_output_csv(shared_exports, "lenet-10class-2017.nnp", tmp_path)
    header, table, _ = read_columns(path)
    assert len(table) == 10_000
    y_true = numbers(table, header, "y")[:, 0].astype(int)
    y_pred = np.argmax(numbers(table, header, "y'"), axis=1)
    evaluation = nncbridge.evaluate_predictions(path)
    (result,) = evaluation.results
    assert result.kind == "classification" and result.output == "y'" and result.label == "y:label"
    assert_matches_sklearn(result, y_true, y_pred, 10)
    assert 0.97 < result.accuracy < 1  # a trained LeNet on MNIST's test set


def test_console_binary_output_matches_sklearn(shared_exports, tmp_path):
    path = console_output_csv(shared_exports, "binary-4or9-2018.nnp", tmp_path)
    header, table, _ = read_columns(path)
    assert len(table) == 500 and header[1] == "y:9"
    y_true = numbers(table, header, "y")[:, 0].astype(int)
    y_pred = (numbers(table, header, "y'")[:, 0] > 0.5).astype(int)  # Console: round(y')
    (result,) = nncbridge.evaluate_predictions(path).results
    assert result.kind == "classification" and result.classes == ["0", "1"]
    assert_matches_sklearn(result, y_true, y_pred, 2)


def test_console_output_through_cli_json(shared_exports, tmp_path, capsys):
    path = console_output_csv(shared_exports, "binary-4or9-2018.nnp", tmp_path)
    assert main(["evaluate", "--predictions", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (output,) = report["outputs"]
    assert report["rows"] == 500 and output["kind"] == "classification"
    assert sum(map(sum, output["confusion_matrix"])) == 500
    assert [c["support"] for c in output["classes"]] == [sum(row) for row in output["confusion_matrix"]]


def test_digits_sample_reports_its_published_accuracy(tmp_path):
    out = tmp_path / "report"
    done = subprocess.run([sys.executable, "-m", "nncbridge", "evaluate", str(DIGITS / "digits.nnp"),
                           str(DIGITS / "data" / "test.csv"), "-o", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "accuracy 98.99% (294/297)" in done.stdout
    assert {p.name for p in out.iterdir()} == {"output_result.csv", "confusion_matrix.csv", "confusion_matrix.png",
                                                "summary.json"}
    header, table, _ = read_columns(out / "output_result.csv")
    assert header[:2] == ["x:image", "y:label"] and header[2:] == [f"y'__{i}" for i in range(10)]
    y_true = table[:, 1].astype(int)
    y_pred = np.argmax(table[:, 2:].astype(np.float64), axis=1)
    assert metrics.accuracy_score(y_true, y_pred, normalize=False) == 294
    with open(out / "confusion_matrix.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["y:label \\ y'"] + [str(i) for i in range(10)]
    np.testing.assert_array_equal(np.array([r[1:] for r in rows[1:]], dtype=int),
                                  metrics.confusion_matrix(y_true, y_pred, labels=list(range(10))))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows"] == 297 and summary["outputs"][0]["correct"] == 294
    with Image.open(out / "confusion_matrix.png") as image:
        assert image.format == "PNG" and min(image.size) >= 400


def test_library_call_with_a_predictor(tmp_path):
    predictor = nncbridge.load(DIGITS / "digits.nnp")
    assert predictor.outputs[0].function == "Softmax"
    evaluation = nncbridge.evaluate(predictor, DIGITS / "data" / "test.csv")
    assert isinstance(evaluation, nncbridge.Evaluation)
    assert (evaluation.results[0].correct, evaluation.rows, evaluation.files) == (294, 297, [])
    assert "accuracy 98.99% (294/297)" in evaluation.text()


def test_sin_regression_matches_sklearn(shared_exports, tmp_path):
    folder = shared_exports / "sin-regression"
    predictor = nncbridge.load(folder / "result.nnp")
    assert predictor.outputs[0].function == "Affine"
    evaluation = nncbridge.evaluate(predictor, folder / "sin_Validation.csv", tmp_path)
    (result,) = evaluation.results
    assert result.kind == "regression" and result.columns == ["y'"] and result.label_columns == ["y__0:out"]
    header, table, _ = read_columns(tmp_path / "output_result.csv")
    assert header == ["x__0:in", "y__0:out", "y'"] and len(table) == 360
    true, predicted = table[:, 1].astype(np.float64), table[:, 2].astype(np.float64)
    for (x, y, y_hat), row in zip(sin_references(shared_exports), table):  # the predictions are nnabla's
        assert (float(row[0]), float(row[1])) == (x, y) and float(row[2]) == pytest.approx(y_hat, abs=1e-6)
    assert result.mae[0] == pytest.approx(metrics.mean_absolute_error(true, predicted), rel=1e-12)
    assert result.rmse[0] == pytest.approx(np.sqrt(metrics.mean_squared_error(true, predicted)), rel=1e-12)
    assert result.max_error[0] == pytest.approx(metrics.max_error(true, predicted), rel=1e-12)
    assert result.r2[0] == pytest.approx(metrics.r2_score(true, predicted), rel=1e-12)
    assert {Path(f).name for f in evaluation.files} == {"output_result.csv", "residuals.png", "summary.json"}
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["outputs"][0]["columns"][0]["r2"] == pytest.approx(result.r2[0])


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_one_hot_labels_and_vector_regression_from_first_principles(tmp_path):
    rng = np.random.default_rng(3)
    scores = rng.dirichlet(np.ones(3), size=40)
    true = rng.integers(0, 3, size=40)
    one_hot = np.eye(3)[true]
    path = write_csv(tmp_path / "onehot.csv", ["x", "y__0", "y__1", "y__2", "y'__0", "y'__1", "y'__2"],
                     [[i, *map(int, one_hot[i]), *scores[i]] for i in range(40)])
    (result,) = nncbridge.evaluate_predictions(path).results
    assert_matches_sklearn(result, true, np.argmax(scores, axis=1), 3)

    targets = rng.normal(size=(30, 2))
    outputs = targets + rng.normal(scale=0.1, size=(30, 2))
    path = write_csv(tmp_path / "vector.csv", ["x", "z__0", "z__1", "z'__0", "z'__1"],
                     [[i, *targets[i], *outputs[i]] for i in range(30)])
    (result,) = nncbridge.evaluate_predictions(path).results
    assert result.kind == "regression" and result.columns == ["z'__0", "z'__1"]
    error = outputs - targets
    np.testing.assert_allclose(result.mae, np.abs(error).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(result.rmse, np.sqrt((error ** 2).mean(axis=0)), rtol=1e-12)
    np.testing.assert_allclose(result.max_error, np.abs(error).max(axis=0), rtol=1e-12)
    np.testing.assert_allclose(result.r2, 1 - (error ** 2).sum(axis=0) / ((targets - targets.mean(axis=0)) ** 2).sum(axis=0),
                               rtol=1e-12)
    assert nncbridge.evaluate_predictions(path, task="regression").results[0].kind == "regression"


def test_task_option_and_class_absent_from_labels(tmp_path):
    # Integer labels with values in [0, 1]: auto reads a classification; --task regression overrides.
    path = write_csv(tmp_path / "p.csv", ["y", "y'"], [[0, 0.2], [1, 0.9], [1, 0.4], [0, 0.5]])
    (result,) = nncbridge.evaluate_predictions(path).results
    np.testing.assert_array_equal(result.confusion_matrix, [[2, 0], [1, 1]])  # 0.5 is not above 0.5
    (result,) = nncbridge.evaluate_predictions(path, task="regression").results
    assert result.kind == "regression" and result.max_error[0] == pytest.approx(0.6)
    # Class 2 never occurs as a label: it keeps its (empty) row, and every row is counted.
    path = write_csv(tmp_path / "q.csv", ["y", "y'__0", "y'__1", "y'__2"], [[0, 0.9, 0, 0.1], [1, 0, 0.2, 0.8]])
    (result,) = nncbridge.evaluate_predictions(path).results
    assert_matches_sklearn(result, np.array([0, 1]), np.array([0, 2]), 3)


@pytest.mark.parametrize(("cell", "expected"), [
    ("seven", "line 3: column 'y:label': 'seven' is not a number"),
    ("", "line 3: column 'y:label': '' is not a number"),
    ("10", "line 3: column 'y:label': '10' is not a class index (a whole number from 0 to 9 for the 10 values of output \"y'\")"),
    ("2.5", "'2.5' is not a class index"),
    ("-1", "'-1' is not a class index"),
])
def test_bad_label_cells_name_line_and_column(tmp_path, cell, expected):
    images = DIGITS / "data" / "test"
    dataset = write_csv(tmp_path / "d.csv", ["x:image", "y:label"], [[images / "0001.png", "7"], [images / "0002.png", cell]])
    with pytest.raises(DatasetError) as error:
        nncbridge.evaluate(DIGITS / "digits.nnp", dataset)
    assert expected in str(error.value) and str(dataset) in str(error.value)
    evaluation = nncbridge.evaluate(DIGITS / "digits.nnp", dataset, skip_errors=True)
    assert evaluation.rows == 1 and len(evaluation.skipped) == 1 and expected in evaluation.skipped[0]


def test_binary_label_out_of_range_and_missing_label_column(tmp_path, shared_exports):
    model = shared_exports / "mnist-4or9-and-lenet" / "binary-4or9-2018.nnp"
    image = (shared_exports / "mnist-4or9-and-lenet" / "images" / "001.png").resolve()
    dataset = write_csv(tmp_path / "d.csv", ["x:image", "y:9"], [[image, 1], [image, 2]])
    with pytest.raises(DatasetError, match=r"line 3: column 'y:9': '2' is not a class index \(0 or 1 for the "
                                           r"probability of output \"y'\"\)"):
        nncbridge.evaluate(model, dataset)
    dataset = write_csv(tmp_path / "e.csv", ["x:image", "label"], [[image, 1]])
    with pytest.raises(DatasetError, match=r"no label column for any output \(expected 'y' for \"y'\""):
        nncbridge.evaluate(model, dataset)


def test_cli_errors_are_one_line_with_exit_2(tmp_path):
    dataset = write_csv(tmp_path / "d.csv", ["y:label", "y'__0", "y'__1"], [[0, 0.1, 0.9], ["x", 0.3, 0.7]])
    for args in (["--predictions", str(dataset)], [str(DIGITS / "digits.nnp")],
                 ["--predictions", str(dataset), str(DIGITS / "digits.nnp"), str(dataset)],
                 ["--predictions", str(tmp_path / "missing.csv")]):
        done = subprocess.run([sys.executable, "-m", "nncbridge", "evaluate", *args],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.startswith("nncbridge evaluate: error: ") and done.stderr.count("\n") == 1, done.stderr
    done = subprocess.run([sys.executable, "-m", "nncbridge", "evaluate", "--predictions", str(dataset)],
                          capture_output=True, text=True, timeout=120)
    assert f"{dataset}: line 3: column 'y:label': 'x' is not a number" in done.stderr


def test_files_without_matplotlib(tmp_path, monkeypatch, capsys):
    path = write_csv(tmp_path / "p.csv", ["y", "y'__0", "y'__1"], [[0, 0.8, 0.2], [1, 0.3, 0.7], [1, 0.6, 0.4]])
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["evaluate", "--predictions", str(path), "-o", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"confusion_matrix.csv", "summary.json"}
    assert captured.err.strip() == 'pictures not drawn: matplotlib is not installed (pip install "nncbridge[plot]")'
    assert "accuracy 66.67% (2/3)" in captured.out


def test_several_outputs_get_their_own_files(tmp_path):
    rng = np.random.default_rng(5)
    header = ["y", "y'__0", "y'__1", "w", "w'__0", "w'__1", "w'__2"] + [f"v__{i}" for i in range(8)] + \
        [f"v'__{i}" for i in range(8)] + ["u'"]
    rows = [[i % 2, *rng.random(2), i % 3, *rng.random(3), *rng.normal(size=8), *rng.normal(size=8), 0.5]
            for i in range(12)]
    evaluation = nncbridge.evaluate_predictions(write_csv(tmp_path / "p.csv", header, rows), tmp_path / "out")
    assert [r.output for r in evaluation.results] == ["y'", "w'", "v'"] and evaluation.unlabelled == ["u'"]
    assert [r.kind for r in evaluation.results] == ["classification", "classification", "regression"]
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "confusion_matrix_y.csv", "confusion_matrix_y.png", "confusion_matrix_w.csv", "confusion_matrix_w.png",
        "residuals.png", "summary.json"}
    assert "not scored (no label column): u'" in evaluation.text()
    with Image.open(tmp_path / "out" / "residuals.png") as image:  # 8 columns: drawn together in one panel
        assert image.format == "PNG"


def test_short_rows_empty_datasets_and_impossible_tasks(tmp_path):
    image = DIGITS / "data" / "test" / "0001.png"
    dataset = write_csv(tmp_path / "short.csv", ["x:image", "y:label"], [[image, 7], [image]])
    with pytest.raises(DatasetError, match=r"short.csv: line 3: column 'y:label': missing \(the row has only 1 cell\)$"):
        nncbridge.evaluate(DIGITS / "digits.nnp", dataset)
    empty = write_csv(tmp_path / "empty.csv", ["x:image", "y:label"], [])
    with pytest.raises(DatasetError, match=f"^{empty}: no rows to evaluate$"):
        nncbridge.evaluate(DIGITS / "digits.nnp", empty)
    with pytest.raises(DatasetError, match=r"output \"y'\" has 10 values per row but its label 'y' has 1 column "
                                           r"\('y:label' …\); expected 10 label columns, one per value"):
        nncbridge.evaluate(DIGITS / "digits.nnp", dataset, task="regression")
    with pytest.raises(DatasetError, match="task must be one of auto, classification, regression"):
        nncbridge.evaluate(DIGITS / "digits.nnp", dataset, task="ranking")


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path):
    classes = 200  # the report's confusion matrix is far larger than a pipe's buffer
    path = write_csv(tmp_path / "p.csv", ["y"] + [f"y'__{i}" for i in range(classes)],
                     [[i % classes] + [1.0 if j == i % classes else 0.0 for j in range(classes)] for i in range(400)])
    with subprocess.Popen([sys.executable, "-m", "nncbridge", "evaluate", "--predictions", str(path)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.read(20).startswith(b"y' vs y")
        process.stdout.close()  # like `| head`
        stderr = process.stderr.read().decode()
        assert process.wait(timeout=120) == 1 and stderr == "", stderr


def test_a_pipe_as_dataset_is_refused(tmp_path):
    fifo = tmp_path / "labels.csv"
    os.mkfifo(fifo)
    with pytest.raises(DatasetError, match="not a regular file; evaluate reads the dataset twice"):
        nncbridge.evaluate(DIGITS / "digits.nnp", fifo)
