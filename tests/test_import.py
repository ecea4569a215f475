"""`import nncbridge` stays light: no nnabla, onnx, onnxruntime (nor numpy/protobuf) until used."""
from __future__ import annotations

import json
import subprocess
import sys


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
