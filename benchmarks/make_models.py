"""Save a ResNet-18-style model as a Console-layout .nnp (runs in the nnabla environment).

    <nnabla-venv>/bin/python benchmarks/make_models.py [--out benchmarks/.work/resnet18.nnp] [--size 224]

The network is ResNet-18 (He et al. 2016) for 3x224x224 inputs and 1000 classes, built with
nnabla's parametric functions: Convolution (7x7/2 stem, 3x3 blocks, strided 3x3 and 1x1 projection
shortcuts, no bias) -> BatchNormalization with stored statistics -> ReLU, MaxPooling 3x3/2, eight
basic blocks whose shortcut joins through Add2, GlobalAveragePooling (``--head average``:
AveragePooling over the whole map; ``--head mean``: Mean over H and W, the same numbers), Affine. Weights and BatchNormalization statistics are seeded
random values (the benchmark measures speed and agreement, not accuracy).

The file looks like a Console export (parameters in ``parameter.protobuf``): network ``MainRuntime``, executor ``Executor`` whose input
variable ``Input`` is fed from dataset column ``x`` and whose output ``Affine`` is written as ``y'``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def basic_block(h, out_channels: int, stride: int, name: str):
    import nnabla.functions as F
    import nnabla.parametric_functions as PF
    import nnabla as nn

    with nn.parameter_scope(name):
        shortcut = h
        if stride != 1 or h.shape[1] != out_channels:
            with nn.parameter_scope("shortcut"):
                shortcut = PF.convolution(h, out_channels, (1, 1), stride=(stride, stride), with_bias=False)
                shortcut = PF.batch_normalization(shortcut, batch_stat=False)
        with nn.parameter_scope("conv1"):
            h = PF.convolution(h, out_channels, (3, 3), pad=(1, 1), stride=(stride, stride), with_bias=False)
            h = F.relu(PF.batch_normalization(h, batch_stat=False))
        with nn.parameter_scope("conv2"):
            h = PF.convolution(h, out_channels, (3, 3), pad=(1, 1), with_bias=False)
            h = PF.batch_normalization(h, batch_stat=False)
        return F.relu(F.add2(h, shortcut))


def resnet18(x, classes: int, head: str):
    import nnabla as nn
    import nnabla.functions as F
    import nnabla.parametric_functions as PF

    with nn.parameter_scope("stem"):
        h = PF.convolution(x, 64, (7, 7), pad=(3, 3), stride=(2, 2), with_bias=False)
        h = F.relu(PF.batch_normalization(h, batch_stat=False))
    h = F.max_pooling(h, (3, 3), stride=(2, 2), pad=(1, 1))
    for stage, channels in enumerate((64, 128, 256, 512)):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            h = basic_block(h, channels, stride, f"res{stage + 1}_{block + 1}")
    if head == "global":
        h = F.global_average_pooling(h)
    elif head == "average":
        h = F.average_pooling(h, h.shape[2:])
    else:
        h = F.mean(h, axis=(2, 3))
    with nn.parameter_scope("fc"):
        return PF.affine(h, classes)


def set_batch_norm_statistics(rng: np.random.RandomState) -> None:
    """Stored statistics that are not the identity, so BatchNormalization's lowering is exercised."""
    import nnabla as nn

    for name, p in nn.get_parameters(grad_only=False).items():
        leaf = name.rsplit("/", 1)[-1]
        shape = p.shape
        if leaf == "mean":
            p.d = rng.uniform(-0.2, 0.2, size=shape)
        elif leaf == "var":
            p.d = rng.uniform(0.5, 2.0, size=shape)
        elif leaf == "gamma":
            p.d = rng.uniform(0.6, 1.0, size=shape)
        elif leaf == "beta":
            p.d = rng.uniform(-0.1, 0.1, size=shape)


def make_resnet18(out: Path, size: int = 224, classes: int = 1000, head: str = "global", seed: int = 313) -> Path:
    import nnabla as nn
    from nnabla.utils.save import save

    nn.clear_parameters()
    np.random.seed(seed)
    rng = np.random.RandomState(seed)
    x = nn.Variable((1, 3, size, size))
    y = resnet18(x, classes, head)
    set_batch_norm_statistics(rng)
    x.d = rng.uniform(0, 1, size=x.shape)
    y.forward()
    if not np.all(np.isfinite(y.d)):
        raise SystemExit("the seeded ResNet-18 gives non-finite outputs")
    out.parent.mkdir(parents=True, exist_ok=True)
    save(str(out), {
        "networks": [{"name": "MainRuntime", "batch_size": 1, "outputs": {"Affine": y}, "names": {"Input": x}}],
        "executors": [{"name": "Executor", "network": "MainRuntime", "data": ["Input"], "output": ["Affine"],
                       "remp": {"Input": "x", "Affine": "y'"}}],
    }, parameter_format=".protobuf")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / ".work" / "resnet18.nnp")
    parser.add_argument("--size", type=int, default=224, help="input height and width (default 224)")
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--head", choices=["global", "average", "mean"], default="global",
                        help="GlobalAveragePooling (default), AveragePooling over the whole map, or Mean over H and W")
    args = parser.parse_args()
    path = make_resnet18(args.out, args.size, args.classes, args.head)
    print(path)


if __name__ == "__main__":
    main()
