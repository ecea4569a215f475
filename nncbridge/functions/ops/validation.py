"""Validation functions (Console's error layers). Shape rules for TopNError/BinaryError live in loss.py."""
from __future__ import annotations

import numpy as np

from ...export.context import LoweringContext
from ..registry import FunctionCall, onnx_lowering, shape_rule
from .loss import _axis, checked_label_shape

DOC_NOTES = {
    "ConfusionMatrix": "Summed over all samples: a (classes, classes) matrix, rows = label, columns = arg max.",
    "TopNError": "1 where more than n entries are ≥ the target's score (ties count against), as in nnabla.",
}


@onnx_lowering("BinaryError")
def binary_error(ctx: LoweringContext) -> None:
    half = ctx.const(0.5)
    a = ctx.op("GreaterOrEqual", ctx.inputs[0], half)
    b = ctx.op("GreaterOrEqual", ctx.inputs[1], half)
    ctx.node("Cast", [ctx.op("Xor", a, b)], ctx.outputs[:1], to=1)


@onnx_lowering("TopNError")
def top_n_error(ctx: LoweringContext) -> None:
    axis = _axis(ctx, len(ctx.input_shapes[0]))
    n = int(ctx.param("n", 1))
    label = ctx.op("Cast", ctx.inputs[1], to=7)
    threshold = ctx.op("GatherElements", ctx.inputs[0], label, axis=axis)
    at_least = ctx.op("Cast", ctx.op("GreaterOrEqual", ctx.inputs[0], threshold), to=1)
    count = ctx.op("ReduceSum", at_least, ctx.ints([axis], "axes"), keepdims=1)
    ctx.node("Cast", [ctx.op("Greater", count, ctx.const(float(n)))], ctx.outputs[:1], to=1)


@shape_rule("ConfusionMatrix")
def confusion_matrix_shape(call: FunctionCall) -> list:
    axis, _ = checked_label_shape(call)
    classes = call.input_shapes[0][axis]
    return [(classes, classes)]


@onnx_lowering("ConfusionMatrix")
def confusion_matrix(ctx: LoweringContext) -> None:
    shape = ctx.input_shapes[0]
    axis = _axis(ctx, len(shape))
    classes = int(shape[axis])
    perm = [i for i in range(len(shape)) if i != axis] + [axis]
    flat_x = ctx.op("Reshape", ctx.op("Transpose", ctx.inputs[0], perm=perm), ctx.ints([-1, classes]))
    flat_label = ctx.op("Reshape", ctx.op("Cast", ctx.inputs[1], to=7), ctx.ints([-1]))
    predicted = ctx.op("ArgMax", flat_x, axis=1, keepdims=0)
    depth = ctx.const(classes, np.int64, "depth")
    values = ctx.const([0.0, 1.0], hint="onehot")
    label_hot = ctx.op("OneHot", flat_label, depth, values, axis=-1)
    pred_hot = ctx.op("OneHot", predicted, depth, values, axis=-1)
    ctx.node("MatMul", [ctx.op("Transpose", label_hot, perm=[1, 0]), pred_hot], ctx.outputs[:1])
