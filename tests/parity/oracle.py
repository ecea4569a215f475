"""nnabla as the numerical oracle: build a graph with nnabla, save it, convert it with nncbridge,
run it in onnxruntime and compare with nnabla's own forward pass.

Used only in the nnabla environment (tests that import this module are marked ``nnabla``).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from pathlib import Path

import numpy as np

import nncbridge

TOLERANCE = 1e-5


def run_onnx(model_proto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(model_proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def assert_close(got: np.ndarray, ref: np.ndarray, tolerance: float = TOLERANCE, what: str = "") -> None:
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != nnabla's {ref.shape}"
    if ref.size == 0:
        return
    scale = max(1.0, float(np.nanmax(np.abs(ref))) if np.isfinite(ref).any() else 1.0)
    same_nonfinite = np.array_equal(np.isnan(got), np.isnan(ref)) and np.array_equal(np.isinf(got), np.isinf(ref))
    assert same_nonfinite, f"{what}: NaN/Inf positions differ from nnabla's"
    finite = np.isfinite(ref)
    err = float(np.max(np.abs(got[finite].astype(np.float64) - ref[finite]))) if finite.any() else 0.0
    assert err <= tolerance * scale, f"{what}: max |diff| {err:.3g} > {tolerance:g} * {scale:.3g}"


def check_parity(
    tmp_path: Path,
    build: Callable[..., object],
    input_shapes: Sequence[Sequence[int]],
    *,
    seed: int = 313,
    tolerance: float = TOLERANCE,
    opset: int | None = None,
    input_range: tuple[float, float] = (-2.0, 2.0),
    inputs: Sequence[np.ndarray] | None = None,
    batch_independent: bool = True,
    param_init: Callable[[dict], None] | None = None,
    name: str = "case",
) -> Path:
    """Build ``build(*input_variables)`` with nnabla, save it to an .nnp, compare nncbridge's ONNX with nnabla.

    ``input_shapes`` include the batch dimension (use a batch of 2 or 3). ``build`` returns one
    nnabla Variable or a tuple of them. Parameters come from nnabla's initializers (seeded);
    ``param_init(params)`` may overwrite them (e.g. BatchNormalization statistics).
    With ``batch_independent`` the ONNX graph is also run on the first sample alone (batch 1)
    to prove the batch dimension was not baked in. Returns the .nnp path.
    """
    import nnabla as nn
    from nnabla.utils.save import save

    rng = np.random.RandomState(seed)
    nn.clear_parameters()
    np.random.seed(seed)
    if inputs is None:
        inputs = [rng.uniform(*input_range, size=shape).astype(np.float32) for shape in input_shapes]
    xs = [nn.Variable(tuple(a.shape)) for a in inputs]
    for x, a in zip(xs, inputs):
        x.d = a
    with nn.parameter_scope(name):
        out = build(*xs)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    if param_init is not None:
        param_init(nn.get_parameters(grad_only=False))
    for y in outs:
        y.forward(clear_buffer=False)
    refs = [np.array(y.d, copy=True) for y in outs]

    names = {f"x{i}": x for i, x in enumerate(xs)}
    outputs = {f"y{i}": y for i, y in enumerate(outs)}
    path = tmp_path / f"{name}.nnp"
    save(str(path), {
        "networks": [{"name": "net", "batch_size": inputs[0].shape[0], "outputs": outputs, "names": names}],
        "executors": [{"name": "runtime", "network": "net", "data": list(names), "output": list(outputs)}],
    })

    model = nncbridge.read(path)
    exe = model.executors["runtime"]
    feed_names = [d.variable for d in exe.data]
    proto = nncbridge.to_onnx(model, opset=opset)
    got = run_onnx(proto, dict(zip(feed_names, inputs)))
    for i, (g, r) in enumerate(zip(got, refs)):
        assert_close(g, r, tolerance, f"{name} output {i}")
    if batch_independent and inputs[0].shape[0] > 1:
        single = run_onnx(proto, {n: a[:1] for n, a in zip(feed_names, inputs)})
        for i, (g, r) in enumerate(zip(single, refs)):
            assert_close(g, r[:1], tolerance, f"{name} output {i} at batch 1")
    return path


def check_parity_variable_batch(tmp_path: Path, build: Callable[..., Any], shapes: Sequence[tuple[int, ...]],
                                **kw: Any) -> Any:
    """``check_parity``; a batch-independent case gets an extra Affine output so that nnabla's saver
    marks the batch dimension variable (-1): it does so only when some layer has a base_axis."""
    import nnabla.parametric_functions as PF

    if kw.get("batch_independent", True):
        def marked(*xs: Any) -> Any:
            out = build(*xs)
            outs = list(out) if isinstance(out, (tuple, list)) else [out]
            return (*outs, PF.affine(xs[0], 1, name="batch_marker"))

        return check_parity(tmp_path, marked, shapes, **kw)
    return check_parity(tmp_path, build, shapes, **kw)
