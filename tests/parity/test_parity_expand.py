"""Console's loop layers and generator variables: nncbridge's unrolled ONNX against nnabla's own loader.

Each network is written as Console writes it (nntxt text with repeat ids), zipped into an .nnp
with ``nnp_version.txt`` and ``parameter.protobuf``, loaded by nnabla's ``NnpLoader`` (which
unrolls the loops itself) and run; nncbridge reads the same file, converts it with ``to_onnx``
and onnxruntime runs it. Generator variables are fed to nnabla as nnabla's executor does: with
``nnabla.utils.load._get_generator(...)(shape)``.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

import nncbridge
from tests.parity.oracle import assert_close, run_onnx
from tests.nntxt import elman, executor, fn, generator_concat, gru, nested_repeats, network, repeat_affine_tanh, var

pytestmark = pytest.mark.nnabla


def make_nnp(path: Path, text: str, params: dict[str, tuple[int, ...]], seed: int = 0) -> None:
    from nnabla.utils import nnabla_pb2

    rng = np.random.RandomState(seed)
    proto = nnabla_pb2.NNablaProtoBuf()
    for name, shape in params.items():
        p = proto.parameter.add()
        p.variable_name = name
        p.shape.dim.extend(shape)
        p.data.extend(rng.uniform(-1, 1, size=shape).astype(np.float32).ravel().tolist())
        p.need_grad = True
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("nnp_version.txt", "0.1\n")
        z.writestr("network.nntxt", text)
        z.writestr("parameter.protobuf", proto.SerializeToString())


def nnabla_forward(path: Path, feeds: dict[str, np.ndarray], generators: dict, outputs: list[str],
                   batch: int) -> dict[str, np.ndarray]:
    import nnabla as nn
    from nnabla.utils.load import _get_generator
    from nnabla.utils.nnp_graph import NnpLoader

    nn.clear_parameters()
    net = NnpLoader(str(path)).get_network("Main", batch_size=batch)
    for name, value in feeds.items():
        net.variables[name].d = value
    for name, g in generators.items():
        x = net.variables[name]
        x.d = _get_generator(g)(x.shape)
    for name in outputs:
        net.variables[name].forward(clear_buffer=False)
    return {name: np.array(net.variables[name].d, copy=True) for name in outputs}


def check(tmp_path: Path, text: str, params: dict, input_shapes: dict[str, tuple[int, ...]], *,
          opset: int | None = None, seed: int = 5) -> None:
    path = tmp_path / "model.nnp"
    make_nnp(path, text, params)
    model = nncbridge.read(path)
    exe = model.executors["Runtime"]
    outputs = [o.variable for o in exe.outputs]
    rng = np.random.RandomState(seed)
    feeds = {k: rng.uniform(-2, 2, size=s).astype(np.float32) for k, s in input_shapes.items()}
    batch = next(iter(input_shapes.values()))[0]

    from nnabla.utils import nnabla_pb2

    gens = {}
    for g in exe.generators:
        message = nnabla_pb2.GeneratorVariable()
        message.variable_name, message.type, message.multiplier = g.variable, g.type, g.multiplier
        gens[g.variable] = message
    proto = nncbridge.to_onnx(model, opset=opset)
    for b in sorted({batch, 1}, reverse=True):
        part = {k: v[:b] for k, v in feeds.items()}
        refs = nnabla_forward(path, part, gens, outputs, b)
        got = run_onnx(proto, part)
        for name, g in zip(outputs, got):
            assert_close(g, refs[name], what=f"{name} at batch {b}")


@pytest.mark.parametrize("opset", [None, 13])
def test_repeat_affine_tanh(tmp_path, opset):
    check(tmp_path, *repeat_affine_tanh(3, 4), {"Input": (3, 4)}, opset=opset)


def test_repeat_end_is_the_output(tmp_path):
    text, params = repeat_affine_tanh(2, 5)
    text = text.replace('variable_name: "Sigmoid"', 'variable_name: "RepeatEnd"')
    check(tmp_path, text, params, {"Input": (2, 5)})


def test_nested_repeats(tmp_path):
    check(tmp_path, *nested_repeats(2, 3, 4), {"Input": (3, 4)})


def test_elman_recurrent_with_delay_and_constant_generator(tmp_path):
    check(tmp_path, *elman(steps=5, n_in=3, n_hidden=4, initial=0.5), {"Input": (3, 5, 3)})


@pytest.mark.parametrize("initial", [0.0, 0.5])
def test_gru_cell_of_console_layers(tmp_path, initial):
    check(tmp_path, *gru(steps=4, n_in=3, n_hidden=5, initial=initial), {"Input": (3, 4, 3)})


@pytest.mark.parametrize("kind, multiplier", [("Constant", 2.5), ("Range", 0.75)])
def test_generator_variable(tmp_path, kind, multiplier):
    check(tmp_path, *generator_concat(kind, multiplier), {"Input": (3, 3)})


@pytest.mark.parametrize("kind, multiplier", [("Constant", -1.5), ("Range", 0.25)])
def test_generator_variable_follows_the_batch(tmp_path, kind, multiplier):
    body = (var("Input", (-1, 2)) + var("Noise", (-1, 2, 3)) + var("Tanh", (-1, 2)) + var("Sigmoid", (-1, 2, 3))
            + fn("Tanh", "Tanh", ["Input"], ["Tanh"]) + fn("Sigmoid", "Sigmoid", ["Noise"], ["Sigmoid"]))
    text = network("Main", {}, body) + executor("Main", ["Input"], ["Tanh", "Sigmoid"], [("Noise", kind, multiplier)])
    check(tmp_path, text, {}, {"Input": (3, 2)})


@pytest.mark.parametrize("kind, multiplier", [("Constant", -1.5), ("Range", 0.25)])
@pytest.mark.parametrize("generator_first", [False, True])
def test_generator_variable_read_by_elementwise_ops(tmp_path, kind, multiplier, generator_first):
    """Mul2/Sub2 of the input and a generator that follows the batch (one row broadcast in ONNX)."""
    pair = ["Noise", "Input"] if generator_first else ["Input", "Noise"]
    body = (var("Input", (-1, 2, 3)) + var("Noise", (-1, 2, 3)) + var("Mul2", (-1, 2, 3)) + var("Sub2", (-1, 2, 3))
            + fn("Mul2", "Mul2", pair, ["Mul2"]) + fn("Sub2", "Sub2", [pair[1], "Mul2"], ["Sub2"]))
    text = network("Main", {}, body) + executor("Main", ["Input"], ["Sub2"], [("Noise", kind, multiplier)])
    check(tmp_path, text, {}, {"Input": (3, 2, 3)})


def test_missing_per_iteration_parameter_is_an_error_not_random(tmp_path):
    text, params = repeat_affine_tanh(3, 4)
    path = tmp_path / "model.nnp"
    make_nnp(path, text, {k: v for k, v in params.items() if k != "Affine[1]/affine/W"})
    with pytest.raises(nncbridge.NncBridgeError, match=r"Affine\[1\]/affine/W"):
        nncbridge.to_onnx(nncbridge.read(path))
