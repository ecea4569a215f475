"""Reductions: Sum, Mean, Max, Min, Prod, Norm, ReduceSum, ReduceMean, CumSum, CumProd.

The helpers ``reduce``, ``squeeze`` and ``unsqueeze`` hide the opset differences (axes as an
attribute before opset 18 for most ReduceX ops, as an input from 13 for ReduceSum/Squeeze).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ...export.context import LoweringContext
from ..registry import FunctionCall, onnx_lowering, shape_rule

_AXES_INPUT_SINCE = {"ReduceSum": 13}


def reduce(ctx: LoweringContext, op: str, x: str, axes: list[int], keepdims: bool,
           outputs: list[str] | None = None) -> str:
    """ONNX ReduceX over ``axes`` (non-empty, non-negative)."""
    since = _AXES_INPUT_SINCE.get(op, 18)
    keep = int(bool(keepdims))
    if ctx.opset >= since:
        out = ctx.node(op, [x, ctx.ints(list(axes), "axes")], outputs, keepdims=keep)
    else:
        out = ctx.node(op, [x], outputs, axes=list(axes), keepdims=keep)
    return out[0]


def squeeze(ctx: LoweringContext, x: str, axes: list[int], outputs: list[str] | None = None) -> str:
    return ctx.node("Squeeze", [x, ctx.ints(list(axes), "axes")], outputs)[0]


def unsqueeze(ctx: LoweringContext, x: str, axes: list[int], outputs: list[str] | None = None) -> str:
    return ctx.node("Unsqueeze", [x, ctx.ints(list(axes), "axes")], outputs)[0]


def norm_axes(axes: Any, ndim: int) -> list[int]:
    """Axes made non-negative; ValueError if one is outside ``-ndim .. ndim-1``."""
    out = [int(a) + ndim if int(a) < 0 else int(a) for a in (axes or [])]
    if any(not 0 <= a < ndim for a in out):
        raise ValueError(f"axes {tuple(axes)} out of range for {ndim} dimensions")
    return out


def _reduce_axes(call: FunctionCall) -> list[int]:
    ndim = len(call.input_shapes[0])
    axes = call.params.get("axes")
    # nnabla's Python API always stores the axes; an absent field reaches the C++ function as
    # an empty list, which reduces nothing.
    return sorted(set(norm_axes(axes, ndim)))


def _reduced_shape(shape: tuple, axes: list[int], keep: bool) -> tuple:
    if keep:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


@shape_rule("Sum", "Mean", "Prod", "Norm")
def reduce_shape(call: FunctionCall) -> list:
    return [_reduced_shape(call.input_shapes[0], _reduce_axes(call), bool(call.param("keep_dims")))]


@shape_rule("Max", "Min")
def max_min_shape(call: FunctionCall) -> list:
    shape = _reduced_shape(call.input_shapes[0], _reduce_axes(call), bool(call.param("keep_dims")))
    if call.param("with_index") and not call.param("only_index"):
        return [shape, shape]
    return [shape]


@shape_rule("ReduceSum", "ReduceMean")
def reduce_all_shape(call: FunctionCall) -> list:
    return [()]


_ONNX_REDUCE = {"Sum": "ReduceSum", "Mean": "ReduceMean", "Prod": "ReduceProd", "Max": "ReduceMax",
                "Min": "ReduceMin", "ReduceSum": "ReduceSum", "ReduceMean": "ReduceMean"}


@onnx_lowering("Sum", "Mean", "Prod")
def reduce_lowering(ctx: LoweringContext) -> None:
    axes = _reduce_axes(ctx.call)
    if not axes:
        ctx.node("Identity", ctx.inputs[:1], ctx.outputs[:1])
        return
    reduce(ctx, _ONNX_REDUCE[ctx.call.function.type], ctx.inputs[0], axes, bool(ctx.param("keep_dims")),
           ctx.outputs[:1])


@onnx_lowering("ReduceSum", "ReduceMean")
def reduce_all(ctx: LoweringContext) -> None:
    ndim = len(ctx.input_shapes[0])
    if ndim == 0:
        ctx.node("Identity", ctx.inputs[:1], ctx.outputs[:1])
        return
    reduce(ctx, _ONNX_REDUCE[ctx.call.function.type], ctx.inputs[0], list(range(ndim)), False, ctx.outputs[:1])


@onnx_lowering("Max", "Min")
def max_min(ctx: LoweringContext) -> None:
    op = ctx.call.function.type
    axes = _reduce_axes(ctx.call)
    keep = bool(ctx.param("keep_dims"))
    with_index, only_index = bool(ctx.param("with_index")), bool(ctx.param("only_index"))
    shape = ctx.input_shapes[0]
    if not (with_index or only_index):
        if not axes:
            ctx.node("Identity", ctx.inputs[:1], ctx.outputs[:1])
        else:
            reduce(ctx, _ONNX_REDUCE[op], ctx.inputs[0], axes, keep, ctx.outputs[:1])
        return
    index_out = ctx.outputs[0] if only_index else ctx.outputs[1]
    if not axes:
        if not only_index:
            ctx.node("Identity", ctx.inputs[:1], ctx.outputs[:1])
        ctx.node("Cast", [ctx.op("Mul", ctx.inputs[0], ctx.const(0.0))], [index_out], to=1)
        return
    if len(axes) == 1:
        idx = ctx.op("ArgMax" if op == "Max" else "ArgMin", ctx.inputs[0], axis=axes[0], keepdims=int(keep))
    else:
        # nnabla indexes the reduced axes as one flattened (row-major) axis.
        kept = [i for i in range(len(shape)) if i not in axes]
        moved = ctx.op("Transpose", ctx.inputs[0], perm=kept + axes)
        flat = ctx.op("Reshape", moved, ctx.ints([0] * len(kept) + [-1]))
        idx = ctx.op("ArgMax" if op == "Max" else "ArgMin", flat, axis=len(kept), keepdims=0)
        if keep:
            idx = unsqueeze(ctx, idx, axes)
    ctx.node("Cast", [idx], [index_out], to=1)
    if not only_index:
        reduce(ctx, _ONNX_REDUCE[op], ctx.inputs[0], axes, keep, ctx.outputs[:1])


@onnx_lowering("Norm")
def norm(ctx: LoweringContext) -> None:
    axes = _reduce_axes(ctx.call)
    keep = bool(ctx.param("keep_dims"))
    p = float(ctx.param("p", 2.0))
    x = ctx.inputs[0]
    if not axes:
        ctx.node("Abs", [x], ctx.outputs[:1])
        return
    if p == 2.0:
        reduce(ctx, "ReduceL2", x, axes, keep, ctx.outputs[:1])
    elif p == 1.0:
        reduce(ctx, "ReduceL1", x, axes, keep, ctx.outputs[:1])
    else:
        s = reduce(ctx, "ReduceSum", ctx.op("Pow", ctx.op("Abs", x), ctx.const(p)), axes, keep)
        ctx.node("Pow", [s, ctx.const(1.0 / p)], ctx.outputs[:1])


@shape_rule("CumSum", "CumProd")
def cumulative_shape(call: FunctionCall) -> list:
    norm_axes([call.param("axis", 0)], len(call.input_shapes[0]))
    return [call.input_shapes[0]]


@onnx_lowering("CumSum")
def cumsum(ctx: LoweringContext) -> None:
    ndim = len(ctx.input_shapes[0])
    axis = norm_axes([ctx.param("axis", 0)], ndim)[0]
    ctx.node("CumSum", [ctx.inputs[0], ctx.const(axis, np.int64, "axis")], ctx.outputs[:1],
             exclusive=int(bool(ctx.param("exclusive"))), reverse=int(bool(ctx.param("reverse"))))


@onnx_lowering("CumProd")
def cumprod(ctx: LoweringContext) -> None:
    """out[..., i] = prod over the selected prefix of x[..., j]: a masked ReduceProd over an n x n grid."""
    shape = ctx.input_shapes[0]
    ndim = len(shape)
    axis = norm_axes([ctx.param("axis", 0)], ndim)[0]
    n = shape[axis]
    if axis == 0 and not ctx.fixed_batch:
        raise ctx.unsupported("CumProd along the batch axis needs a fixed batch size (--batch-size)")
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    exclusive, reverse = bool(ctx.param("exclusive")), bool(ctx.param("reverse"))
    if reverse:
        mask = j > i if exclusive else j >= i
    else:
        mask = j < i if exclusive else j <= i
    perm = [d for d in range(ndim) if d != axis] + [axis]
    x = ctx.op("Transpose", ctx.inputs[0], perm=perm) if axis != ndim - 1 else ctx.inputs[0]
    grid = ctx.op("Unsqueeze", x, ctx.ints([ndim - 1], "axes"))  # (..., 1, n) broadcast against (n, n)
    masked = ctx.op("Where", ctx.const(mask, np.bool_, "mask"), grid, ctx.const(1.0))
    prod = reduce(ctx, "ReduceProd", masked, [ndim], False)
    if axis != ndim - 1:
        inverse = [perm.index(d) for d in range(ndim)]
        ctx.node("Transpose", [prod], ctx.outputs[:1], perm=inverse)
    else:
        ctx.node("Identity", [prod], ctx.outputs[:1])
