"""The nnabla backend and the onnxruntime backend give the same results (nnabla environment)."""
from __future__ import annotations

import numpy as np
import pytest

import nncbridge

pytestmark = pytest.mark.nnabla


@pytest.mark.parametrize("path", ["mnist-4or9-and-lenet/lenet-10class-2017.nnp", "mnist-4or9-and-lenet/binary-4or9-2018.nnp"])
def test_image_models(shared_exports, path):
    images = sorted((shared_exports / "mnist-4or9-and-lenet" / "images").glob("*.png"))
    a = nncbridge.load(shared_exports / path, backend="onnxruntime").predict(images)
    b_predictor = nncbridge.load(shared_exports / path, backend="nnabla")
    assert b_predictor.backend == "nnabla"
    b = b_predictor.predict(images)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * max(1.0, float(np.abs(b).max())))


def test_sin_regression(shared_exports):
    x = np.linspace(0, 6, 50, dtype=np.float32)[:, None]
    path = shared_exports / "sin-regression" / "result.nnp"
    a = nncbridge.load(path, backend="onnxruntime").predict(x)
    b = nncbridge.load(path, backend="nnabla").predict(x)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
