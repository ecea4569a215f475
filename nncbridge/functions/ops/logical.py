"""Logical (nnabla category "Logical"): comparisons, logical ops, NaN/Inf handling, Where, SearchSorted.

nnabla returns comparisons and logical results as float 0/1 and treats any non-zero input as true.
"""
from __future__ import annotations

from ...export.context import LoweringContext
from ..registry import FunctionCall, onnx_lowering, shape_rule
from .arithmetic import broadcast_shapes

_FLOAT = 1  # onnx.TensorProto.FLOAT

_COMPARE = {"Equal": "Equal", "Greater": "Greater", "GreaterEqual": "GreaterOrEqual", "Less": "Less",
            "LessEqual": "LessOrEqual", "NotEqual": "Equal"}
_LOGICAL = {"LogicalAnd": "And", "LogicalOr": "Or", "LogicalXor": "Xor"}
_BINARY = {**_COMPARE, **_LOGICAL, "Minimum2": "Min", "Maximum2": "Max"}
_SCALAR = {f"{name}Scalar": op for name, op in {**_COMPARE, **_LOGICAL}.items()}
_UNARY = ("Sign", "MinimumScalar", "MaximumScalar", "LogicalNot", "IsNaN", "IsInf", "ResetNaN", "ResetInf",
          *_SCALAR)


@shape_rule(*_BINARY)
def binary_shape(call: FunctionCall) -> list:
    return [broadcast_shapes(call.input_shapes[0], call.input_shapes[1])]


@shape_rule(*_UNARY)
def unary_shape(call: FunctionCall) -> list:
    return [call.input_shapes[0]]


@shape_rule("Where")
def where_shape(call: FunctionCall) -> list:
    cond, x_true, x_false = call.input_shapes[:3]
    if x_true != x_false:
        raise ValueError(f"x_true {x_true} and x_false {x_false} must have the same shape")
    if len(cond) > len(x_true) or tuple(x_true[:len(cond)]) != tuple(cond):
        raise ValueError(f"condition {cond} must be a leading part of x_true's shape {x_true}")
    return [x_true]


@shape_rule("SearchSorted")
def search_sorted_shape(call: FunctionCall) -> list:
    seq, values = call.input_shapes[:2]
    if len(seq) != len(values) or tuple(seq[:-1]) != tuple(values[:-1]):
        raise ValueError(f"sorted_sequence {seq} and values {values} must agree except in the last dimension")
    return [values]


def _to_float(ctx: LoweringContext, boolean: str) -> None:
    ctx.node("Cast", [boolean], ctx.outputs[:1], to=_FLOAT)


def _truth(ctx: LoweringContext, x: str) -> str:
    return ctx.op("Not", ctx.op("Equal", x, ctx.const(0.0)))


@onnx_lowering(*_BINARY, *_SCALAR)
def binary(ctx: LoweringContext) -> None:
    kind = ctx.call.function.type
    x0 = ctx.inputs[0]
    if kind in _SCALAR:
        val = ctx.param("val", 1.0)
        x1 = ctx.const(float(bool(val)) if kind.startswith("Logical") else float(val))
    else:
        x1 = ctx.inputs[1]
    op = _BINARY.get(kind) or _SCALAR[kind]
    if op in ("Min", "Max"):
        _select(ctx, op, x0, x1)
        return
    if op in ("And", "Or", "Xor"):
        x0, x1 = _truth(ctx, x0), _truth(ctx, x1)
    result = ctx.op(op, x0, x1)
    if kind.startswith("NotEqual"):
        result = ctx.op("Not", result)
    _to_float(ctx, result)


def _select(ctx: LoweringContext, op: str, x0: str, x1: str) -> None:
    """nnabla's (x0 < x1) ? x0 : x1 (or >): unlike ONNX Min/Max, a NaN in x0 yields x1."""
    ctx.node("Where", [ctx.op("Less" if op == "Min" else "Greater", x0, x1), x0, x1], ctx.outputs[:1])


@onnx_lowering("MinimumScalar", "MaximumScalar")
def min_max_scalar(ctx: LoweringContext) -> None:
    op = "Min" if ctx.call.function.type == "MinimumScalar" else "Max"
    _select(ctx, op, ctx.inputs[0], ctx.const(float(ctx.param("val", 1.0))))


@onnx_lowering("LogicalNot")
def logical_not(ctx: LoweringContext) -> None:
    _to_float(ctx, ctx.op("Equal", ctx.inputs[0], ctx.const(0.0)))


@onnx_lowering("Sign")
def sign(ctx: LoweringContext) -> None:
    x = ctx.inputs[0]
    alpha = float(ctx.param("alpha", 1.0))
    at_zero = ctx.op("Where", ctx.op("Less", x, ctx.const(0.0)), ctx.const(-1.0), ctx.const(alpha))
    ctx.node("Where", [ctx.op("Greater", x, ctx.const(0.0)), ctx.const(1.0), at_zero], ctx.outputs[:1])


@onnx_lowering("IsNaN", "IsInf")
def is_special(ctx: LoweringContext) -> None:
    _to_float(ctx, ctx.op("IsNaN" if ctx.call.function.type == "IsNaN" else "IsInf", ctx.inputs[0]))


@onnx_lowering("ResetNaN", "ResetInf")
def reset_special(ctx: LoweringContext) -> None:
    x = ctx.inputs[0]
    found = ctx.op("IsNaN" if ctx.call.function.type == "ResetNaN" else "IsInf", x)
    ctx.node("Where", [found, ctx.const(float(ctx.param("val", 0.0))), x], ctx.outputs[:1])


@onnx_lowering("Where")
def where(ctx: LoweringContext) -> None:
    cond_rank, x_rank = len(ctx.input_shapes[0]), len(ctx.input_shapes[1])
    cond = _truth(ctx, ctx.inputs[0])
    if x_rank > cond_rank:
        # nnabla's condition covers the leading dimensions; ONNX broadcasts from the trailing ones.
        cond = ctx.op("Unsqueeze", cond, ctx.ints(list(range(cond_rank, x_rank))))
    ctx.node("Where", [cond, ctx.inputs[1], ctx.inputs[2]], ctx.outputs[:1])


@onnx_lowering("SearchSorted")
def search_sorted(ctx: LoweringContext) -> None:
    # index = how many sequence entries are < v (or <= v with right=True), for a sorted sequence.
    seq = ctx.op("Unsqueeze", ctx.inputs[0], ctx.ints([-2]))
    values = ctx.op("Unsqueeze", ctx.inputs[1], ctx.ints([-1]))
    below = ctx.op("LessOrEqual" if ctx.param("right", False) else "Less", seq, values)
    count = ctx.op("ReduceSum", ctx.op("Cast", below, to=_FLOAT), ctx.ints([-1]), keepdims=0)
    ctx.node("Identity", [count], ctx.outputs[:1])

