"""Pooling (basic case)."""
from __future__ import annotations

import math

from ...export.context import LoweringContext
from ..registry import FunctionCall, onnx_lowering, shape_rule


def _pool_geometry(call: FunctionCall) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], bool]:
    kernel = tuple(call.param("kernel"))
    stride = tuple(call.param("stride") or kernel)
    pad = tuple(call.param("pad") or (0,) * len(kernel))
    return kernel, stride, pad, bool(call.param("ignore_border", True))


@shape_rule("MaxPooling", "AveragePooling", "SumPooling")
def pooling_shape(call: FunctionCall) -> list:
    x = call.input_shapes[0]
    kernel, stride, pad, ignore_border = _pool_geometry(call)
    n = len(kernel)
    spatial = x[-n:]
    out = []
    for s, k, st, p in zip(spatial, kernel, stride, pad):
        if ignore_border:
            out.append((s + 2 * p - k) // st + 1)
        else:
            out.append(math.ceil((s + 2 * p - k) / st) + 1 if s + 2 * p > k else 1)
    return [tuple(x[:-n]) + tuple(out)]


@onnx_lowering("MaxPooling")
def max_pooling(ctx: LoweringContext) -> None:
    kernel, stride, pad, ignore_border = _pool_geometry(ctx.call)
    if ctx.param("channel_last", False):
        raise ctx.unsupported("channel_last=True")
    if not ignore_border:
        raise ctx.unsupported("ignore_border=False")
    ctx.node("MaxPool", ctx.inputs[:1], ctx.outputs, kernel_shape=list(kernel), strides=list(stride),
             pads=list(pad) * 2)
