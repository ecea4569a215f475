"""The real Console exports load, convert and reproduce nnabla's reference outputs (README of shared/)."""
from __future__ import annotations

import csv
import shutil
import subprocess
import sys

import numpy as np
import pytest

import nncbridge
from tests.reference import image_references, sin_references

MNIST = "mnist-4or9-and-lenet"


@pytest.mark.parametrize("model_name", ["binary-4or9-2018.nnp", "lenet-10class-2017.nnp"])
def test_image_models_match_nnabla_reference_through_api(shared_exports, model_name):
    refs = image_references(shared_exports)[model_name]
    predictor = nncbridge.load(shared_exports / MNIST / model_name)
    images = [shared_exports / MNIST / "images" / name for name in refs]
    got = predictor.predict(images)
    want = np.stack(list(refs.values()))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_lenet_argmax_is_4_4_9_9(shared_exports):
    predictor = nncbridge.load(shared_exports / MNIST / "lenet-10class-2017.nnp")
    images = sorted((shared_exports / MNIST / "images").glob("*.png"))
    assert list(predictor.predict(images).argmax(axis=1)) == [4, 4, 9, 9]


def test_sin_regression_matches_reference_through_api(shared_exports):
    refs = sin_references(shared_exports)
    assert len(refs) >= 3
    predictor = nncbridge.load(shared_exports / "sin-regression" / "result.nnp")
    x = np.array([[r[0]] for r in refs], dtype=np.float32)
    np.testing.assert_allclose(predictor.predict(x)[:, 0], [r[2] for r in refs], rtol=0, atol=1e-6)


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nncbridge", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("model_name", ["binary-4or9-2018.nnp", "lenet-10class-2017.nnp"])
def test_image_models_through_cli(shared_exports, tmp_path, model_name):
    refs = image_references(shared_exports)[model_name]
    shutil.copytree(shared_exports / MNIST / "images", tmp_path / "images")
    (tmp_path / "data.csv").write_text("x:image\n" + "".join(f"images/{n}\n" for n in refs), encoding="utf-8")
    out = tmp_path / "result" / "out.csv"  # the folder does not exist yet
    done = _run_cli("predict", str(shared_exports / MNIST / model_name), str(tmp_path / "data.csv"), "-o", str(out))
    assert done.returncode == 0, done.stderr
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    width = len(next(iter(refs.values())))
    expected_header = ["x:image"] + (["y'"] if width == 1 else [f"y'__{i}" for i in range(width)])
    assert rows[0] == expected_header
    assert [r[0] for r in rows[1:]] == [f"./images/{n}" for n in refs]
    got = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
    np.testing.assert_allclose(got, np.stack(list(refs.values())), rtol=0, atol=1e-6)


def test_windows_style_paths_in_a_dataset_resolve_as_in_nnabla(shared_exports, tmp_path):
    # nnabla reads a backslash in a dataset path as a folder separator (datasets made on Windows),
    # and nnabla_cli forward writes such a cell back as ./images/001.png. Checked with nnabla 1.39
    # on the image rows and, in a dataset of its own, the matrix-file row (a dataset mixing both
    # makes nnabla_cli hang).
    refs = image_references(shared_exports)["binary-4or9-2018.nnp"]
    names = list(refs)
    shutil.copytree(shared_exports / MNIST / "images", tmp_path / "images")
    (tmp_path / "pixels").mkdir()
    from PIL import Image

    pixels = np.asarray(Image.open(tmp_path / "images" / names[3]), dtype=np.float32) / 255
    np.savetxt(tmp_path / "pixels" / "last.csv", pixels, delimiter=",", fmt="%.9g")
    cells = [f".\\images\\{names[0]}", f"images\\{names[1]}", f"images/{names[2]}", "pixels\\last.csv"]
    (tmp_path / "data.csv").write_text("x:image\n" + "".join(f"{c}\n" for c in cells), encoding="utf-8")
    out = tmp_path / "out.csv"
    done = _run_cli("predict", str(shared_exports / MNIST / "binary-4or9-2018.nnp"), str(tmp_path / "data.csv"),
                    "-o", str(out))
    assert done.returncode == 0, done.stderr
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))[1:]
    assert [r[0] for r in rows] == [f"./images/{n}" for n in names[:3]] + ["./pixels/last.csv"]
    np.testing.assert_allclose([float(r[1]) for r in rows], [refs[n][0] for n in names], rtol=0, atol=1e-6)


def test_sin_regression_through_cli(shared_exports, tmp_path):
    refs = sin_references(shared_exports)
    out = tmp_path / "sin.csv"
    done = _run_cli("predict", str(shared_exports / "sin-regression" / "result.nnp"),
                    str(shared_exports / "sin-regression" / "sin_Validation.csv"), "-o", str(out), "--json")
    assert done.returncode == 0, done.stderr
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["x__0:in", "y__0:out", "y'"]
    assert len(rows) == 361
    for row, (x, y, y_pred) in zip(rows[1:], refs):
        assert float(row[0]) == x and float(row[1]) == y
        assert abs(float(row[2]) - y_pred) <= 1e-6


@pytest.mark.parametrize("path", ["mnist-4or9-and-lenet/binary-4or9-2018.nnp", "mnist-4or9-and-lenet/lenet-10class-2017.nnp",
                                  "sin-regression/result.nnp"])
def test_shared_exports_convert_and_pass_onnx_checker(shared_exports, tmp_path, path):
    import onnx

    out = tmp_path / "model.onnx"
    done = _run_cli("convert", str(shared_exports / path), str(out))
    assert done.returncode == 0, done.stderr
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto, full_check=True)
    assert not {i.name for i in proto.graph.initializer} & {i.name for i in proto.graph.input}
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["nncbridge.executor"] == "Executor"
