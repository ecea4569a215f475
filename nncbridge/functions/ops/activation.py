"""Element-wise activations."""
from __future__ import annotations

from ...export.context import LoweringContext
from ..registry import FunctionCall, onnx_lowering, shape_rule

_SIMPLE = {
    "ReLU": "Relu", "Sigmoid": "Sigmoid", "Tanh": "Tanh", "Abs": "Abs", "Exp": "Exp", "Log": "Log",
    "Sign": "Sign", "Identity": "Identity",
}


@shape_rule(*_SIMPLE, "Softmax", "LogSoftmax", "ELU", "LeakyReLU", "Swish", "SoftPlus")
def same_as_input(call: FunctionCall) -> list:
    return [call.input_shapes[0]]


@onnx_lowering(*_SIMPLE)
def simple(ctx: LoweringContext) -> None:
    ctx.node(_SIMPLE[ctx.call.function.type], ctx.inputs[:1], ctx.outputs)


@onnx_lowering("Softmax", "LogSoftmax")
def softmax(ctx: LoweringContext) -> None:
    op = ctx.call.function.type
    axis = ctx.param("axis", len(ctx.input_shapes[0]) - 1)
    ctx.node(op, ctx.inputs[:1], ctx.outputs, axis=int(axis))
