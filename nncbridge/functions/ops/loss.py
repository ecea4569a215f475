"""Loss functions (element-wise, unreduced as in nnabla). Exported only when on an executor's output path."""
from __future__ import annotations

import numpy as np

from ...export.context import LoweringContext
from ..registry import FunctionCall, onnx_lowering, shape_rule

FLT_MIN = float(np.finfo(np.float32).tiny)  # nnabla clamps log arguments to numeric_limits<float>::min()

DOC_NOTES = {
    "SoftmaxCrossEntropy": "Labels are read as float and cast to int64; a negative label gives 0, as in nnabla.",
    "SigmoidCrossEntropy": "The target is truncated to an integer, as nnabla's kernel reads it as int.",
    "CategoricalCrossEntropy": "Labels are read as float and cast to int64; a negative label gives 0, as in nnabla.",
}


def _axis(call_or_ctx, ndim: int) -> int:
    axis = call_or_ctx.param("axis")
    axis = ndim - 1 if axis is None else int(axis)
    return axis + ndim if axis < 0 else axis


@shape_rule("SigmoidCrossEntropy", "BinaryCrossEntropy", "SquaredError", "AbsoluteError", "HuberLoss",
            "EpsilonInsensitiveLoss", "BinaryError")
def same_shapes(call: FunctionCall) -> list:
    a, b = call.input_shapes[0], call.input_shapes[1]
    if tuple(a) != tuple(b):
        raise ValueError(f"both inputs must have the same shape, got {a} and {b}")
    return [tuple(a)]


def checked_label_shape(call: FunctionCall) -> tuple[int, tuple[int, ...]]:
    """(class axis, label shape) after checking the label is x's shape with 1 on the class axis."""
    x, label = call.input_shapes[0], call.input_shapes[1]
    axis = _axis(call, len(x))
    want = tuple(1 if i == axis else d for i, d in enumerate(x))
    if tuple(label) != want:
        raise ValueError(f"target must have shape {want} (x's shape with 1 on axis {axis}), got {label}")
    return axis, want


@shape_rule("SoftmaxCrossEntropy", "CategoricalCrossEntropy", "TopNError")
def label_shape(call: FunctionCall) -> list:
    return [checked_label_shape(call)[1]]


@shape_rule("KLMultinomial")
def kl_shape(call: FunctionCall) -> list:
    p, q = call.input_shapes[0], call.input_shapes[1]
    if tuple(p) != tuple(q):
        raise ValueError(f"p and q must have the same shape, got {p} and {q}")
    base = int(call.param("base_axis", 1))
    base = base + len(p) if base < 0 else base
    return [tuple(p[:base]) + (1,)]


def _diff_abs(ctx: LoweringContext) -> str:
    return ctx.op("Abs", ctx.op("Sub", ctx.inputs[0], ctx.inputs[1]))


@onnx_lowering("SquaredError")
def squared_error(ctx: LoweringContext) -> None:
    d = ctx.op("Sub", ctx.inputs[0], ctx.inputs[1])
    ctx.node("Mul", [d, d], ctx.outputs[:1])


@onnx_lowering("AbsoluteError")
def absolute_error(ctx: LoweringContext) -> None:
    ctx.node("Abs", [ctx.op("Sub", ctx.inputs[0], ctx.inputs[1])], ctx.outputs[:1])


@onnx_lowering("HuberLoss")
def huber_loss(ctx: LoweringContext) -> None:
    delta = float(ctx.param("delta", 1.0))
    d = _diff_abs(ctx)
    delta_c = ctx.const(delta, hint="delta")
    linear = ctx.op("Mul", delta_c, ctx.op("Sub", ctx.op("Mul", ctx.const(2.0), d), delta_c))
    ctx.node("Where", [ctx.op("Less", d, delta_c), ctx.op("Mul", d, d), linear], ctx.outputs[:1])


@onnx_lowering("EpsilonInsensitiveLoss")
def epsilon_insensitive(ctx: LoweringContext) -> None:
    eps = ctx.const(float(ctx.param("epsilon", 0.0)), hint="epsilon")
    d = _diff_abs(ctx)
    ctx.node("Where", [ctx.op("Greater", d, eps), ctx.op("Sub", d, eps), ctx.const(0.0)], ctx.outputs[:1])


@onnx_lowering("SigmoidCrossEntropy")
def sigmoid_cross_entropy(ctx: LoweringContext) -> None:
    # -(x (t - [x >= 0]) - log(1 + exp(-|x|))), nnabla's overflow-free form
    x = ctx.inputs[0]
    t = ctx.op("Cast", ctx.op("Cast", ctx.inputs[1], to=7), to=1)  # nnabla reads the target as int
    positive = ctx.op("Cast", ctx.op("GreaterOrEqual", x, ctx.const(0.0)), to=1)
    softplus = ctx.op("Log", ctx.op("Add", ctx.const(1.0), ctx.op("Exp", ctx.op("Neg", ctx.op("Abs", x)))))
    ctx.node("Sub", [softplus, ctx.op("Mul", x, ctx.op("Sub", t, positive))], ctx.outputs[:1])


def _clamped_log(ctx: LoweringContext, value: str) -> str:
    return ctx.op("Log", ctx.op("Max", value, ctx.const(FLT_MIN, hint="flt_min")))


@onnx_lowering("BinaryCrossEntropy")
def binary_cross_entropy(ctx: LoweringContext) -> None:
    x, t = ctx.inputs[0], ctx.inputs[1]
    one = ctx.const(1.0)
    a = ctx.op("Mul", t, _clamped_log(ctx, x))
    b = ctx.op("Mul", ctx.op("Sub", one, t), _clamped_log(ctx, ctx.op("Sub", one, x)))
    ctx.node("Neg", [ctx.op("Add", a, b)], ctx.outputs[:1])


def _pick(ctx: LoweringContext, values: str, axis: int) -> tuple[str, str]:
    """values[label] along axis (labels from input 1, negative ones clamped to 0) and the "label < 0" mask."""
    label = ctx.op("Cast", ctx.inputs[1], to=7)
    negative = ctx.op("Less", label, ctx.const(0, np.int64, "zero"))
    index = ctx.op("Max", label, ctx.const(0, np.int64, "zero"))
    return ctx.op("GatherElements", values, index, axis=axis), negative


@onnx_lowering("SoftmaxCrossEntropy")
def softmax_cross_entropy(ctx: LoweringContext) -> None:
    axis = _axis(ctx, len(ctx.input_shapes[0]))
    picked, negative = _pick(ctx, ctx.op("LogSoftmax", ctx.inputs[0], axis=axis), axis)
    ctx.node("Where", [negative, ctx.const(0.0), ctx.op("Neg", picked)], ctx.outputs[:1])


@onnx_lowering("CategoricalCrossEntropy")
def categorical_cross_entropy(ctx: LoweringContext) -> None:
    axis = _axis(ctx, len(ctx.input_shapes[0]))
    picked, negative = _pick(ctx, ctx.inputs[0], axis)
    ctx.node("Where", [negative, ctx.const(0.0), ctx.op("Neg", _clamped_log(ctx, picked))], ctx.outputs[:1])


@onnx_lowering("KLMultinomial")
def kl_multinomial(ctx: LoweringContext) -> None:
    ndim = len(ctx.input_shapes[0])
    base = int(ctx.param("base_axis", 1))
    base = base + ndim if base < 0 else base
    eps = ctx.const(1e-8, hint="eps")
    log_p = ctx.op("Log", ctx.op("Add", ctx.inputs[0], eps))
    log_q = ctx.op("Log", ctx.op("Add", ctx.inputs[1], eps))
    terms = ctx.op("Mul", ctx.inputs[0], ctx.op("Sub", log_p, log_q))
    total = ctx.op("ReduceSum", terms, ctx.ints(list(range(base, ndim)), "axes"), keepdims=0)
    ctx.node("Unsqueeze", [total, ctx.ints([base], "axes")], ctx.outputs[:1])
