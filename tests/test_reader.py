"""Reading NNP files: Console's shared exports, loose parts, directories, every encoding."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

import nncbridge
from nncbridge.format.schema import new_nnp_message

# From the shared exports' README (Console's own description of each file).
EXPORTS = {
    "mnist-4or9-and-lenet/binary-4or9-2018.nnp": ("Input", "x", (-1, 1, 28, 28), "Sigmoid", "y'", (-1, 1)),
    "mnist-4or9-and-lenet/lenet-10class-2017.nnp": ("Input", "x", (-1, 1, 28, 28), "Softmax", "y'", (-1, 10)),
    "sin-regression/result.nnp": ("Input", "x", (-1, 1), "Affine_3", "y'", (-1, 1)),
}


@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_shared_export(shared_exports, name):
    in_var, in_data, in_shape, out_var, out_data, out_shape = EXPORTS[name]
    path = shared_exports / name
    model = nncbridge.read(path)
    assert list(model.networks) == ["Main", "MainValidation", "MainRuntime"]
    exe = model.executor()
    assert exe.name == "Executor" and exe.network == "MainRuntime"
    assert [(d.variable, d.data_name) for d in exe.data] == [(in_var, in_data)]
    assert [(o.variable, o.data_name) for o in exe.outputs] == [(out_var, out_data)]
    net = model.networks["MainRuntime"]
    assert net.variables[in_var].shape == in_shape
    assert net.variables[out_var].shape == out_shape
    assert model.source.nnp_version == "0.1"
    assert model.source.network_encoding == "text" and model.source.parameter_format == "protobuf"
    with zipfile.ZipFile(path) as z:
        assert model.source.members == z.namelist()
    # every parameter variable of the runtime network is stored with its declared shape
    declared = {v.name: v.shape for v in net.variables.values() if v.is_parameter}
    assert declared and {n: model.parameters[n].data.shape for n in declared} == declared
    assert all(p.data.dtype == np.float32 for p in model.parameters.values())
    assert model.optimizers and model.monitors and len(model.datasets) == 2
    assert model.source.warnings == []


def test_functions_and_typed_parameters(shared_exports):
    model = nncbridge.read(shared_exports / "mnist-4or9-and-lenet/lenet-10class-2017.nnp")
    net = model.networks["MainRuntime"]
    types = [f.type for f in net.functions]
    assert types == ["Convolution", "ReLU", "MaxPooling", "Convolution", "MaxPooling", "Tanh", "Affine", "ReLU",
                     "Affine", "Softmax"]
    conv = net.functions[0]
    assert conv.inputs == ["Input", "Convolution/conv/W", "Convolution/conv/b"]
    assert isinstance(conv.params["pad"], tuple) and isinstance(conv.params["base_axis"], int)
    pool = net.functions[2]
    assert pool.params["kernel"] == (2, 2) and pool.params["ignore_border"] in (True, False)
    main = model.networks["Main"]
    assert main.functions[-1].type == "CategoricalCrossEntropy"
    assert model.datasets["Training"].batch_size == 64 and model.datasets["Training"].shuffle


def _extract(archive: Path, into: Path) -> list[Path]:
    into.mkdir()
    with zipfile.ZipFile(archive) as z:
        z.extractall(into)
        return [into / n for n in z.namelist()]


def _same_model(a: nncbridge.model.graph.Model, b: nncbridge.model.graph.Model) -> None:
    assert list(a.networks) == list(b.networks)
    for name in a.networks:
        assert a.networks[name] == b.networks[name]
    assert a.executors == b.executors
    assert list(a.parameters) == list(b.parameters)
    for name, p in a.parameters.items():
        np.testing.assert_array_equal(p.data, b.parameters[name].data)


def test_loose_parts_list_and_directory(shared_exports, tmp_path):
    archive = shared_exports / "mnist-4or9-and-lenet/binary-4or9-2018.nnp"
    reference = nncbridge.read(archive)
    files = _extract(archive, tmp_path / "parts")
    net = next(p for p in files if p.suffix == ".prototxt")
    params = next(p for p in files if p.name == "parameter.protobuf")
    _same_model(nncbridge.read([net, params]), reference)
    _same_model(nncbridge.read([str(params), str(net)]), reference)
    _same_model(nncbridge.read(tmp_path / "parts"), reference)  # output_result.zip is skipped
    _same_model(nncbridge.read(archive.read_bytes()), reference)
    only_network = nncbridge.read(net)
    assert only_network.parameters == {} and list(only_network.networks) == list(reference.networks)


def test_binary_network_and_h5_parameters(shared_exports, tmp_path):
    import h5py

    reference = nncbridge.read(shared_exports / "sin-regression/result.nnp")
    from nncbridge.format.messages import model_to_message

    (tmp_path / "net.protobuf").write_bytes(model_to_message(reference).SerializeToString())
    with h5py.File(tmp_path / "parameter.h5", "w") as h5:  # nnabla's layout: a dataset per parameter
        for i, p in enumerate(reversed(list(reference.parameters.values()))):
            h5[p.name] = p.data
            h5[p.name].attrs["need_grad"] = p.need_grad
            h5[p.name].attrs["index"] = len(reference.parameters) - 1 - i
    model = nncbridge.read([tmp_path / "net.protobuf", tmp_path / "parameter.h5"])
    _same_model(model, reference)
    assert model.source.network_encoding == "binary" and model.source.parameter_format == "h5"


def test_single_protobuf_with_everything(shared_exports, tmp_path):
    reference = nncbridge.read(shared_exports / "sin-regression/result.nnp")
    from nncbridge.format.messages import model_to_message

    path = tmp_path / "all.protobuf"
    path.write_bytes(model_to_message(reference, include_parameters=True).SerializeToString())
    _same_model(nncbridge.read(path), reference)


def test_unknown_members_ignored_and_unknown_fields_tolerated(shared_exports, tmp_path):
    archive = shared_exports / "sin-regression/result.nnp"
    with zipfile.ZipFile(archive) as z:
        members = {n: z.read(n) for n in z.namelist()}
    text = members["network.prototxt"].decode()
    text = text.replace('  batch_size: 64\n', '  batch_size: 64\n  future_field: 3\n', 1)
    members["network.prototxt"] = text.encode()
    members["notes/readme.md"] = b"hello"
    members["something.optimizer"] = b"\x00\x01"
    path = tmp_path / "extra.nnp"
    with zipfile.ZipFile(path, "w") as z:
        for n, d in members.items():
            z.writestr(n, d)
    model = nncbridge.read(path)
    assert any("future_field" in w for w in model.source.warnings), model.source.warnings
    _same_model(model, nncbridge.read(archive))
    problems = nncbridge.check(model)
    assert problems and all(p.severity == "warning" for p in problems)
    assert any("future_field" in str(p) for p in problems)


def test_unknown_binary_field_is_a_warning(tmp_path):
    msg = new_nnp_message()
    net = msg.network.add(name="n", batch_size=1)
    v = net.variable.add(name="x", type="Buffer")
    v.shape.dim.extend([-1, 2])
    data = msg.SerializeToString() + bytes([0xF8, 0x3E, 0x05])  # field 999, varint 5
    path = tmp_path / "net.protobuf"
    path.write_bytes(data)
    model = nncbridge.read(path)
    assert model.networks["n"].variables["x"].shape == (-1, 2)
    assert any("unknown" in w for w in model.source.warnings)


@pytest.mark.nnabla
@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_parameters_match_nnabla(shared_exports, name):
    """nnabla's own protobuf classes read the same parameter values and network structure."""
    from nnabla.utils import nnabla_pb2
    from google.protobuf import text_format

    path = shared_exports / name
    model = nncbridge.read(path)
    with zipfile.ZipFile(path) as z:
        params = nnabla_pb2.NNablaProtoBuf()
        params.ParseFromString(z.read("parameter.protobuf"))
        net = nnabla_pb2.NNablaProtoBuf()
        text_format.Merge(z.read("network.prototxt").decode(), net)
    assert [p.variable_name for p in params.parameter] == list(model.parameters)
    for p in params.parameter:
        ours = model.parameters[p.variable_name]
        assert ours.data.shape == tuple(p.shape.dim) and ours.need_grad == p.need_grad
        np.testing.assert_array_equal(ours.data.ravel(), np.array(p.data, dtype=np.float32))
    for n in net.network:
        ours = model.networks[n.name]
        assert [(f.name, f.type, list(f.input), list(f.output)) for f in n.function] == \
            [(f.name, f.type, f.inputs, f.outputs) for f in ours.functions]
        assert {v.name: tuple(v.shape.dim) for v in n.variable} == {v.name: v.shape for v in ours.variables.values()}

