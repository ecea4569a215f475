"""The shape of the ONNX graphs we write: no leftover initializers or renaming Identity nodes."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort

import nncbridge

from .models import write_nnp

BN_NNTXT = """
network {
  name: "MainRuntime"
  batch_size: 1
  variable { name: "Input" type: "Buffer" shape: { dim: -1 dim: 3 dim: 2 dim: 2 } }
  variable { name: "BN/bn/beta" type: "Parameter" shape: { dim: 1 dim: 3 dim: 1 dim: 1 } }
  variable { name: "BN/bn/gamma" type: "Parameter" shape: { dim: 1 dim: 3 dim: 1 dim: 1 } }
  variable { name: "BN/bn/mean" type: "Parameter" shape: { dim: 1 dim: 3 dim: 1 dim: 1 } }
  variable { name: "BN/bn/var" type: "Parameter" shape: { dim: 1 dim: 3 dim: 1 dim: 1 } }
  variable { name: "BN" type: "Buffer" shape: { dim: -1 dim: 3 dim: 2 dim: 2 } }
  variable { name: "ReLU" type: "Buffer" shape: { dim: -1 dim: 3 dim: 2 dim: 2 } }
  function {
    name: "BN" type: "BatchNormalization"
    input: "Input" input: "BN/bn/beta" input: "BN/bn/gamma" input: "BN/bn/mean" input: "BN/bn/var"
    output: "BN"
    batch_normalization_param { axes: 1 decay_rate: 0.9 eps: 0.001 batch_stat: false }
  }
  function { name: "ReLU" type: "ReLU" input: "BN" output: "ReLU" }
}
executor {
  name: "Executor"
  network_name: "MainRuntime"
  data_variable { variable_name: "Input" data_name: "x" }
  output_variable { variable_name: "ReLU" data_name: "y'" }
}
"""


def test_folded_parameters_leave_no_initializers_and_results_follow_the_formula(tmp_path):
    rng = np.random.RandomState(3)
    c = (1, 3, 1, 1)
    params = {"BN/bn/beta": rng.randn(*c), "BN/bn/gamma": rng.randn(*c), "BN/bn/mean": rng.randn(*c),
              "BN/bn/var": rng.uniform(0.5, 2, c)}
    params = {k: v.astype(np.float32) for k, v in params.items()}
    path = write_nnp(tmp_path / "bn.nnp", BN_NNTXT, params)
    proto = nncbridge.to_onnx(path)
    used = {name for node in proto.graph.node for name in node.input}
    assert [t.name for t in proto.graph.initializer if t.name not in used] == []
    assert "Identity" not in [n.op_type for n in proto.graph.node]
    assert [o.name for o in proto.graph.output] == ["ReLU"]

    x = rng.randn(4, 3, 2, 2).astype(np.float32)
    expected = np.maximum(params["BN/bn/gamma"] * (x - params["BN/bn/mean"])
                          / np.sqrt(params["BN/bn/var"] + 0.001) + params["BN/bn/beta"], 0)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"Input": x})[0], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(nncbridge.load(path).predict(x), expected, rtol=1e-5, atol=1e-6)


def test_shared_exports_have_no_renaming_identities_or_unused_initializers(shared_exports):
    for path in sorted(shared_exports.glob("*/*.nnp")):
        proto = nncbridge.to_onnx(path)
        used = {name for node in proto.graph.node for name in node.input}
        assert all(t.name in used for t in proto.graph.initializer), path
        assert "Identity" not in [n.op_type for n in proto.graph.node], path
