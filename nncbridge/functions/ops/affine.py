"""Affine (fully connected) and Embed."""
from __future__ import annotations

import math

from ...export.context import LoweringContext
from ..registry import FunctionCall, onnx_lowering, shape_rule


@shape_rule("Affine")
def affine_shape(call: FunctionCall) -> list:
    x, w = call.input_shapes[0], call.input_shapes[1]
    base_axis = int(call.param("base_axis", 1))
    if base_axis < 0:
        base_axis += len(x)
    if math.prod(x[base_axis:]) != w[0]:
        raise ValueError(f"input features {math.prod(x[base_axis:])} != weight rows {w[0]}")
    return [tuple(x[:base_axis]) + tuple(w[1:])]


@onnx_lowering("Affine")
def affine(ctx: LoweringContext) -> None:
    x_shape, w_shape = ctx.input_shapes[0], ctx.input_shapes[1]
    base_axis = int(ctx.param("base_axis", 1))
    if base_axis < 0:
        base_axis += len(x_shape)
    # Flatten keeps leading dims symbolic; Gemm needs 2-D operands.
    flat = ctx.inputs[0] if len(x_shape) == 2 and base_axis == 1 else ctx.op("Flatten", ctx.inputs[0], axis=base_axis)
    w = ctx.inputs[1]
    if len(w_shape) > 2:
        w = ctx.op("Reshape", w, ctx.ints([w_shape[0], -1]))
    if ctx.has_input(2) and len(w_shape) == 2:
        y = ctx.op("Gemm", flat, w, ctx.inputs[2])
    else:
        y = ctx.op("MatMul", flat, w)
        if ctx.has_input(2):
            bias = ctx.inputs[2]
            if len(ctx.input_shapes[2]) != 1:
                bias = ctx.op("Reshape", bias, ctx.ints([-1]))
            y = ctx.op("Add", y, bias)
    if base_axis == 1 and len(w_shape) == 2:
        ctx.node("Identity", [y], ctx.outputs[:1])
        return
    ctx.node("Reshape", [y, ctx.batch_free_shape(ctx.output_shapes[0])], ctx.outputs[:1])


@shape_rule("Embed")
def embed_shape(call: FunctionCall) -> list:
    return [tuple(call.input_shapes[0]) + tuple(call.input_shapes[1][1:])]


@onnx_lowering("Embed")
def embed(ctx: LoweringContext) -> None:
    ctx.node("Gather", [ctx.inputs[1], ctx.op("Cast", ctx.inputs[0], to=7)], ctx.outputs[:1], axis=0)
