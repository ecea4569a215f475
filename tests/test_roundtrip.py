"""Writing: read → write → read gives the same model; in the nnabla env, nnabla loads what we wrote
and computes exactly what it computes from the original."""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

import nncbridge
from nncbridge.errors import FormatError

EXPORTS = ["mnist-4or9-and-lenet/binary-4or9-2018.nnp", "mnist-4or9-and-lenet/lenet-10class-2017.nnp",
           "sin-regression/result.nnp"]


def assert_same_model(a, b) -> None:
    assert a.networks == b.networks
    assert a.executors == b.executors
    assert a.datasets == b.datasets
    assert a.optimizers == b.optimizers
    assert a.monitors == b.monitors
    assert a.global_config == b.global_config and a.training_config == b.training_config
    assert list(a.parameters) == list(b.parameters)
    for name, p in a.parameters.items():
        q = b.parameters[name]
        assert p.need_grad == q.need_grad and p.data.dtype == q.data.dtype
        np.testing.assert_array_equal(p.data, q.data)


@pytest.mark.parametrize("fmt", ["protobuf", "h5"])
@pytest.mark.parametrize("name", EXPORTS)
def test_read_write_read(shared_exports, tmp_path, name, fmt):
    original = nncbridge.read(shared_exports / name)
    out = tmp_path / "copy.nnp"
    nncbridge.write(original, out, parameter_format=fmt)
    with zipfile.ZipFile(out) as z:
        assert z.namelist() == ["nnp_version.txt", "network.nntxt", f"parameter.{fmt}"]
        assert z.read("nnp_version.txt") == b"0.1\n"
        assert z.read("network.nntxt").decode("utf-8").startswith("version:") or b"network {" in z.read(
            "network.nntxt")
    again = nncbridge.read(out)
    assert_same_model(original, again)
    assert again.source.parameter_format == fmt and again.source.network_encoding == "text"
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left behind


def test_h5_layout_is_nnablas(shared_exports, tmp_path):
    import h5py

    model = nncbridge.read(shared_exports / EXPORTS[1])
    out = tmp_path / "m.nnp"
    nncbridge.write(model, out, "h5")
    with zipfile.ZipFile(out) as z:
        (tmp_path / "p.h5").write_bytes(z.read("parameter.h5"))
    with h5py.File(tmp_path / "p.h5", "r") as h5:
        for i, (name, p) in enumerate(model.parameters.items()):
            ds = h5[name]
            assert isinstance(ds, h5py.Dataset) and ds.dtype == np.float32 and ds.shape == p.data.shape
            assert int(ds.attrs["index"]) == i and bool(ds.attrs["need_grad"]) == p.need_grad


def test_write_is_atomic_and_validates_format(shared_exports, tmp_path, monkeypatch):
    model = nncbridge.read(shared_exports / EXPORTS[2])
    out = tmp_path / "m.nnp"
    out.write_bytes(b"old")
    with pytest.raises(FormatError):
        nncbridge.write(model, out, "pickle")
    assert out.read_bytes() == b"old"

    real_writestr = zipfile.ZipFile.writestr
    calls = []

    def failing_writestr(self, name, data, *args, **kwargs):
        calls.append(name)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_writestr(self, name, data, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", failing_writestr)
    with pytest.raises(OSError):
        nncbridge.write(model, out, "protobuf")
    monkeypatch.undo()
    assert len(calls) == 2
    assert out.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["m.nnp"]
    nncbridge.write(model, out)
    assert_same_model(nncbridge.read(out), model)


# -- nnabla as the judge ------------------------------------------------------------------------

def _nnabla_forward(files, network: str, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    import nnabla as nn
    from nnabla.utils.nnp_graph import NnpLoader

    nn.clear_parameters()
    loader = NnpLoader(files if isinstance(files, (str, list)) else str(files))
    batch = next(iter(inputs.values())).shape[0]
    graph = loader.get_network(network, batch_size=batch)
    for name, value in inputs.items():
        graph.inputs[name].d = value
    outs = list(graph.outputs.values())
    import nnabla.functions as F

    if len(outs) > 1:
        F.sink(*outs).forward(clear_no_need_grad=True)
    else:
        outs[0].forward(clear_no_need_grad=True)
    result = [np.array(o.d, copy=True) for o in outs]
    nn.clear_parameters()
    return result


def _assert_nnabla_agrees(original, written: Path, network: str, inputs: dict[str, np.ndarray]) -> None:
    ref = _nnabla_forward(original, network, inputs)
    got = _nnabla_forward(str(written), network, inputs)
    assert len(ref) == len(got)
    for r, g in zip(ref, got):
        assert r.shape == g.shape
        np.testing.assert_array_equal(g, r)


@pytest.mark.nnabla
@pytest.mark.parametrize("fmt", ["protobuf", "h5"])
@pytest.mark.parametrize("name", EXPORTS)
def test_nnabla_loads_what_we_wrote_from_console_exports(shared_exports, tmp_path, name, fmt):
    model = nncbridge.read(shared_exports / name)
    out = tmp_path / "copy.nnp"
    nncbridge.write(model, out, fmt)
    exe = model.executor()
    rng = np.random.RandomState(7)
    shape = model.networks[exe.network].variables[exe.data[0].variable].shape[1:]
    inputs = {exe.data[0].variable: rng.uniform(0, 1, size=(3, *shape)).astype(np.float32)}
    _assert_nnabla_agrees(str(shared_exports / name), out, exe.network, inputs)


def _nnabla_model():
    import nnabla as nn
    import nnabla.functions as F
    import nnabla.parametric_functions as PF

    nn.clear_parameters()
    rng = np.random.RandomState(3)
    x = nn.Variable((2, 3, 6, 6))
    z = nn.Variable((2, 4))
    with nn.parameter_scope("rt"):
        h = F.relu(PF.batch_normalization(PF.convolution(x, 4, (3, 3), pad=(1, 1), name="conv"), batch_stat=False,
                                          name="bn"))
        h = F.max_pooling(h, (2, 2))
        y1 = F.softmax(PF.affine(h, 5, name="fc"))
        y2 = F.tanh(PF.affine(z, 3, name="fc2")) * 2.0
    for p in nn.get_parameters(grad_only=False).values():
        p.d = rng.normal(size=p.shape).astype(np.float32)
        if p.d.ndim == 4 and p.shape[0] == 1 and p.shape[2:] == (1, 1):  # bn statistics: keep variance positive
            p.d = np.abs(p.d) + 0.5
    contents = {
        "networks": [{"name": "net", "batch_size": 2, "outputs": {"y1": y1, "y2": y2}, "names": {"x": x, "z": z}}],
        "executors": [{"name": "runtime", "network": "net", "data": ["x", "z"], "output": ["y1", "y2"]}],
    }
    inputs = {"x": rng.uniform(-1, 1, size=(2, 3, 6, 6)).astype(np.float32),
              "z": rng.uniform(-1, 1, size=(2, 4)).astype(np.float32)}
    return contents, inputs


@pytest.mark.nnabla
@pytest.mark.parametrize("layout", ["nnp-h5", "nnp-protobuf", "nntxt+h5", "protobuf", "nntxt-with-params"])
def test_nnabla_saved_formats(tmp_path, layout):
    import nnabla as nn
    from nnabla.utils.save import save

    contents, inputs = _nnabla_model()
    if layout == "nnp-h5":
        files = str(tmp_path / "m.nnp")
        save(files, contents)
    elif layout == "nnp-protobuf":
        files = str(tmp_path / "m.nnp")
        save(files, contents, parameter_format=".protobuf")
    elif layout == "nntxt+h5":
        save(str(tmp_path / "m.nntxt"), contents)
        nn.parameter.save_parameters(str(tmp_path / "m.h5"))
        files = [str(tmp_path / "m.nntxt"), str(tmp_path / "m.h5")]
    elif layout == "protobuf":
        files = str(tmp_path / "m.protobuf")
        save(files, contents, include_params=True)
    else:
        files = str(tmp_path / "m.nntxt")
        save(files, contents, include_params=True)
    stored = {k: np.array(v.d, copy=True) for k, v in nn.get_parameters(grad_only=False).items()}

    model = nncbridge.read(files)
    assert list(model.parameters) == list(stored)
    for k, v in stored.items():
        np.testing.assert_array_equal(model.parameters[k].data, v)
    assert nncbridge.check(model) == []
    for fmt in ("protobuf", "h5"):
        out = tmp_path / f"ours-{fmt}.nnp"
        nncbridge.write(model, out, fmt)
        _assert_nnabla_agrees(files, out, "net", inputs)
