"""N-step RNN / LSTM / GRU against nnabla: 1 and 2 layers, uni/bidirectional, with and without bias."""
import numpy as np
import pytest

pytestmark = pytest.mark.nnabla

T, B, I, H = 4, 3, 5, 6
CASES = [pytest.param(layers, bidir, bias, id=f"{layers}layer-{'bi' if bidir else 'uni'}-{'bias' if bias else 'nobias'}")
         for layers in (1, 2) for bidir in (False, True) for bias in (True, False)]


def _states(layers, bidir, n, rng):
    d = 2 if bidir else 1
    return [rng.uniform(-1, 1, (layers, d, B, H)).astype(np.float32) for _ in range(n)]


def _run(tmp_path, kind, layers, bidir, bias, opset=None, **kw):
    import nnabla.parametric_functions as PF

    from tests.parity.oracle import check_parity

    rng = np.random.RandomState(7)
    x = rng.uniform(-2, 2, (T, B, I)).astype(np.float32)
    states = _states(layers, bidir, 2 if kind == "LSTM" else 1, rng)

    def build(x, *s):
        fn = {"LSTM": PF.lstm, "GRU": PF.gru, "RNN": PF.rnn}[kind]
        return fn(x, *s, num_layers=layers, bidirectional=bidir, with_bias=bias, training=False, **kw)

    # x and h are (T, B, .) and (L, D, B, H): the leading dims are not a batch, so no batch-1 re-run.
    check_parity(tmp_path, build, [], inputs=[x, *states], batch_independent=False, opset=opset,
                 name=f"{kind.lower()}_{layers}_{int(bidir)}_{int(bias)}")


@pytest.mark.parametrize("layers,bidir,bias", CASES)
def test_lstm(tmp_path, layers, bidir, bias):
    _run(tmp_path, "LSTM", layers, bidir, bias)


@pytest.mark.parametrize("layers,bidir,bias", CASES)
def test_gru(tmp_path, layers, bidir, bias):
    _run(tmp_path, "GRU", layers, bidir, bias)


@pytest.mark.parametrize("layers,bidir,bias", CASES)
def test_rnn_tanh(tmp_path, layers, bidir, bias):
    _run(tmp_path, "RNN", layers, bidir, bias)


@pytest.mark.parametrize("bidir", [False, True], ids=["uni", "bi"])
def test_rnn_relu(tmp_path, bidir):
    _run(tmp_path, "RNN", 2, bidir, True, nonlinearity="relu")


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_opset13(tmp_path, kind):
    _run(tmp_path, kind, 2, True, True, opset=13)


def test_lstm_sequence_length_one(tmp_path):
    import nnabla.parametric_functions as PF

    from tests.parity.oracle import check_parity

    rng = np.random.RandomState(3)
    x = rng.uniform(-2, 2, (1, B, I)).astype(np.float32)
    h, c = _states(1, False, 2, rng)
    check_parity(tmp_path, lambda x, h, c: PF.lstm(x, h, c, training=False)[0], [], inputs=[x, h, c],
                 batch_independent=False, name="lstm_t1")


def test_computed_weights_are_refused(tmp_path):
    import nnabla as nn
    import nnabla.functions as F
    from nnabla.utils.save import save

    import nncbridge

    x, h, c = nn.Variable((T, B, I)), nn.Variable((1, 1, B, H)), nn.Variable((1, 1, B, H))
    w = nn.parameter.get_parameter_or_create("w0", (1, 4, H, I + H), np.ones((1, 4, H, I + H), np.float32))
    y = F.lstm(x, h, c, F.identity(w), training=False)[0]
    path = tmp_path / "computed.nnp"
    save(str(path), {"networks": [{"name": "net", "batch_size": B, "outputs": {"y": y},
                                   "names": {"x": x, "h": h, "c": c}}],
                     "executors": [{"name": "runtime", "network": "net", "data": ["x", "h", "c"], "output": ["y"]}]})
    with pytest.raises(nncbridge.UnsupportedFunctionError, match="weight_l0.*stored parameter"):
        nncbridge.to_onnx(path)
