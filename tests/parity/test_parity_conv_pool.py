"""Convolution and pooling families against nnabla, plus Console's 2018 "4 or 9" sample."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

nnabla_only = pytest.mark.nnabla

EXPORTS = Path(__file__).resolve().parents[1] / "data" / "console-exports" / "mnist-4or9-and-lenet"


def _parity(tmp_path, build, shapes, **kw):
    from tests.parity.oracle import check_parity

    if kw.pop("base_axis", 1) != 1:
        _fixed_batch_parity(tmp_path, build, shapes[0], kw.get("name", "case"))
        return
    check_parity(tmp_path, build, shapes, **kw)


def _fixed_batch_parity(tmp_path, build, shape, name):
    """Parity with the .nnp saved at a fixed batch size: nnabla's default saver rewrites
    base_axis != 1 into base_axis=1, so the option would otherwise never reach the file."""
    import nnabla as nn
    from nnabla.utils.save import save

    import nncbridge
    from tests.parity.oracle import assert_close, run_onnx

    nn.clear_parameters()
    np.random.seed(313)
    data = np.random.RandomState(313).uniform(-2, 2, size=shape).astype(np.float32)
    x = nn.Variable(shape)
    x.d = data
    with nn.parameter_scope(name):
        y = build(x)
    y.forward()
    path = tmp_path / f"{name}.nnp"
    save(str(path), {
        "networks": [{"name": "net", "batch_size": shape[0], "outputs": {"y": y}, "names": {"x": x}}],
        "executors": [{"name": "runtime", "network": "net", "data": ["x"], "output": ["y"]}],
    }, variable_batch_size=False)
    model = nncbridge.read(path)
    proto = nncbridge.to_onnx(model)
    (got,) = run_onnx(proto, {model.executors["runtime"].data[0].variable: data})
    assert_close(got, y.d, what=name)
    (single,) = run_onnx(proto, {model.executors["runtime"].data[0].variable: data[:1]})
    assert_close(single, y.d[:1], what=f"{name} at batch 1")


def _conv(**kw):
    import nnabla.parametric_functions as PF

    return lambda x: PF.convolution(x, **kw)


@nnabla_only
@pytest.mark.parametrize("opset", [None, 13])
@pytest.mark.parametrize("shape,kw", [
    ((2, 3, 7, 6), dict(outmaps=4, kernel=(3, 2))),
    ((2, 4, 9, 8), dict(outmaps=6, kernel=(3, 3), pad=(1, 2), stride=(2, 1), dilation=(1, 2), group=2)),
    ((2, 3, 11), dict(outmaps=5, kernel=(3,), pad=(1,), stride=(2,))),
    ((2, 2, 5, 6, 4), dict(outmaps=3, kernel=(2, 3, 2), pad=(1, 0, 1), with_bias=False)),
    ((2, 3, 3, 6, 5), dict(outmaps=4, kernel=(3, 3), base_axis=2)),
    ((2, 3, 2, 3, 6, 5), dict(outmaps=2, kernel=(2, 2), base_axis=3, stride=(2, 2))),
])
def test_convolution(tmp_path, opset, shape, kw):
    _parity(tmp_path, _conv(**kw), [shape], opset=opset, name="conv", base_axis=kw.get("base_axis", 1))


@nnabla_only
@pytest.mark.parametrize("shape,kw", [
    ((2, 3, 4, 5), dict(outmaps=4, kernel=(3, 2))),
    ((2, 4, 4, 3), dict(outmaps=6, kernel=(3, 3), pad=(1, 1), stride=(2, 2), dilation=(1, 2), group=2)),
    ((2, 4, 5, 5), dict(outmaps=3, kernel=(3, 3), pad=(1, 1), stride=(2, 3), output_padding=(1, 2),
                        with_bias=False)),
    ((2, 3, 6), dict(outmaps=2, kernel=(4,), stride=(2,))),
    ((2, 2, 3, 4, 4), dict(outmaps=3, kernel=(2, 2), base_axis=2, stride=(2, 2))),
])
def test_deconvolution(tmp_path, shape, kw):
    import nnabla.parametric_functions as PF

    _parity(tmp_path, lambda x: PF.deconvolution(x, **kw), [shape], name="deconv", base_axis=kw.get("base_axis", 1))


@nnabla_only
@pytest.mark.parametrize("shape,kw", [
    ((2, 3, 6, 7), dict(kernel=(3, 3))),
    ((2, 3, 7, 6), dict(kernel=(3, 2), pad=(1, 1), stride=(2, 1), dilation=(1, 2), multiplier=2)),
    ((2, 4, 9), dict(kernel=(3,), multiplier=3, with_bias=False)),
    ((2, 2, 3, 5, 5), dict(kernel=(2, 2), base_axis=2)),
])
def test_depthwise_convolution(tmp_path, shape, kw):
    import nnabla.parametric_functions as PF

    _parity(tmp_path, lambda x: PF.depthwise_convolution(x, **kw), [shape], name="dwconv",
            base_axis=kw.get("base_axis", 1))


@nnabla_only
@pytest.mark.parametrize("shape,kw", [
    ((2, 3, 4, 5), dict(kernel=(3, 3))),
    ((2, 6, 4, 3), dict(kernel=(3, 2), pad=(1, 0), stride=(2, 2), dilation=(1, 2), divisor=3)),
    ((2, 4, 5), dict(kernel=(3,), divisor=2, with_bias=False)),
])
def test_depthwise_deconvolution(tmp_path, shape, kw):
    import nnabla.parametric_functions as PF

    _parity(tmp_path, lambda x: PF.depthwise_deconvolution(x, **kw), [shape], name="dwdeconv")


POOL_CASES = [
    ((2, 3, 6, 6), dict(kernel=(2, 2))),
    ((2, 3, 7, 5), dict(kernel=(3, 2), stride=(2, 2))),
    ((2, 3, 7, 5), dict(kernel=(3, 2), stride=(2, 2), ignore_border=False)),
    ((2, 2, 7, 8), dict(kernel=(3, 3), stride=(2, 3), pad=(1, 2))),
    ((2, 2, 7, 8), dict(kernel=(3, 3), stride=(2, 3), pad=(1, 2), ignore_border=False)),
    ((2, 2, 5, 6), dict(kernel=(2, 4), stride=(3, 1), pad=(1, 1), ignore_border=False)),
    ((2, 2, 5, 6, 7), dict(kernel=(2, 3, 2), stride=(2, 2, 3), pad=(1, 0, 1), ignore_border=False)),
    ((3, 2, 2, 5, 6), dict(kernel=(2, 3), stride=(1, 2))),
    ((2, 5, 5), dict(kernel=(2, 2), ignore_border=False)),
]


@nnabla_only
@pytest.mark.parametrize("opset", [None, 13])
@pytest.mark.parametrize("shape,kw", POOL_CASES)
def test_max_pooling(tmp_path, opset, shape, kw):
    import nnabla.functions as F

    _parity(tmp_path, lambda x: F.max_pooling(x, **kw), [shape], opset=opset, name="maxpool",
            batch_independent=len(shape) > len(kw["kernel"]) + 1)


@nnabla_only
@pytest.mark.parametrize("including_pad", [True, False])
@pytest.mark.parametrize("shape,kw", POOL_CASES)
def test_average_pooling(tmp_path, including_pad, shape, kw):
    import nnabla.functions as F

    _parity(tmp_path, lambda x: F.average_pooling(x, including_pad=including_pad, **kw), [shape], name="avgpool",
            batch_independent=len(shape) > len(kw["kernel"]) + 1)


@nnabla_only
@pytest.mark.parametrize("shape,kw", POOL_CASES)
def test_sum_pooling(tmp_path, shape, kw):
    import nnabla.functions as F

    _parity(tmp_path, lambda x: F.sum_pooling(x, **kw), [shape], name="sumpool",
            batch_independent=len(shape) > len(kw["kernel"]) + 1)


@nnabla_only
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (2, 3, 4), (2, 3, 2, 3, 4)])
def test_global_average_pooling(tmp_path, shape):
    import nnabla.functions as F

    _parity(tmp_path, F.global_average_pooling, [shape], name="gap")


@nnabla_only
@pytest.mark.parametrize("shape,kw", [
    ((2, 3, 4, 5), dict(kernel=(2, 3))),
    ((2, 3, 4, 5), dict(kernel=(1, 2))),
    ((2, 3, 2, 3, 4), dict(kernel=(2, 1, 2))),
])
def test_unpooling(tmp_path, shape, kw):
    import nnabla.functions as F

    _parity(tmp_path, lambda x: F.unpooling(x, **kw), [shape], name="unpool")


def test_console_4or9_sample_reproduces_reference():
    import onnxruntime as ort
    from PIL import Image

    import nncbridge

    expected = [0.00019709874, 1.0769621e-08, 0.9999932, 0.9113416]
    model = nncbridge.read(EXPORTS / "binary-4or9-2018.nnp")
    proto = nncbridge.to_onnx(model)
    images = np.stack([np.asarray(Image.open(EXPORTS / "images" / f"00{i}.png"), dtype=np.float32) / 255.0
                       for i in range(1, 5)])[:, None]
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: images})
    np.testing.assert_allclose(got.reshape(-1), expected, rtol=1e-4, atol=1e-7)


def _channel_last_parity(tmp_path, build_last, reference, shape, name):
    """nnabla's CPU kernels reject channel_last=True, so the reference is nnabla's channel-first
    forward on transposed data (and weights): ``reference(x_first, params)`` -> y_first."""
    import nnabla as nn
    from nnabla.utils.save import save

    import nncbridge
    from tests.parity.oracle import assert_close, run_onnx

    nn.clear_parameters()
    np.random.seed(313)
    data = np.random.RandomState(313).uniform(-2, 2, size=shape).astype(np.float32)
    x = nn.Variable(shape)
    with nn.parameter_scope(name):
        y = build_last(x)
    params = {k.split("/", 1)[1]: v.d.copy() for k, v in nn.get_parameters(grad_only=False).items()}
    n = len(shape) - 2
    to_first = (0, n + 1, *range(1, n + 1))
    to_last = (0, *range(2, n + 2), 1)
    ref_var = reference(nn.Variable.from_numpy_array(data.transpose(to_first)), params)
    ref_var.forward()
    ref = ref_var.d.transpose(to_last)
    path = tmp_path / f"{name}.nnp"
    save(str(path), {
        "networks": [{"name": "net", "batch_size": shape[0], "outputs": {"y": y}, "names": {"x": x}}],
        "executors": [{"name": "runtime", "network": "net", "data": ["x"], "output": ["y"]}],
    })
    model = nncbridge.read(path)
    proto = nncbridge.to_onnx(model)
    feed = model.executors["runtime"].data[0].variable
    (got,) = run_onnx(proto, {feed: data})
    assert_close(got, ref, what=name)
    (single,) = run_onnx(proto, {feed: data[:1]})
    assert_close(single, ref[:1], what=f"{name} at batch 1")


def _weight_first(w):
    n = w.ndim - 2
    return np.ascontiguousarray(w.transpose(0, n + 1, *range(1, n + 1)))


@nnabla_only
@pytest.mark.parametrize("shape,kw", [
    ((2, 7, 6, 3), dict(kernel=(3, 2), pad=(1, 1))),
    ((2, 6, 5, 4), dict(kernel=(2, 2), stride=(2, 1), dilation=(1, 2), group=2)),
])
def test_convolution_and_deconvolution_channel_last(tmp_path, shape, kw):
    import nnabla as nn
    import nnabla.functions as F
    import nnabla.parametric_functions as PF

    fkw = {k: v for k, v in kw.items() if k != "kernel"}

    def ref_conv(x, p):
        return F.convolution(x, nn.Variable.from_numpy_array(_weight_first(p["conv/W"])),
                             nn.Variable.from_numpy_array(p["conv/b"]), **fkw)

    _channel_last_parity(tmp_path, lambda x: PF.convolution(x, 4, channel_last=True, **kw), ref_conv, shape,
                         "conv")

    def ref_deconv(x, p):
        return F.deconvolution(x, nn.Variable.from_numpy_array(_weight_first(p["deconv/W"])),
                               nn.Variable.from_numpy_array(p["deconv/b"]), **fkw)

    _channel_last_parity(tmp_path, lambda x: PF.deconvolution(x, 4, channel_last=True, **kw), ref_deconv, shape,
                         "deconv")


@nnabla_only
@pytest.mark.parametrize("function", ["max_pooling", "average_pooling", "sum_pooling"])
@pytest.mark.parametrize("shape,kw", [
    ((2, 6, 5, 3), dict(kernel=(2, 2), pad=(1, 0), ignore_border=False)),
    ((2, 7, 6, 2), dict(kernel=(3, 2), stride=(2, 2), pad=(1, 1))),
])
def test_pooling_channel_last(tmp_path, function, shape, kw):
    import nnabla.functions as F

    fn = getattr(F, function)
    _channel_last_parity(tmp_path, lambda x: fn(x, channel_last=True, **kw), lambda x, p: fn(x, **kw), shape,
                         function)


@nnabla_only
def test_unpooling_channel_last(tmp_path):
    import nnabla.functions as F

    _channel_last_parity(tmp_path, lambda x: F.unpooling(x, (2, 3), channel_last=True),
                         lambda x, p: F.unpooling(x, (2, 3)), (2, 3, 4, 5), "unpool")


@nnabla_only
@pytest.mark.parametrize("kw,inputs,z_shape", [
    (dict(pad=(1, 1), batch_stat=False), "bn", None),
    (dict(pad=(1, 0, 2, 1), stride=(2, 1), batch_stat=False, nonlinearity="leaky_relu",
          nonlinearity_args=[0.3]), "bn_z", (1, 4, 3, 8)),
    (dict(nonlinearity="tanh"), "bias", None),
    (dict(nonlinearity="relu6", dilation=(1, 2)), "bias_z", (2, 4, 5, 4)),
    (dict(nonlinearity="elu", nonlinearity_args=[0.7]), "z", (1, 4, 5, 5)),
    (dict(nonlinearity="identity", group=2, batch_stat=False), "bn", None),
])
def test_fused_convolution(tmp_path, kw, inputs, z_shape):
    import nnabla.functions as F
    from nnabla.initializer import UniformInitializer
    from nnabla.parameter import get_parameter_or_create

    def param(name, shape, low=-1.0, high=1.0):
        return get_parameter_or_create(name, shape, UniformInitializer((low, high)), need_grad=False)

    def build(x):
        channels = 4
        w = param("W", (channels, 4 // kw.get("group", 1), 3, 2))
        args = dict(bias=param("b", (channels,)) if "bias" in inputs else None)
        if "bn" in inputs:
            args.update(beta=param("beta", (1, channels, 1, 1)), gamma=param("gamma", (1, channels, 1, 1)),
                        mean=param("mean", (1, channels, 1, 1)),
                        variance=param("var", (1, channels, 1, 1), 0.5, 2.0))
        if z_shape:
            args["z"] = param("z", z_shape)
        return F.fused_convolution(x, w, **args, **kw)

    _parity(tmp_path, build, [(2, 4, 7, 6)], name="fused", batch_independent=not z_shape or z_shape[0] == 1)
