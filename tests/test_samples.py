"""The shipped sample projects: accuracy from the data's own labels, clean checks, nnabla agreement."""
from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nncbridge
from nncbridge.dataset.batch import predict_csv

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "sample_projects" / "digits"
SIAMESE = ROOT / "sample_projects" / "siamese"


def _labels(csv_path: Path) -> tuple[list[Path], np.ndarray]:
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    head = [h.split(":")[0] for h in rows[0]]
    x, y = head.index("x"), head.index("y")
    return [csv_path.parent / r[x] for r in rows[1:]], np.array([int(r[y]) for r in rows[1:]])


def _load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_digits_accuracy_through_predict_csv(tmp_path):
    out = tmp_path / "predictions.csv"
    predict_csv(nncbridge.load(DIGITS / "digits.nnp"), DIGITS / "data" / "test.csv", out)
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    scores = np.array([[float(r[i]) for i, h in enumerate(header) if h.startswith("y'__")] for r in rows[1:]])
    labels = np.array([int(r[header.index("y:label")]) for r in rows[1:]])
    assert len(labels) == 297 and scores.shape == (297, 10)
    accuracy = float((scores.argmax(axis=1) == labels).mean())
    assert accuracy >= 0.97, accuracy


def test_demo_report_prints_accuracy(tmp_path):
    out = tmp_path / "p.csv"
    predict_csv(nncbridge.load(DIGITS / "digits.nnp"), DIGITS / "data" / "test.csv", out)
    done = subprocess.run([sys.executable, str(DIGITS / "report.py"), str(out)], capture_output=True, text=True)
    assert done.returncode == 0 and "accuracy" in done.stdout and "297 images" in done.stdout


@pytest.mark.parametrize("model", [DIGITS / "digits.nnp", SIAMESE / "siamese.nnp"])
def test_samples_pass_check(model):
    assert [p for p in nncbridge.check(model) if p.severity == "error"] == []


def test_samples_have_console_layout():
    for path, output in ((DIGITS / "digits.nnp", "Softmax"), (SIAMESE / "siamese.nnp", "Affine_2")):
        model = nncbridge.read(path)
        assert set(model.networks) == {"Main", "MainValidation", "MainRuntime"}
        exe = model.executors["Executor"]
        assert exe.network == "MainRuntime"
        assert [(d.variable, d.data_name) for d in exe.data] == [("Input", "x")]
        assert [(o.variable, o.data_name) for o in exe.outputs] == [(output, "y'")]
        assert set(model.datasets) == {"Training", "Validation"} and model.optimizers
        assert model.source.network_encoding == "text" and model.source.parameter_format == "protobuf"


def test_siamese_knn_accuracy(tmp_path):
    pytest.importorskip("sklearn")
    maker = _load_module(ROOT / "sample_projects" / "make_digit_pngs.py", "make_digit_pngs")
    assert maker.main(["--out", str(tmp_path)]) == 0
    demo = _load_module(SIAMESE / "demo.py", "siamese_demo")
    predictor = nncbridge.load(SIAMESE / "siamese.nnp")
    gallery_paths, gallery_labels = _labels(tmp_path / "train.csv")
    test_paths, test_labels = _labels(DIGITS / "data" / "test.csv")
    assert len(gallery_paths) == 1500
    gallery = predictor.predict(gallery_paths)
    queries = predictor.predict(test_paths)
    assert gallery.shape == (1500, 2) and queries.shape == (297, 2)
    accuracy = float((demo.knn_predict(gallery, gallery_labels, queries, k=5) == test_labels).mean())
    assert accuracy >= 0.90, accuracy


@pytest.mark.nnabla
@pytest.mark.parametrize("model", [DIGITS / "digits.nnp", SIAMESE / "siamese.nnp"])
def test_nnabla_and_nncbridge_agree_on_samples(model):
    import nnabla as nn

    nn.clear_parameters()  # both samples name a parameter Affine_2/affine/W with different shapes
    paths, _ = _labels(DIGITS / "data" / "test.csv")
    ours = nncbridge.load(model, backend="onnxruntime").predict(paths[:64])
    theirs = nncbridge.load(model, backend="nnabla").predict(paths[:64])
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5 * max(1.0, float(np.abs(theirs).max())))


@pytest.mark.nnabla
def test_nnabla_cli_forward_runs_the_digits_sample(tmp_path):
    cli = Path(sys.executable).parent / "nnabla_cli"
    done = subprocess.run([str(cli), "forward", "-c", str(DIGITS / "digits.nnp"), "-d", str(DIGITS / "data" / "test.csv"),
                           "-o", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    ours = tmp_path / "ours.csv"
    predict_csv(nncbridge.load(DIGITS / "digits.nnp"), DIGITS / "data" / "test.csv", ours)
    with open(tmp_path / "output_result.csv", newline="", encoding="utf-8") as f:
        reference = list(csv.reader(f))
    with open(ours, newline="", encoding="utf-8") as f:
        mine = list(csv.reader(f))
    assert mine[0] == reference[0]
    assert [r[:2] for r in mine] == [r[:2] for r in reference]
    # onnxruntime's NCHWc convolution kernels (which it uses for the default opset, as for
    # nnabla-converter's files) sum in another order than nnabla: the largest difference of these
    # 2,970 float32 values is 1.1e-6, on 0.5605 (about 18 units in the last place).
    np.testing.assert_allclose(np.array([r[2:] for r in mine[1:]], float), np.array([r[2:] for r in reference[1:]], float),
                               rtol=0, atol=2e-6)
