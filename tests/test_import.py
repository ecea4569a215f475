"""`import nncbridge` stays light: no nnabla, onnx, onnxruntime (nor numpy/protobuf) until used."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_import_loads_no_heavy_packages():
    code = ("import sys, json, nncbridge; "
            "print(json.dumps([m for m in ('nnabla', 'onnx', 'onnxruntime', 'numpy', 'google.protobuf', 'h5py') "
            "if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_public_api_is_typed_and_small():
    import nncbridge

    assert set(nncbridge.__all__) >= {"read", "write", "check", "to_onnx", "load", "NncBridgeError"}
    from importlib import resources

    assert resources.files("nncbridge").joinpath("py.typed").is_file()


def test_returned_classes_are_importable_from_the_package():
    import pytest

    import nncbridge
    from nncbridge import Model, Predictor, Problem, TensorInfo

    digits = Path(__file__).resolve().parent.parent / "sample_projects" / "digits" / "digits.nnp"
    predictor = nncbridge.load(digits)
    assert isinstance(predictor, Predictor) and nncbridge.Predictor is Predictor
    assert all(isinstance(i, TensorInfo) for i in predictor.inputs + predictor.outputs)
    model = nncbridge.read(digits)
    assert isinstance(model, Model)
    problems = nncbridge.check(model)
    assert all(isinstance(p, Problem) for p in problems)
    assert {"Predictor", "TensorInfo", "Model", "Problem"} <= set(nncbridge.__all__)
    with pytest.raises(AttributeError, match="no attribute 'Predicter'"):
        nncbridge.Predicter  # noqa: B018
