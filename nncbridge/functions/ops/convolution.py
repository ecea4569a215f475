"""Convolution family (basic N-D channel-first case; see module docs for options)."""
from __future__ import annotations

from ...export.context import LoweringContext
from ..registry import FunctionCall, onnx_lowering, shape_rule


def _spatial(call: FunctionCall, name: str, default: int, n: int) -> tuple[int, ...]:
    value = call.param(name)
    return tuple(value) if value else (default,) * n


@shape_rule("Convolution")
def convolution_shape(call: FunctionCall) -> list:
    x, w = call.input_shapes[0], call.input_shapes[1]
    base_axis = int(call.param("base_axis", 1))
    channel_last = bool(call.param("channel_last", False))
    n = len(x) - base_axis - 1
    pad = _spatial(call, "pad", 0, n)
    stride = _spatial(call, "stride", 1, n)
    dilation = _spatial(call, "dilation", 1, n)
    spatial_in = x[base_axis:base_axis + n] if channel_last else x[base_axis + 1:]
    kernel = w[1:1 + n] if channel_last else w[2:]
    out = tuple((s + 2 * p - (d * (k - 1) + 1)) // st + 1
                for s, p, d, k, st in zip(spatial_in, pad, dilation, kernel, stride))
    if any(o <= 0 for o in out):
        raise ValueError(f"output spatial size {out} is not positive")
    return [x[:base_axis] + (out + (w[0],) if channel_last else (w[0],) + out)]


@onnx_lowering("Convolution")
def convolution(ctx: LoweringContext) -> None:
    x = ctx.input_shapes[0]
    base_axis = int(ctx.param("base_axis", 1))
    if ctx.param("channel_last", False):
        raise ctx.unsupported("channel_last=True")
    if base_axis != 1:
        raise ctx.unsupported(f"base_axis={base_axis}")
    n = len(x) - 2
    pad = _spatial(ctx.call, "pad", 0, n)
    ctx.node("Conv", [i for i in ctx.inputs[:3] if i], ctx.outputs[:1],
             strides=list(_spatial(ctx.call, "stride", 1, n)),
             dilations=list(_spatial(ctx.call, "dilation", 1, n)),
             pads=list(pad) * 2, group=int(ctx.param("group", 1)) or 1)
