"""Parity of normalization layers against nnabla (inference settings and nnabla's batch_stat behaviour)."""
import numpy as np
import pytest

from tests.parity.oracle import check_parity_variable_batch

pytestmark = pytest.mark.nnabla


def _randomize(params):
    """Non-trivial BN statistics and affine parameters (variance kept positive)."""
    rng = np.random.RandomState(7)
    for name, p in params.items():
        if name.endswith("/var"):
            p.d = rng.uniform(0.3, 2.0, size=p.shape)
        else:
            p.d = rng.uniform(-1.5, 1.5, size=p.shape)


def _param(name, shape):
    import nnabla as nn

    return nn.parameter.get_parameter_or_create(name, shape, need_grad=True)


@pytest.mark.parametrize("opset", [None, 13])
@pytest.mark.parametrize("shape,axes", [((2, 3, 4, 4), [1]), ((3, 5), [1]), ((2, 3, 4), [2]), ((2, 3, 4), [1, 2])])
def test_batch_normalization_stored_statistics(tmp_path, opset, shape, axes):
    import nnabla.parametric_functions as PF

    check_parity_variable_batch(tmp_path, lambda x: PF.batch_normalization(x, axes=axes, batch_stat=False, eps=1e-3), [shape],
            param_init=_randomize, opset=opset)


@pytest.mark.parametrize("no_scale,no_bias", [(True, False), (False, True), (True, True)])
def test_batch_normalization_without_scale_or_bias(tmp_path, no_scale, no_bias):
    import nnabla.parametric_functions as PF

    check_parity_variable_batch(tmp_path, lambda x: PF.batch_normalization(x, batch_stat=False, no_scale=no_scale, no_bias=no_bias),
            [(2, 3, 2, 2)], param_init=_randomize)


def test_batch_normalization_batch_stat_true_uses_batch_statistics(tmp_path):
    """nnabla's forward with batch_stat=True normalizes by the statistics of the batch it runs."""
    import nnabla.parametric_functions as PF

    check_parity_variable_batch(tmp_path, lambda x: PF.batch_normalization(x, batch_stat=True), [(3, 2, 3, 3)],
            param_init=_randomize, batch_independent=False)


def test_fused_batch_normalization(tmp_path):
    import nnabla.parametric_functions as PF

    check_parity_variable_batch(tmp_path, lambda x, z: (PF.fused_batch_normalization(x, z, batch_stat=False, name="a"),
                                    PF.fused_batch_normalization(x, None, batch_stat=False, name="b")),
            [(2, 3, 4, 4), (2, 3, 4, 4)], param_init=_randomize)


def test_layer_instance_group_normalization(tmp_path):
    import nnabla.parametric_functions as PF

    def build(x):
        return (PF.layer_normalization(x), PF.instance_normalization(x), PF.group_normalization(x, 2),
                PF.group_normalization(x, 4, eps=1e-3), PF.layer_normalization(x, no_scale=True),
                PF.instance_normalization(x, no_bias=True))

    check_parity_variable_batch(tmp_path, build, [(2, 4, 3, 3)], param_init=_randomize)


def test_normalization_functional_forms(tmp_path):
    import nnabla.function_bases as B
    import nnabla.functions as F

    def build(x):
        beta = _param("beta", (1, 1, 3, 1))
        gamma = _param("gamma", (1, 1, 3, 1))
        return (F.layer_normalization(x, _param("lb", (1, 4, 3, 2)), _param("lg", (1, 4, 3, 2))),
                B.tensor_normalization(x, axes=(0, 1, 2), no_scale=True, no_bias=True),
                F.instance_normalization(x, None, None, channel_axis=2),
                F.group_normalization(x, None, None, 2, channel_axis=1),
                B.group_normalization(x, _param("gb", (1, 1, 1, 2)), None, num_groups=2, channel_axis=3,
                                      no_scale=True),
                B.layer_normalization(x, batch_axis=(0, 1), no_scale=True, no_bias=True))

    check_parity_variable_batch(tmp_path, build, [(2, 4, 3, 2)], param_init=_randomize)


def test_tensor_normalization_over_the_batch(tmp_path):
    import nnabla.function_bases as B
    import nnabla.functions as F

    def build(x):
        beta = _param("beta", (1, 1, 3, 1))
        gamma = _param("gamma", (1, 1, 3, 1))
        return (F.tensor_normalization(x, (2,), beta, gamma), B.tensor_normalization(x, beta, gamma, axes=(2,)),
                B.tensor_normalization(x, axes=(1, 2), no_scale=True, no_bias=True),
                B.tensor_normalization(x, None, _param("g2", (1, 4, 3, 1)), axes=(1, 2), no_bias=True))

    check_parity_variable_batch(tmp_path, build, [(3, 4, 3, 2)], param_init=_randomize, batch_independent=False)


@pytest.mark.parametrize("p,axes", [(2, None), (1, (1,)), (3, (1, 2))])
def test_norm_normalization(tmp_path, p, axes):
    import nnabla.functions as F

    check_parity_variable_batch(tmp_path, lambda x: F.norm_normalization(x, p, axes), [(2, 3, 4)],
            batch_independent=axes is not None)


@pytest.mark.parametrize("dim", [0, 1])
def test_weight_normalization_and_standardization(tmp_path, dim):
    import nnabla.functions as F
    import nnabla.parametric_functions as PF

    def build(x):
        w = _param("W", (4, 3))
        g = _param("g", ((4, 3)[dim],))
        w_n = F.weight_normalization(w, g, dim=dim)
        w_s = F.weight_standardization(w, channel_axis=dim)
        return PF.affine(x, 3, name="a"), F.affine(x, w_n), F.affine(x, w_s)

    check_parity_variable_batch(tmp_path, build, [(2, 4)], param_init=_randomize)


def test_mean_subtraction(tmp_path):
    import nnabla.parametric_functions as PF

    def init(params):
        _randomize(params)
        for name, p in params.items():
            if name.endswith("/t"):
                p.d = 3.0

    check_parity_variable_batch(tmp_path, lambda x: PF.mean_subtraction(x, update_running_mean=False), [(3, 2, 4)], param_init=init)


def test_mean_subtraction_updating_running_mean(tmp_path):
    """With update_running_mean, nnabla folds the batch mean into the stored running mean before
    subtracting; the reference is nnabla running the saved file (the in-memory forward already
    updated the parameters that were saved)."""
    import nnabla as nn
    import nnabla.parametric_functions as PF
    from nnabla.utils.nnp_graph import NnpLoader

    import nncbridge
    from tests.parity.oracle import assert_close, run_onnx

    nn.clear_parameters()
    x = nn.Variable((3, 2, 4))
    y = PF.mean_subtraction(x, update_running_mean=True)
    x.d = np.random.RandomState(3).uniform(-2, 2, x.shape)
    y.forward()
    data = np.random.RandomState(4).uniform(-2, 2, x.shape).astype(np.float32)
    path = tmp_path / "ms.nnp"
    from nnabla.utils.save import save

    save(str(path), {"networks": [{"name": "net", "batch_size": 3, "outputs": {"y": y}, "names": {"x": x}}],
                     "executors": [{"name": "runtime", "network": "net", "data": ["x"], "output": ["y"]}]})
    net = NnpLoader(str(path)).get_network("net", batch_size=3)
    net.inputs["x"].d = data
    ref = net.outputs["y"]
    ref.forward()
    got = run_onnx(nncbridge.to_onnx(path), {"x": data})[0]
    assert_close(got, np.array(ref.d), what="mean_subtraction")


def test_resnet_block_with_batch_normalization(tmp_path):
    """A small ResNet-style network: conv-BN-ReLU, a residual block, a projection shortcut, pooling, affine."""
    import nnabla.functions as F
    import nnabla.parametric_functions as PF

    def conv_bn(h, c, name, stride=(1, 1), relu=True):
        with __import__("nnabla").parameter_scope(name):
            h = PF.convolution(h, c, (3, 3), pad=(1, 1), stride=stride, with_bias=False)
            h = PF.batch_normalization(h, batch_stat=False)
        return F.relu(h) if relu else h

    def build(x):
        h = conv_bn(x, 4, "stem")
        r = conv_bn(conv_bn(h, 4, "b1a"), 4, "b1b", relu=False)
        h = F.relu(h + r)
        d = conv_bn(h, 6, "down", stride=(2, 2))
        with __import__("nnabla").parameter_scope("proj"):
            s = PF.batch_normalization(PF.convolution(h, 6, (1, 1), stride=(2, 2), with_bias=False), batch_stat=False)
        h = F.relu(F.concatenate(d + s, d, axis=1))
        h = F.mean(h, axis=(2, 3))
        return F.softmax(PF.affine(h, 5, name="fc"))

    check_parity_variable_batch(tmp_path, build, [(2, 3, 8, 8)], param_init=_randomize)


@pytest.mark.parametrize("shape,dim,itr", [((4, 3), 0, 1), ((4, 3), 1, 2), ((2, 3, 4), 1, 1), ((2, 3, 4), 2, 3),
                                           ((3, 2, 2), 0, 2)])
def test_spectral_norm(tmp_path, shape, dim, itr):
    import nnabla.functions as F

    def build(x):
        w = _param("W", shape)
        u = _param("u", (shape[dim],) if dim != len(shape) - 1 else (shape[-1],))
        w_sn = F.spectral_norm(w, u, dim=dim, itr=itr, test=True)
        return F.affine(x, F.reshape(w_sn, (shape[0], -1)))

    check_parity_variable_batch(tmp_path, build, [(2, shape[0])], param_init=_randomize)


def test_fused_batch_normalization_batch_stat(tmp_path):
    import nnabla.parametric_functions as PF

    check_parity_variable_batch(tmp_path, lambda x, z: PF.fused_batch_normalization(x, z, batch_stat=True), [(3, 2, 3, 3), (3, 2, 3, 3)],
            param_init=_randomize, batch_independent=False)
