"""Save a zoo of Console-style networks, one per op family, as .nnp files (runs in the nnabla environment).

    <nnabla-venv>/bin/python benchmarks/make_zoo.py [--out benchmarks/.work/zoo] [--only NAME,...]

Each file looks like a Console export: network ``MainRuntime`` (``Main`` for the hand-written
loop networks), executor ``Executor`` (``Runtime``), one input, parameters in
``parameter.protobuf``, seeded random weights and non-trivial BatchNormalization statistics. The
networks built with nnabla's parametric functions end in an Affine layer, so nnabla's saver writes
their batch dimension as variable (-1). The loop networks (Repeat, Recurrent with Delay) are
written as Console writes them (nntxt with repeat ids), with the builders of ``tests/nntxt.py``.

| name | op family |
|---|---|
| cnn_bn | Convolution + BatchNormalization + ReLU, MaxPooling, Affine, Softmax (3x32x32) |
| depthwise | Convolution/2 + BN, DepthwiseConvolution + BN, 1x1 Convolution, AveragePooling (3x64x64) |
| pooling | MaxPooling (padded), AveragePooling (with and without pad counting), SumPooling, GlobalAveragePooling |
| binary | BinaryConnectConvolution, BinaryTanh, BinaryWeightAffine, BinarySigmoid (1x28x28) |
| quantized | Convolution, FixedPointQuantize, Pow2Quantize, Affine |
| mlp | Affine-only: 784-512-256-10 with ReLU, Tanh, Softmax |
| autoencoder | Convolution, MaxPooling, Affine bottleneck, Reshape, Deconvolution, Unpooling, Sigmoid |
| resnet18_64 | ResNet-18 (make_models.py) at 3x64x64, 10 classes |
| elman_recurrent | Console's Recurrent/Delay Elman cell (16 steps, 32 -> 64), Affine head |
| lstm_recurrent | an LSTM cell from Affine/Sigmoid/Tanh/Mul2/Add2 with two Delays, as Console unrolls it |
| gru_recurrent | a GRU cell from Affine/Sigmoid/Tanh/Mul2/Add2/RSubScalar with one Delay (16 steps, 32 -> 64), Affine head |
| resnet_repeat | Console's Repeat around a convolutional residual block (x3), GlobalAveragePooling, Affine |
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from make_models import make_resnet18, set_batch_norm_statistics  # noqa: E402


# -- networks built with nnabla's parametric functions --------------------------------------------
def _conv_bn_relu(h, channels: int, kernel: int, name: str, stride: int = 1, group: int = 1, relu: bool = True):
    import nnabla as nn
    import nnabla.functions as F
    import nnabla.parametric_functions as PF

    with nn.parameter_scope(name):
        pad = kernel // 2
        if group > 1:
            h = PF.depthwise_convolution(h, (kernel, kernel), pad=(pad, pad), stride=(stride, stride))
        else:
            h = PF.convolution(h, channels, (kernel, kernel), pad=(pad, pad), stride=(stride, stride))
        h = PF.batch_normalization(h, batch_stat=False)
        return F.relu(h) if relu else h


def cnn_bn(x):
    import nnabla.functions as F
    import nnabla.parametric_functions as PF

    h = F.max_pooling(_conv_bn_relu(x, 32, 3, "conv1"), (2, 2))
    h = F.max_pooling(_conv_bn_relu(h, 64, 3, "conv2"), (2, 2))
    h = F.relu(PF.affine(h, 128, name="fc1"))
    return F.softmax(PF.affine(h, 10, name="fc2"))


def depthwise(x):
    import nnabla.functions as F
    import nnabla.parametric_functions as PF

    h = _conv_bn_relu(x, 16, 3, "stem", stride=2)
    h = _conv_bn_relu(h, 16, 3, "dw1", group=16)
    h = _conv_bn_relu(h, 32, 1, "pw1")
    h = _conv_bn_relu(h, 32, 3, "dw2", stride=2, group=32)
    h = _conv_bn_relu(h, 64, 1, "pw2")
    h = F.average_pooling(h, (2, 2))
    return F.softmax(PF.affine(h, 10, name="fc"))


def pooling(x):
    import nnabla.functions as F
    import nnabla.parametric_functions as PF

    h = F.relu(PF.convolution(x, 16, (3, 3), pad=(1, 1), name="conv1"))
    h = F.max_pooling(h, (3, 3), stride=(2, 2), pad=(1, 1))
    a = F.average_pooling(h, (3, 3), stride=(1, 1), pad=(1, 1), including_pad=True)
    b = F.average_pooling(h, (3, 3), stride=(1, 1), pad=(1, 1), including_pad=False)
    h = F.sum_pooling(F.add2(a, b), (2, 2))
    h = F.relu(PF.convolution(h, 32, (3, 3), pad=(1, 1), name="conv2"))
    h = F.global_average_pooling(h)
    return PF.affine(h, 10, name="fc")


def binary(x):
    import nnabla.functions as F
    import nnabla.parametric_functions as PF

    h = PF.binary_connect_convolution(x, 16, (3, 3), pad=(1, 1), name="bconv1")
    h = F.binary_tanh(PF.batch_normalization(h, batch_stat=False, name="bn1"))
    h = F.max_pooling(h, (2, 2))
    h = PF.binary_connect_convolution(h, 32, (3, 3), pad=(1, 1), name="bconv2")
    h = F.binary_tanh(PF.batch_normalization(h, batch_stat=False, name="bn2"))
    h = F.max_pooling(h, (2, 2))
    h = F.binary_sigmoid(PF.binary_weight_affine(h, 64, name="bfc1"))
    return PF.affine(h, 10, name="fc2")


def quantized(x):
    import nnabla.functions as F
    import nnabla.parametric_functions as PF

    h = F.relu(PF.convolution(x, 16, (3, 3), pad=(1, 1), name="conv1"))
    h = F.fixed_point_quantize(h, n=8, delta=1 / 16)
    h = F.max_pooling(h, (2, 2))
    h = F.relu(PF.convolution(h, 32, (3, 3), pad=(1, 1), name="conv2"))
    h = F.pow2_quantize(h, n=8, m=1)
    h = F.max_pooling(h, (2, 2))
    return PF.affine(h, 10, name="fc")


def mlp(x):
    import nnabla.functions as F
    import nnabla.parametric_functions as PF

    h = F.relu(PF.affine(x, 512, name="fc1"))
    h = F.tanh(PF.affine(h, 256, name="fc2"))
    return F.softmax(PF.affine(h, 10, name="fc3"))


def autoencoder(x):
    import nnabla.functions as F
    import nnabla.parametric_functions as PF

    h = F.relu(PF.convolution(x, 16, (3, 3), pad=(1, 1), name="enc1"))
    h = F.max_pooling(h, (2, 2))
    h = F.relu(PF.convolution(h, 8, (3, 3), pad=(1, 1), name="enc2"))
    h = F.max_pooling(h, (2, 2))
    code = F.relu(PF.affine(h, 32, name="code"))
    h = F.relu(PF.affine(code, 8 * 7 * 7, name="decode"))
    h = F.reshape(h, (h.shape[0], 8, 7, 7))
    h = F.relu(PF.deconvolution(h, 16, (2, 2), stride=(2, 2), name="dec1"))
    h = F.unpooling(h, (2, 2))
    return F.sigmoid(PF.deconvolution(h, 1, (3, 3), pad=(1, 1), name="dec2"))


NNABLA_BUILT = {
    "cnn_bn": (cnn_bn, (3, 32, 32)),
    "depthwise": (depthwise, (3, 64, 64)),
    "pooling": (pooling, (3, 32, 32)),
    "binary": (binary, (1, 28, 28)),
    "quantized": (quantized, (1, 28, 28)),
    "mlp": (mlp, (784,)),
    "autoencoder": (autoencoder, (1, 28, 28)),
}


def save_nnabla_built(out: Path, name: str, seed: int = 313) -> Path:
    import nnabla as nn
    from nnabla.utils.save import save

    build, shape = NNABLA_BUILT[name]
    nn.clear_parameters()
    np.random.seed(seed)
    rng = np.random.RandomState(seed)
    x = nn.Variable((1, *shape))
    y = build(x)
    set_batch_norm_statistics(rng)
    x.d = rng.uniform(0, 1, size=x.shape)
    y.forward()
    if not np.all(np.isfinite(y.d)):
        raise SystemExit(f"{name}: the seeded network gives non-finite outputs")
    save(str(out), {
        "networks": [{"name": "MainRuntime", "batch_size": x.shape[0], "outputs": {"y": y}, "names": {"Input": x}}],
        "executors": [{"name": "Executor", "network": "MainRuntime", "data": ["Input"], "output": ["y"],
                       "remp": {"Input": "x", "y": "y'"}}],
    }, parameter_format=".protobuf")
    return out


# -- networks written as Console writes them (loops) ----------------------------------------------
def _write_text_nnp(path: Path, text: str, params: dict[str, tuple[int, ...]], seed: int = 0) -> Path:
    from tests.models import write_nnp

    rng = np.random.RandomState(seed)
    values = {}
    for name, shape in params.items():
        leaf = name.split("/")[-1].split("_")[0]
        if leaf == "var":
            values[name] = rng.uniform(0.5, 2.0, size=shape)
        elif leaf in ("mean", "beta", "b"):
            values[name] = rng.uniform(-0.1, 0.1, size=shape)
        elif leaf == "gamma":
            values[name] = rng.uniform(0.6, 1.0, size=shape)
        else:
            fan_in = shape[0] if "affine" in name else max(1, int(np.prod(shape[1:])))
            values[name] = rng.uniform(-1, 1, size=shape) / np.sqrt(fan_in)
    return write_nnp(path, text, {k: v.astype(np.float32) for k, v in values.items()})


def _head(inp: str, features: int, classes: int = 10) -> tuple[str, dict[str, tuple[int, ...]]]:
    from tests.nntxt import AFFINE, fn, param, var

    text = (param("Head/affine/W", (features, classes)) + param("Head/affine/b", (classes,))
            + var("Head", (-1, classes))
            + fn("Head", "Affine", [inp, "Head/affine/W", "Head/affine/b"], ["Head"], [], AFFINE))
    return text, {"Head/affine/W": (features, classes), "Head/affine/b": (classes,)}


def _cell_with_head(path: Path, cell: Callable[..., tuple[str, dict[str, tuple[int, ...]]]]) -> Path:
    """A recurrent cell of tests/nntxt.py (16 steps of 32 inputs, 64 hidden) with an Affine head
    over all its steps as the executor's output ``y'``."""
    steps, n_in, hidden = 16, 32, 64
    text, params = cell(steps, n_in, hidden, initial=0.0)
    head, head_params = _head("RecurrentOutput", steps * hidden)
    text = text.replace('  variable {\n    name: "RecurrentOutput"', head + '  variable {\n    name: "RecurrentOutput"', 1)
    text = text.replace('variable_name: "RecurrentOutput"\n    data_name: "RecurrentOutput"',
                        'variable_name: "Head"\n    data_name: "y\'"')
    return _write_text_nnp(path, text, {**params, **head_params})


def elman_recurrent(path: Path) -> Path:
    from tests.nntxt import elman

    return _cell_with_head(path, elman)


def gru_recurrent(path: Path) -> Path:
    from tests.nntxt import gru

    return _cell_with_head(path, gru)


def lstm_recurrent(path: Path) -> Path:
    from tests.nntxt import affine_gate, executor, fn, network, recurrent_param, var

    steps, n_in, hidden = 16, 32, 64
    r = "RecurrentInput"
    delay = f'recurrent_param {{ repeat_id: "{r}" }}'
    body = (var("Input", (-1, steps, n_in)) + var("H_Initial", (-1, hidden)) + var("C_Initial", (-1, hidden))
            + var("RecurrentInput", (-1, n_in), [r]) + var("H", (-1, hidden), [r]) + var("C", (-1, hidden), [r])
            + var("XH", (-1, n_in + hidden), [r])
            + fn("RecurrentInput", "RecurrentInput", ["Input"], ["RecurrentInput"], [r], recurrent_param(r, 1))
            + fn("H", "Delay", ["HNew", "H_Initial"], ["H"], [r], delay)
            + fn("C", "Delay", ["CNew", "C_Initial"], ["C"], [r], delay)
            + fn("XH", "Concatenate", ["RecurrentInput", "H"], ["XH"], [r], "concatenate_param { axis: 1 }"))
    params: dict[str, tuple[int, ...]] = {}
    for gate, act in (("I", "Sigmoid"), ("F", "Sigmoid"), ("O", "Sigmoid"), ("G", "Tanh")):
        body += affine_gate(gate, "XH", act, n_in + hidden, hidden, r, params)
    body += (var("FC", (-1, hidden), [r]) + var("IG", (-1, hidden), [r]) + var("CNew", (-1, hidden), [r])
             + var("TanhC", (-1, hidden), [r]) + var("HNew", (-1, hidden), [r])
             + var("RecurrentOutput", (-1, steps, hidden))
             + fn("FC", "Mul2", ["ActF", "C"], ["FC"], [r]) + fn("IG", "Mul2", ["ActI", "ActG"], ["IG"], [r])
             + fn("CNew", "Add2", ["FC", "IG"], ["CNew"], [r]) + fn("TanhC", "Tanh", ["CNew"], ["TanhC"], [r])
             + fn("HNew", "Mul2", ["ActO", "TanhC"], ["HNew"], [r])
             + fn("RecurrentOutput", "RecurrentOutput", ["HNew"], ["RecurrentOutput"], [], recurrent_param(r, 1, steps)))
    head, head_params = _head("RecurrentOutput", steps * hidden)
    text = (network("Main", {r: steps}, body + head)
            + executor("Main", ["Input"], ["Head"], [("H_Initial", "Constant", 0.0), ("C_Initial", "Constant", 0.0)]))
    return _write_text_nnp(path, text, {**params, **head_params})


def resnet_repeat(path: Path, times: int = 3, channels: int = 16, size: int = 32) -> Path:
    from tests.nntxt import AFFINE, executor, fn, network, param, repeat_param, var

    r = "RepeatStart"
    m = (-1, channels, size, size)
    conv = "convolution_param { pad { dim: 1 dim: 1 } stride { dim: 1 dim: 1 } dilation { dim: 1 dim: 1 } group: 1 base_axis: 1 }"
    bn = "batch_normalization_param { axes: 1 decay_rate: 0.9 eps: 1e-05 batch_stat: false }"
    params: dict[str, tuple[int, ...]] = {"Stem/conv/W": (channels, 3, 3, 3), "Stem/conv/b": (channels,)}
    body = (var("Input", (-1, 3, size, size)) + param("Stem/conv/W", params["Stem/conv/W"])
            + param("Stem/conv/b", (channels,)) + var("Stem", m) + var("StemReLU", m)
            + fn("Stem", "Convolution", ["Input", "Stem/conv/W", "Stem/conv/b"], ["Stem"], [], conv)
            + fn("StemReLU", "ReLU", ["Stem"], ["StemReLU"])
            + var("RepeatStart", m, [r])
            + fn("RepeatStart", "RepeatStart", ["StemReLU", "BlockOut"], ["RepeatStart"], [r], repeat_param(r, times)))
    previous = "RepeatStart"
    for k in (1, 2):
        w, bnp = f"Conv{k}{{RepeatStart}}/conv/W", f"BN{k}{{RepeatStart}}/bn/"
        body += (param(w, (channels, channels, 3, 3), [r]) + var(f"Conv{k}", m, [r]) + var(f"BN{k}", m, [r])
                 + "".join(param(bnp + p, (1, channels, 1, 1), [r]) for p in ("beta", "gamma", "mean", "var"))
                 + fn(f"Conv{k}", "Convolution", [previous, w], [f"Conv{k}"], [r], conv)
                 + fn(f"BN{k}", "BatchNormalization", [f"Conv{k}"] + [bnp + p for p in ("beta", "gamma", "mean", "var")],
                      [f"BN{k}"], [r], bn))
        previous = f"BN{k}"
        if k == 1:
            body += var("ReLU1", m, [r]) + fn("ReLU1", "ReLU", ["BN1"], ["ReLU1"], [r])
            previous = "ReLU1"
        for i in range(times):
            params[f"Conv{k}[{i}]/conv/W"] = (channels, channels, 3, 3)
            for p in ("beta", "gamma", "mean", "var"):
                params[f"BN{k}[{i}]/bn/{p}"] = (1, channels, 1, 1)
    body += (var("Sum", m, [r]) + var("BlockOut", m, [r]) + var("RepeatEnd", m) + var("Pool", (-1, channels, 1, 1))
             + fn("Sum", "Add2", ["BN2", "RepeatStart"], ["Sum"], [r])
             + fn("BlockOut", "ReLU", ["Sum"], ["BlockOut"], [r])
             + fn("RepeatEnd", "RepeatEnd", ["BlockOut"], ["RepeatEnd"], [], repeat_param(r, times))
             + fn("Pool", "GlobalAveragePooling", ["RepeatEnd"], ["Pool"]))
    head, head_params = _head("Pool", channels)
    text = network("Main", {r: times}, body + head) + executor("Main", ["Input"], ["Head"])
    return _write_text_nnp(path, text, {**params, **head_params})


TEXT_BUILT = {"elman_recurrent": elman_recurrent, "lstm_recurrent": lstm_recurrent, "gru_recurrent": gru_recurrent, "resnet_repeat": resnet_repeat}
ALL = [*NNABLA_BUILT, "resnet18_64", *TEXT_BUILT]


def make(out_dir: Path, name: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.nnp"
    if name in NNABLA_BUILT:
        return save_nnabla_built(path, name)
    if name == "resnet18_64":
        return make_resnet18(path, size=64, classes=10)
    return TEXT_BUILT[name](path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / ".work" / "zoo")
    parser.add_argument("--only", default="", help="comma-separated names (default: all)")
    args = parser.parse_args()
    for name in [n for n in args.only.split(",") if n] or ALL:
        print(make(args.out, name))


if __name__ == "__main__":
    main()
