"""Structural properties of our ONNX graphs that onnxruntime's speed relies on (issue 16), with the
numbers they compute checked from first principles. No timing here: benchmarks/bench_graphs.py
measures the speed these properties buy.

- the default opset is one whose op versions onnxruntime's optimizers recognise: the installed
  onnxruntime fuses Conv + BatchNormalization and uses the same NCHWc kernels as at opset 13;
- the symbolic batch needs no Shape / Slice / Concat chain: reshapes are static (0 / -1);
- no Identity node renames a computed tensor, and no Reshape runs on a constant.
"""
from __future__ import annotations

import collections
import os
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import numpy_helper

import nncbridge
from nncbridge.export.onnx_export import FAST_OPSET, default_opset, newest_onnxruntime_opset, to_onnx
from tests.models import write_nnp
from tests.nntxt import executor, fn, network, param, var

ROOT = Path(__file__).resolve().parent.parent
CONV = ('convolution_param { pad { dim: 1 dim: 1 } stride { dim: 1 dim: 1 } dilation { dim: 1 dim: 1 } '
        'group: 1 base_axis: 1 }')
BN = "batch_normalization_param { axes: 1 decay_rate: 0.9 eps: 1e-05 batch_stat: false }"
AVERAGE = ("average_pooling_param { kernel { dim: 2 dim: 2 } stride { dim: 2 dim: 2 } ignore_border: true "
           "pad { dim: 0 dim: 0 } including_pad: true }")
DEPTHWISE = "depthwise_convolution_param { base_axis: 1 pad { dim: 1 dim: 1 } stride { dim: 1 dim: 1 } dilation { dim: 1 dim: 1 } multiplier: 1 }"


def _params(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.RandomState(seed)
    return {k: (rng.uniform(0.5, 2.0, s) if k.endswith("/var") else rng.uniform(-1, 1, s)).astype(np.float32)
            for k, s in shapes.items()}


def conv_bn_pool(tmp_path: Path) -> Path:
    """Input 3x16x16 -> Convolution -> BatchNormalization -> ReLU -> DepthwiseConvolution ->
    BatchNormalization -> AveragePooling 2x2 -> Affine 10 (the layers of the slow export of issue 16)."""
    m = (-1, 8, 16, 16)
    shapes = {"Conv/conv/W": (8, 3, 3, 3), "Conv/conv/b": (8,), "DW/depthwise_conv/W": (8, 3, 3),
              **{f"BN{i}/bn/{p}": (1, 8, 1, 1) for i in (1, 2) for p in ("beta", "gamma", "mean", "var")},
              "Affine/affine/W": (8 * 8 * 8, 10), "Affine/affine/b": (10,)}
    body = var("Input", (-1, 3, 16, 16)) + "".join(param(k, s) for k, s in shapes.items())
    body += (var("Conv", m) + var("BN1", m) + var("ReLU", m) + var("DW", m) + var("BN2", m)
             + var("Pool", (-1, 8, 8, 8)) + var("Affine", (-1, 10))
             + fn("Conv", "Convolution", ["Input", "Conv/conv/W", "Conv/conv/b"], ["Conv"], [], CONV)
             + fn("BN1", "BatchNormalization", ["Conv"] + [f"BN1/bn/{p}" for p in ("beta", "gamma", "mean", "var")],
                  ["BN1"], [], BN)
             + fn("ReLU", "ReLU", ["BN1"], ["ReLU"])
             + fn("DW", "DepthwiseConvolution", ["ReLU", "DW/depthwise_conv/W"], ["DW"], [], DEPTHWISE)
             + fn("BN2", "BatchNormalization", ["DW"] + [f"BN2/bn/{p}" for p in ("beta", "gamma", "mean", "var")],
                  ["BN2"], [], BN)
             + fn("Pool", "AveragePooling", ["BN2"], ["Pool"], [], AVERAGE)
             + fn("Affine", "Affine", ["Pool", "Affine/affine/W", "Affine/affine/b"], ["Affine"], [],
                  "affine_param { base_axis: 1 }"))
    text = network("Main", {}, body) + executor("Main", ["Input"], ["Affine"])
    return write_nnp(tmp_path / "conv_bn_pool.nnp", text, _params(shapes))


def onnxruntime_optimized(proto) -> collections.Counter:
    """onnxruntime's own graph after its optimizations (domain:op -> count)."""
    import onnx

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    with tempfile.TemporaryDirectory() as tmp:
        options.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")
        ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
        optimized = onnx.load(options.optimized_model_filepath)
    return collections.Counter(f"{n.domain}:{n.op_type}" if n.domain else n.op_type for n in optimized.graph.node)


def installed_onnx_newest() -> int:
    import onnx.defs

    return int(onnx.defs.onnx_opset_version())


def test_default_opset_follows_the_installed_onnxruntime():
    assert default_opset() == min(FAST_OPSET, newest_onnxruntime_opset(), installed_onnx_newest())
    assert default_opset(for_onnxruntime_only=True) == min(FAST_OPSET, newest_onnxruntime_opset())
    assert nncbridge.to_onnx(ROOT / "sample_projects" / "digits" / "digits.nnp").opset_import[0].version == default_opset()


def test_onnxruntime_fuses_and_lays_out_the_default_opset_as_it_does_opset_13(tmp_path):
    path = conv_bn_pool(tmp_path)
    default = onnxruntime_optimized(to_onnx(path))
    baseline = onnxruntime_optimized(to_onnx(path, opset=13))
    assert "BatchNormalization" not in default, default  # folded into the convolutions
    assert default == baseline


def test_newer_opsets_that_onnxruntime_optimizes_less_are_still_available(tmp_path):
    path = conv_bn_pool(tmp_path)
    newest = min(newest_onnxruntime_opset(), installed_onnx_newest())
    proto = to_onnx(path, opset=newest)
    assert proto.opset_import[0].version == newest
    assert _run(proto, np.zeros((2, 3, 16, 16), np.float32)).shape == (2, 10)


def _run(proto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _ops(proto) -> collections.Counter:
    return collections.Counter(n.op_type for n in proto.graph.node)


def _assert_static(proto) -> None:
    ops = _ops(proto)
    assert not {"Shape", "Slice", "Concat"} & set(ops), ops
    initializers = {t.name for t in proto.graph.initializer}
    produced = {o for n in proto.graph.node for o in n.output}
    for node in proto.graph.node:
        if node.op_type == "Reshape":
            assert node.input[1] in initializers, "a Reshape target computed at run time"
            assert node.input[0] in produced or node.input[0] in {i.name for i in proto.graph.input}, \
                "a Reshape of a constant"
        if node.op_type == "Identity":
            assert node.input[0] not in produced, "an Identity renaming a computed tensor"


def test_affine_over_two_axes_and_weight_matrices_reshape_statically(tmp_path):
    """Affine with base_axis 2 and a (F, 2, 3) weight: y[n, t] = x[n, t] @ W + b, shape (N, T, 2, 3)."""
    shapes = {"Affine/affine/W": (4, 2, 3), "Affine/affine/b": (2, 3)}
    body = (var("Input", (-1, 5, 4)) + param("Affine/affine/W", (4, 2, 3)) + param("Affine/affine/b", (2, 3))
            + var("Affine", (-1, 5, 2, 3))
            + fn("Affine", "Affine", ["Input", "Affine/affine/W", "Affine/affine/b"], ["Affine"], [],
                 "affine_param { base_axis: 2 }"))
    params = _params(shapes)
    path = write_nnp(tmp_path / "affine.nnp", network("Main", {}, body) + executor("Main", ["Input"], ["Affine"]), params)
    proto = to_onnx(path)
    _assert_static(proto)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    w, b = params["Affine/affine/W"].reshape(4, 6), params["Affine/affine/b"].reshape(6)
    for batch in (1, 3):
        x = np.random.RandomState(batch).uniform(-1, 1, (batch, 5, 4)).astype(np.float32)
        expected = (x.reshape(-1, 4) @ w + b).reshape(batch, 5, 2, 3)
        np.testing.assert_allclose(_run(proto, x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kernel", [(2, 2), (1, 3), (3, 1)])
def test_unpooling_repeats_elements_without_shape_arithmetic(tmp_path, kernel):
    kh, kw = kernel
    body = (var("Input", (-1, 2, 3, 4)) + var("Unpool", (-1, 2, 3 * kh, 4 * kw))
            + fn("Unpool", "Unpooling", ["Input"], ["Unpool"], [],
                 f"unpooling_param {{ kernel {{ dim: {kh} dim: {kw} }} }}"))
    path = write_nnp(tmp_path / "unpool.nnp", network("Main", {}, body) + executor("Main", ["Input"], ["Unpool"]))
    proto = to_onnx(path)
    _assert_static(proto)
    for batch in (1, 2):
        x = np.random.RandomState(batch).uniform(-1, 1, (batch, 2, 3, 4)).astype(np.float32)
        np.testing.assert_array_equal(_run(proto, x), np.repeat(np.repeat(x, kh, axis=2), kw, axis=3))


def test_the_conv_model_has_no_shape_arithmetic_or_constant_reshapes(tmp_path):
    proto = to_onnx(conv_bn_pool(tmp_path))
    _assert_static(proto)
    assert _ops(proto)["Reshape"] == 0  # the depthwise weight is stored in Conv's layout
    assert "Pad" not in _ops(proto)  # AveragePool pads by itself


@pytest.mark.parametrize("path", sorted(ROOT.glob("sample_projects/*/*.nnp"))
                         + sorted(ROOT.glob("tests/data/console-exports/*/*.nnp")), ids=lambda p: p.stem)
def test_project_models_are_static_apart_from_the_batch(path):
    _assert_static(to_onnx(path))


def test_batched_generators_read_the_batch_with_one_node():
    """A generator that must follow the batch (here a Range concatenated to the input): one Shape
    node (start/end) feeds its Expand."""
    from tests.nntxt import generator_concat

    with tempfile.TemporaryDirectory() as tmp:
        text, shapes = generator_concat("Range")
        path = write_nnp(Path(tmp) / "range.nnp", text, _params(shapes))
        proto = to_onnx(path)
    shape_nodes = [n for n in proto.graph.node if n.op_type == "Shape"]
    assert len(shape_nodes) == 1 and "Slice" not in _ops(proto) and "Expand" in _ops(proto)
    assert {a.name: a.i for a in shape_nodes[0].attribute} == {"start": 0, "end": 1}


def test_a_constant_initial_state_concatenated_to_the_input_is_a_pad():
    """Elman's first step reads Concatenate(x_0, Delay_Initial) with Delay_Initial = 0.5: a Pad of
    x_0 with 0.5, and nothing reads the batch size."""
    from tests.nntxt import elman

    with tempfile.TemporaryDirectory() as tmp:
        text, shapes = elman(3, 2, 4, initial=0.5)
        path = write_nnp(Path(tmp) / "elman.nnp", text, _params(shapes))
        proto = to_onnx(path)
    assert not {"Shape", "Expand"} & set(_ops(proto))
    pads = [n for n in proto.graph.node if n.op_type == "Pad"]
    assert len(pads) == 1
    values = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    assert values[pads[0].input[1]].tolist() == [0, 0, 0, 4]  # (batch, 2) -> (batch, 2 + 4)
    assert float(values[pads[0].input[2]]) == 0.5


def test_a_generator_multiplied_in_broadcasts_one_row():
    """Mul2(Input, Noise) with Noise a generator that follows the batch: one row of it, broadcast."""
    from tests.nntxt import executor, fn, network, var

    body = var("Input", (-1, 4)) + var("Noise", (-1, 4)) + var("Mul2", (-1, 4)) + fn("Mul2", "Mul2", ["Input", "Noise"], ["Mul2"])
    with tempfile.TemporaryDirectory() as tmp:
        path = write_nnp(Path(tmp) / "mul.nnp", network("Main", {}, body)
                         + executor("Main", ["Input"], ["Mul2"], [("Noise", "Constant", 0.25)]), {})
        proto = to_onnx(path)
    assert _ops(proto) == {"Mul": 1}
    values = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    np.testing.assert_array_equal(values["Noise"], np.full((1, 4), 0.25, np.float32))


def test_recurrent_steps_are_split_and_stacked_without_a_node_per_step():
    """RecurrentInput is one Reshape + Split and RecurrentOutput one Concat + Reshape: no Squeeze or
    Unsqueeze per step, so a step of the Elman cell is Concat, Gemm, Tanh. The outputs are the
    recurrence computed in numpy."""
    from tests.nntxt import elman

    steps, n_in, hidden = 5, 3, 4
    with tempfile.TemporaryDirectory() as tmp:
        text, shapes = elman(steps, n_in, hidden, initial=0.5)
        params = _params(shapes)
        proto = to_onnx(write_nnp(Path(tmp) / "elman.nnp", text, params))
    ops = _ops(proto)
    assert not {"Squeeze", "Unsqueeze"} & set(ops), ops
    assert ops["Split"] == 1 and ops["Reshape"] == 2 and ops["Gemm"] == steps, ops
    # static targets but for the batch: onnxruntime then knows every step's shape
    values = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    targets = [values[n.input[1]].tolist() for n in proto.graph.node if n.op_type == "Reshape"]
    assert targets == [[-1, steps * n_in], [-1, steps, hidden]], targets
    w, b = params["Affine/affine/W"], params["Affine/affine/b"]
    for batch in (3, 1):
        x = np.random.RandomState(batch).uniform(-1, 1, (batch, steps, n_in)).astype(np.float32)
        h = np.full((batch, hidden), 0.5, np.float32)
        expected = []
        for t in range(steps):
            h = np.tanh(np.concatenate([x[:, t], h], axis=1) @ w + b)
            expected.append(h)
        np.testing.assert_allclose(_run(proto, x), np.stack(expected, axis=1), rtol=1e-5, atol=1e-6)
