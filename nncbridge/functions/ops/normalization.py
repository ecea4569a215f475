"""Normalization layers at inference.

BatchNormalization / FusedBatchNormalization follow what nnabla's forward does with the stored
``batch_stat`` flag: False uses the stored mean/variance; True (a training setting that some files
keep in their runtime network) normalizes with the statistics of the batch being run, exactly as
nnabla does when it runs such a network (and as nnabla's own ONNX exporter does). MeanSubtraction
likewise follows ``update_running_mean``: when set, nnabla first folds the batch mean into the
running mean and subtracts the result.
"""
from __future__ import annotations

import numpy as np

from ...export.context import LoweringContext
from ..registry import FunctionCall, onnx_lowering, shape_rule
from .reduction import norm_axes, reduce


@shape_rule("BatchNormalization", "FusedBatchNormalization", "GroupNormalization", "InstanceNormalization",
            "LayerNormalization", "NormNormalization", "TensorNormalization", "WeightNormalization",
            "WeightStandardization", "MeanSubtraction")
def same_shape(call: FunctionCall) -> list:
    ndim = len(call.input_shapes[0])
    for name in ("axes", "batch_axis"):
        if call.params.get(name):
            norm_axes(call.params[name], ndim)
    for name in ("channel_axis", "dim", "base_axis"):
        if name in call.params:
            norm_axes([call.params[name]], ndim)
    if call.function.type == "GroupNormalization":
        channels = call.input_shapes[0][norm_axes([call.param("channel_axis", 1)], ndim)[0]]
        groups = int(call.param("num_groups", 1))
        if groups < 1 or channels % groups:
            raise ValueError(f"{channels} channels do not split into {groups} groups")
    return [call.input_shapes[0]]


def _affine_inputs(ctx: LoweringContext, first: int = 1) -> tuple[str | None, str | None, int]:
    """(beta, gamma, next index) for functions whose optional beta/gamma are left out when
    no_bias/no_scale is set (the remaining inputs move forward)."""
    i = first
    beta = gamma = None
    if not ctx.param("no_bias") and ctx.has_input(i):
        beta, i = ctx.inputs[i], i + 1
    if not ctx.param("no_scale") and ctx.has_input(i):
        gamma, i = ctx.inputs[i], i + 1
    return beta, gamma, i


def _normalize(ctx: LoweringContext, x: str, mean: str, var: str, eps: float) -> str:
    return ctx.op("Div", ctx.op("Sub", x, mean), ctx.op("Sqrt", ctx.op("Add", var, ctx.const(eps))))


def _batch_stats(ctx: LoweringContext, x: str, axes: list[int]) -> tuple[str, str]:
    """Mean and biased variance over ``axes`` (kept as size-1 dimensions)."""
    mean = reduce(ctx, "ReduceMean", x, axes, True)
    centered = ctx.op("Sub", x, mean)
    var = reduce(ctx, "ReduceMean", ctx.op("Mul", centered, centered), axes, True)
    return mean, var


def _scale_shift(ctx: LoweringContext, y: str, beta: str | None, gamma: str | None, out: list[str]) -> None:
    if gamma is not None:
        y = ctx.op("Mul", y, gamma)
    if beta is not None:
        y = ctx.op("Add", y, beta)
    ctx.node("Identity", [y], out)


def _bn_core(ctx: LoweringContext) -> str:
    x_shape = ctx.input_shapes[0]
    axes = norm_axes(ctx.param("axes") or [1], len(x_shape))
    eps = float(ctx.param("eps", 1e-5))
    beta: str | None
    gamma: str | None
    mean: str | None
    var: str | None
    if ctx.call.function.type == "FusedBatchNormalization":
        beta, gamma, mean, var = ctx.inputs[1:5]
    else:
        beta, gamma, i = _affine_inputs(ctx)
        mean = ctx.inputs[i] if ctx.has_input(i) else None
        var = ctx.inputs[i + 1] if ctx.has_input(i + 1) else None
    stat_axes = [d for d in range(len(x_shape)) if d not in axes]
    if ctx.param("batch_stat") or mean is None or var is None:
        mean, var = _batch_stats(ctx, ctx.inputs[0], stat_axes)
    elif axes == [1] and len(x_shape) >= 2:
        folded = _stored_statistics_node(ctx, beta, gamma, mean, var, eps)
        if folded is not None:
            return folded
    y = _normalize(ctx, ctx.inputs[0], mean, var, eps)
    if gamma is not None:
        y = ctx.op("Mul", y, gamma)
    if beta is not None:
        y = ctx.op("Add", y, beta)
    return y


def _stored_statistics_node(ctx: LoweringContext, beta: str | None, gamma: str | None, mean: str, var: str,
                            eps: float) -> str | None:
    """ONNX BatchNormalization over channel axis 1 when every statistic is a stored constant:
    onnxruntime folds it into a preceding Conv, which the element-wise form prevents."""
    values = {}
    for key, name in (("beta", beta), ("gamma", gamma), ("mean", mean), ("var", var)):
        if name is None:
            continue
        value = ctx.builder.constant_values.get(name)
        if value is None:
            return None
        values[key] = np.asarray(value, dtype=np.float32).reshape(-1)
    channels = ctx.input_shapes[0][1]
    if any(v.size != channels for v in values.values()):
        return None
    scale = values.get("gamma", np.ones(channels, np.float32))
    bias = values.get("beta", np.zeros(channels, np.float32))
    return ctx.op("BatchNormalization", ctx.inputs[0], ctx.const(scale, hint="scale"), ctx.const(bias, hint="bias"),
                  ctx.const(values["mean"], hint="mean"), ctx.const(values["var"], hint="var"), epsilon=eps)


@onnx_lowering("BatchNormalization")
def batch_normalization(ctx: LoweringContext) -> None:
    ctx.node("Identity", [_bn_core(ctx)], ctx.outputs[:1])


@onnx_lowering("FusedBatchNormalization")
def fused_batch_normalization(ctx: LoweringContext) -> None:
    nonlinearity = ctx.param("nonlinearity") or "relu"
    if nonlinearity != "relu":
        raise ctx.unsupported(f"nonlinearity {nonlinearity!r} (nnabla implements only 'relu')")
    y = _bn_core(ctx)
    if ctx.has_input(5):
        y = ctx.op("Add", y, ctx.inputs[5])
    ctx.node("Relu", [y], ctx.outputs[:1])


def _batch_axes(ctx: LoweringContext) -> list[int]:
    ndim = len(ctx.input_shapes[0])
    return norm_axes(ctx.params.get("batch_axis") if ctx.params.get("batch_axis") is not None else [0], ndim)


def _normalize_all_but(ctx: LoweringContext, keep: set[int]) -> None:
    """Normalize over every axis not in ``keep`` with the run's own statistics, then scale and shift."""
    ndim = len(ctx.input_shapes[0])
    beta, gamma, _ = _affine_inputs(ctx)
    mean, var = _batch_stats(ctx, ctx.inputs[0], [d for d in range(ndim) if d not in keep])
    y = _normalize(ctx, ctx.inputs[0], mean, var, float(ctx.param("eps", 1e-5)))
    _scale_shift(ctx, y, beta, gamma, ctx.outputs[:1])


@onnx_lowering("LayerNormalization")
def layer_normalization(ctx: LoweringContext) -> None:
    _normalize_all_but(ctx, set(_batch_axes(ctx)))


@onnx_lowering("InstanceNormalization")
def instance_normalization(ctx: LoweringContext) -> None:
    channel = norm_axes([ctx.param("channel_axis", 1)], len(ctx.input_shapes[0]))
    _normalize_all_but(ctx, set(_batch_axes(ctx)) | set(channel))


@onnx_lowering("TensorNormalization")
def tensor_normalization(ctx: LoweringContext) -> None:
    _normalize_all_but(ctx, set(norm_axes(ctx.param("axes") or [1], len(ctx.input_shapes[0]))))


@onnx_lowering("GroupNormalization")
def group_normalization(ctx: LoweringContext) -> None:
    x = ctx.input_shapes[0]
    ndim = len(x)
    groups = int(ctx.param("num_groups", 1)) or 1
    channel = norm_axes([ctx.param("channel_axis", 1)], ndim)[0]
    batch_axes = set(_batch_axes(ctx))
    if any(b > channel for b in batch_axes):
        raise ctx.unsupported(f"batch_axis {sorted(batch_axes)} after channel_axis {channel}")
    if x[channel] % groups:
        raise ctx.unsupported(f"{x[channel]} channels do not split into {groups} groups")
    split = [0] * channel + [groups, x[channel] // groups] + list(x[channel + 1:])
    grouped = ctx.op("Reshape", ctx.inputs[0], ctx.ints(split))
    stat_axes = [d for d in range(ndim + 1) if d not in batch_axes and d != channel]
    mean, var = _batch_stats(ctx, grouped, stat_axes)
    y = _normalize(ctx, grouped, mean, var, float(ctx.param("eps", 1e-5)))
    y = ctx.op("Reshape", y, ctx.op("Shape", ctx.inputs[0]))
    beta, gamma, _ = _affine_inputs(ctx)
    _scale_shift(ctx, y, beta, gamma, ctx.outputs[:1])


@onnx_lowering("NormNormalization")
def norm_normalization(ctx: LoweringContext) -> None:
    ndim = len(ctx.input_shapes[0])
    axes = ctx.params.get("axes")
    axes = sorted(set(norm_axes(axes if axes else range(ndim), ndim)))
    p = float(ctx.param("p", 2.0))
    x = ctx.inputs[0]
    # nnabla's forward divides by the norm alone (eps is not used there).
    if p == 2.0:
        n = reduce(ctx, "ReduceL2", x, axes, True)
    elif p == 1.0:
        n = reduce(ctx, "ReduceL1", x, axes, True)
    else:
        n = ctx.op("Pow", reduce(ctx, "ReduceSum", ctx.op("Pow", ctx.op("Abs", x), ctx.const(p)), axes, True),
                   ctx.const(1.0 / p))
    ctx.node("Div", [x, n], ctx.outputs[:1])


@onnx_lowering("WeightNormalization")
def weight_normalization(ctx: LoweringContext) -> None:
    w = ctx.input_shapes[0]
    dim = norm_axes([ctx.param("dim", 0)], len(w))[0]
    axes = [d for d in range(len(w)) if d != dim]
    ss = reduce(ctx, "ReduceSum", ctx.op("Mul", ctx.inputs[0], ctx.inputs[0]), axes, True) if axes else \
        ctx.op("Mul", ctx.inputs[0], ctx.inputs[0])
    inv = ctx.op("Pow", ctx.op("Add", ss, ctx.const(float(ctx.param("eps", 1e-12)))), ctx.const(-0.5))
    g = ctx.op("Reshape", ctx.inputs[1], ctx.ints([1 if d != dim else w[dim] for d in range(len(w))]))
    ctx.node("Mul", [ctx.op("Mul", ctx.inputs[0], inv), g], ctx.outputs[:1])


@onnx_lowering("WeightStandardization")
def weight_standardization(ctx: LoweringContext) -> None:
    w = ctx.input_shapes[0]
    channel = norm_axes([ctx.param("channel_axis", 0)], len(w))[0]
    mean, var = _batch_stats(ctx, ctx.inputs[0], [d for d in range(len(w)) if d != channel])
    ctx.node("Identity", [_normalize(ctx, ctx.inputs[0], mean, var, float(ctx.param("eps", 1e-5)))],
             ctx.outputs[:1])


@onnx_lowering("MeanSubtraction")
def mean_subtraction(ctx: LoweringContext) -> None:
    x = ctx.input_shapes[0]
    base_axis = norm_axes([ctx.param("base_axis", 1)], len(x))[0]
    rmean = ctx.inputs[1]
    if ctx.param("update_running_mean"):
        t = ctx.constant_value(2)
        if t is None:
            raise ctx.unsupported("update_running_mean=True with a running count that is not a stored parameter")
        coef = 1.0 / (float(np.asarray(t).reshape(-1)[0]) + 1.0)
        batch_mean = reduce(ctx, "ReduceMean", ctx.inputs[0], list(range(base_axis)), False)
        rmean = ctx.op("Add", rmean, ctx.op("Mul", ctx.op("Sub", batch_mean, rmean), ctx.const(coef)))
    ctx.node("Sub", [ctx.inputs[0], rmean], ctx.outputs[:1])


@shape_rule("SpectralNorm")
def spectral_norm_shape(call: FunctionCall) -> list:
    if call.param("output_u"):
        return [call.input_shapes[0], call.input_shapes[1]]
    return [call.input_shapes[0]]


def _unit(ctx: LoweringContext, v: str, eps: float) -> str:
    ss = reduce(ctx, "ReduceSum", ctx.op("Mul", v, v), [0, 1], True)
    return ctx.op("Div", v, ctx.op("Sqrt", ctx.op("Add", ss, ctx.const(eps))))


@onnx_lowering("SpectralNorm")
def spectral_norm(ctx: LoweringContext) -> None:
    """``itr`` power iterations from the stored ``u`` on every run, as nnabla's forward of a loaded
    file does (with test=False nnabla also writes the new ``u`` back; that state is not kept)."""
    w_shape = list(ctx.input_shapes[0])
    ndim = len(w_shape)
    dim = int(ctx.param("dim", 0))
    itr = int(ctx.param("itr", 1))
    eps = float(ctx.param("eps", 1e-12))
    if not 0 <= dim < ndim or itr < 1:
        raise ctx.unsupported(f"dim={dim}, itr={itr} (nnabla needs 0 <= dim < {ndim} and itr >= 1)")
    size = int(np.prod(w_shape))
    outer = dim == ndim - 1
    w = ctx.inputs[0]
    if outer:
        d1 = w_shape[-1]
        d0 = size // d1
        w2 = ctx.op("Reshape", w, ctx.ints([d0, d1]))
        u = ctx.op("Reshape", ctx.inputs[1], ctx.ints([d1, 1]))
        for _ in range(itr):
            v = ctx.op("Reshape", _unit(ctx, ctx.op("MatMul", w2, u), eps), ctx.ints([1, d0]))
            u = ctx.op("Reshape", _unit(ctx, ctx.op("MatMul", v, w2), eps), ctx.ints([d1, 1]))
        sigma = ctx.op("MatMul", ctx.op("MatMul", v, w2), u)
        ctx.node("Reshape", [ctx.op("Div", w2, sigma), ctx.ints(w_shape)], ctx.outputs[:1])
    else:
        perm = [dim] + [i for i in range(ndim) if i != dim]
        if dim:
            w = ctx.op("Transpose", w, perm=perm)
        d0 = w_shape[dim]
        d1 = size // d0
        w2 = ctx.op("Reshape", w, ctx.ints([d0, d1]))
        u = ctx.op("Reshape", ctx.inputs[1], ctx.ints([1, d0]))
        for _ in range(itr):
            v = ctx.op("Reshape", _unit(ctx, ctx.op("MatMul", u, w2), eps), ctx.ints([d1, 1]))
            u = ctx.op("Reshape", _unit(ctx, ctx.op("MatMul", w2, v), eps), ctx.ints([1, d0]))
        sigma = ctx.op("MatMul", u, ctx.op("MatMul", w2, v))
        w_sn = ctx.op("Div", w2, sigma)
        if dim:
            w_sn = ctx.op("Reshape", w_sn, ctx.ints([w_shape[i] for i in perm]))
            ctx.node("Transpose", [w_sn], ctx.outputs[:1], perm=[perm.index(i) for i in range(ndim)])
        else:
            ctx.node("Reshape", [w_sn, ctx.ints(w_shape)], ctx.outputs[:1])
    if ctx.param("output_u") and len(ctx.outputs) > 1:
        ctx.node("Identity", [ctx.inputs[1]], ctx.outputs[1:2])
