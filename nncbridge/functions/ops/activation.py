"""Neural network activation functions (nnabla category "Neural Network Activation Functions").

Formulas follow nnabla's C++ kernels, e.g. GELU is the tanh approximation and SoftPlus/LogSigmoid
use the overflow-free forms max(x, 0) + log(1 + exp(-|x|)).
"""
from __future__ import annotations

import math

from ...export.context import LoweringContext
from ..registry import FunctionCall, onnx_lowering, shape_rule

_SIMPLE = {
    "ReLU": "Relu", "Sigmoid": "Sigmoid", "Tanh": "Tanh", "SoftSign": "Softsign",
}


@shape_rule(*_SIMPLE, "Softmax", "LogSoftmax", "ELU", "SELU", "LeakyReLU", "Swish", "SoftPlus", "PReLU", "GELU",
            "Mish", "ReLU6", "HardSigmoid", "HardTanh", "LogSigmoid", "TanhShrink", "Sinc")
def same_as_input(call: FunctionCall) -> list:
    return [call.input_shapes[0]]


def _axis(call: FunctionCall, ndim: int, default: int) -> int:
    axis = int(call.param("axis", default))
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} out of range for {ndim}-d input")
    return axis + ndim if axis < 0 else axis


@shape_rule("CReLU", "CELU")
def doubled_axis(call: FunctionCall) -> list:
    x = call.input_shapes[0]
    axis = _axis(call, len(x), 1)
    return [tuple(2 * d if i == axis else d for i, d in enumerate(x))]


@onnx_lowering(*_SIMPLE)
def simple(ctx: LoweringContext) -> None:
    ctx.node(_SIMPLE[ctx.call.function.type], ctx.inputs[:1], ctx.outputs[:1])


@onnx_lowering("Softmax", "LogSoftmax")
def softmax(ctx: LoweringContext) -> None:
    ndim = len(ctx.input_shapes[0])
    axis = _axis(ctx.call, ndim, ndim - 1)
    ctx.node(ctx.call.function.type, ctx.inputs[:1], ctx.outputs[:1], axis=axis)


@onnx_lowering("LeakyReLU")
def leaky_relu(ctx: LoweringContext) -> None:
    ctx.node("LeakyRelu", ctx.inputs[:1], ctx.outputs[:1], alpha=float(ctx.param("alpha", 0.1)))


@onnx_lowering("ELU")
def elu(ctx: LoweringContext) -> None:
    ctx.node("Elu", ctx.inputs[:1], ctx.outputs[:1], alpha=float(ctx.param("alpha", 1.0)))


@onnx_lowering("SELU")
def selu(ctx: LoweringContext) -> None:
    ctx.node("Selu", ctx.inputs[:1], ctx.outputs[:1], alpha=float(ctx.param("alpha", 1.673263242354377)),
             gamma=float(ctx.param("scale", 1.05070098735548)))


@onnx_lowering("CReLU", "CELU")
def concatenated_pair(ctx: LoweringContext) -> None:
    x = ctx.inputs[0]
    axis = _axis(ctx.call, len(ctx.input_shapes[0]), 1)
    if ctx.call.function.type == "CReLU":
        halves = [ctx.op("Relu", x), ctx.op("Relu", ctx.op("Neg", x))]
    else:
        alpha = float(ctx.param("alpha", 1.0))
        halves = [ctx.op("Elu", x, alpha=alpha), ctx.op("Elu", ctx.op("Neg", x), alpha=alpha)]
    ctx.node("Concat", halves, ctx.outputs[:1], axis=axis)


@onnx_lowering("PReLU")
def prelu(ctx: LoweringContext) -> None:
    x_shape, w_shape = ctx.input_shapes[0], ctx.input_shapes[1]
    ndim = len(x_shape)
    base_axis = int(ctx.param("base_axis", 1))
    base_axis = base_axis + ndim if base_axis < 0 else base_axis
    size = math.prod(w_shape)
    if size == 1:
        slope = ctx.op("Reshape", ctx.inputs[1], ctx.ints([1]))
    elif len(w_shape) == 1 and 0 <= base_axis < ndim and w_shape[0] == x_shape[base_axis]:
        slope = ctx.op("Reshape", ctx.inputs[1], ctx.ints([w_shape[0]] + [1] * (ndim - base_axis - 1)))
    else:
        raise ctx.unsupported(f"slope of shape {tuple(w_shape)} must have 1 element or "
                              f"shape ({x_shape[base_axis] if 0 <= base_axis < ndim else '?'},) "
                              f"for input {tuple(x_shape)} with base_axis {base_axis}")
    ctx.node("PRelu", [ctx.inputs[0], slope], ctx.outputs[:1])


@onnx_lowering("Swish")
def swish(ctx: LoweringContext) -> None:
    x = ctx.inputs[0]
    ctx.node("Mul", [x, ctx.op("Sigmoid", x)], ctx.outputs[:1])


@onnx_lowering("GELU")
def gelu(ctx: LoweringContext) -> None:
    x = ctx.inputs[0]
    cube = ctx.op("Mul", ctx.op("Mul", x, x), x)
    inner = ctx.op("Mul", ctx.op("Add", x, ctx.op("Mul", cube, ctx.const(0.044715))),
                   ctx.const(math.sqrt(2 / math.pi)))
    half_x = ctx.op("Mul", x, ctx.const(0.5))
    ctx.node("Mul", [half_x, ctx.op("Add", ctx.op("Tanh", inner), ctx.const(1.0))], ctx.outputs[:1])


def _softplus(ctx: LoweringContext, x: str, beta: float = 1.0) -> str:
    """max(x, 0) + log(1 + exp(-beta |x|)) / beta, which never overflows."""
    bx = x if beta == 1.0 else ctx.op("Mul", x, ctx.const(beta))
    tail = ctx.op("Log", ctx.op("Add", ctx.op("Exp", ctx.op("Neg", ctx.op("Abs", bx))), ctx.const(1.0)))
    if beta != 1.0:
        tail = ctx.op("Div", tail, ctx.const(beta))
    return ctx.op("Add", ctx.op("Max", x, ctx.const(0.0)), tail)


@onnx_lowering("SoftPlus")
def softplus(ctx: LoweringContext) -> None:
    beta = float(ctx.param("beta", 1.0))
    if beta == 0:
        raise ctx.unsupported("SoftPlus with beta 0 divides by zero")
    ctx.node("Identity", [_softplus(ctx, ctx.inputs[0], beta)], ctx.outputs[:1])


@onnx_lowering("LogSigmoid")
def log_sigmoid(ctx: LoweringContext) -> None:
    ctx.node("Neg", [_softplus(ctx, ctx.op("Neg", ctx.inputs[0]))], ctx.outputs[:1])


@onnx_lowering("Mish")
def mish(ctx: LoweringContext) -> None:
    x = ctx.inputs[0]
    ctx.node("Mul", [x, ctx.op("Tanh", _softplus(ctx, x))], ctx.outputs[:1])


@onnx_lowering("ReLU6", "HardTanh")
def clip(ctx: LoweringContext) -> None:
    low, high = (0.0, 6.0) if ctx.call.function.type == "ReLU6" else (-1.0, 1.0)
    ctx.node("Clip", [ctx.inputs[0], ctx.const(low), ctx.const(high)], ctx.outputs[:1])


@onnx_lowering("HardSigmoid")
def hard_sigmoid(ctx: LoweringContext) -> None:
    ctx.node("HardSigmoid", ctx.inputs[:1], ctx.outputs[:1], alpha=0.2, beta=0.5)


@onnx_lowering("TanhShrink")
def tanh_shrink(ctx: LoweringContext) -> None:
    x = ctx.inputs[0]
    ctx.node("Sub", [x, ctx.op("Tanh", x)], ctx.outputs[:1])


@onnx_lowering("Sinc")
def sinc(ctx: LoweringContext) -> None:
    x = ctx.inputs[0]
    zero = ctx.op("Equal", x, ctx.const(0.0))
    ratio = ctx.op("Div", ctx.op("Sin", x), ctx.op("Where", zero, ctx.const(1.0), x))
    ctx.node("Where", [zero, ctx.const(1.0), ratio], ctx.outputs[:1])
