"""Math (nnabla category "Math"): element-wise math, generators (Constant, Arange, Linspace), BatchMatmul."""
from __future__ import annotations

import math

import numpy as np

from ...export.context import LoweringContext
from ..registry import FunctionCall, onnx_lowering, shape_rule
from .arithmetic import broadcast_shapes

_SIMPLE = {
    "Abs": "Abs", "Exp": "Exp", "Log": "Log", "Identity": "Identity", "Ceil": "Ceil", "Floor": "Floor",
    "Sin": "Sin", "Cos": "Cos", "Tan": "Tan", "Sinh": "Sinh", "Cosh": "Cosh", "ASin": "Asin", "ACos": "Acos",
    "ATan": "Atan", "ASinh": "Asinh", "ACosh": "Acosh", "ATanh": "Atanh", "Erf": "Erf",
}


@shape_rule(*_SIMPLE, "Round")
def same_as_input(call: FunctionCall) -> list:
    return [call.input_shapes[0]]


@shape_rule("ATan2")
def binary_shape(call: FunctionCall) -> list:
    return [broadcast_shapes(call.input_shapes[0], call.input_shapes[1])]


@onnx_lowering(*_SIMPLE)
def simple(ctx: LoweringContext) -> None:
    ctx.node(_SIMPLE[ctx.call.function.type], ctx.inputs[:1], ctx.outputs[:1])


@onnx_lowering("Round")
def round_half_away(ctx: LoweringContext) -> None:
    # nnabla rounds halves away from zero; ONNX Round rounds them to even.
    x = ctx.inputs[0]
    magnitude = ctx.op("Abs", x)
    whole = ctx.op("Floor", magnitude)
    up = ctx.op("Cast", ctx.op("GreaterOrEqual", ctx.op("Sub", magnitude, whole), ctx.const(0.5)), to=1)
    ctx.node("Mul", [ctx.op("Sign", x), ctx.op("Add", whole, up)], ctx.outputs[:1])


@onnx_lowering("ATan2")
def atan2(ctx: LoweringContext) -> None:
    # Quadrant corrections of atan(y / x), honouring signed zeros like std::atan2.
    y, x = ctx.inputs[0], ctx.inputs[1]
    zero = ctx.const(0.0)

    def negative(v: str) -> str:  # sign bit set, -0 included
        return ctx.op("Or", ctx.op("Less", v, zero), ctx.op("Less", ctx.op("Reciprocal", v), zero))

    x_zero, y_zero = ctx.op("Equal", x, zero), ctx.op("Equal", y, zero)
    ratio = ctx.op("Atan", ctx.op("Div", y, ctx.op("Where", x_zero, ctx.const(1.0), x)))
    on_axis = ctx.op("Where", y_zero, y, ctx.op("Mul", ctx.op("Sign", y), ctx.const(math.pi / 2)))
    base = ctx.op("Where", x_zero, on_axis, ratio)
    half_turn = ctx.op("Where", negative(y), ctx.const(-math.pi), ctx.const(math.pi))
    turn = ctx.op("And", negative(x), ctx.op("Or", ctx.op("Not", x_zero), y_zero))
    ctx.node("Where", [turn, ctx.op("Add", base, half_turn), base], ctx.outputs[:1])


# --- generators: their outputs are constants without a batch dimension ---------------------------

MAX_GENERATED = 1 << 24
"""Most elements a generator may produce (they become constants inside the ONNX file)."""


def _checked_size(kind: str, count: float) -> int:
    if not count <= MAX_GENERATED:
        raise ValueError(f"{kind} would produce {count:g} elements, more than the {MAX_GENERATED} allowed")
    return int(count)


def _arange_args(call: FunctionCall) -> tuple[np.float32, np.float32, np.float32]:
    start, stop, step = (np.float32(call.param(n, d)) for n, d in (("start", 0.0), ("stop", 0.0), ("step", 1.0)))
    if step == 0 or not (np.isfinite(start) and np.isfinite(stop) and np.isfinite(step)):
        raise ValueError(f"Arange needs finite arguments and a non-zero step, found ({start}, {stop}, {step})")
    return start, stop, step


def _generator_shape_of(call: FunctionCall) -> tuple[int, ...]:
    kind = call.function.type
    if kind == "Constant":
        shape = tuple(int(d) for d in (call.param("shape") or ()))
        if any(d < 0 for d in shape):
            raise ValueError(f"Constant shape {shape} has a negative dimension")
        _checked_size(kind, math.prod(shape))
        return shape
    if kind == "Arange":
        return _arange(*_arange_args(call)).shape
    num = int(call.param("num", 0))
    if num < 0:
        raise ValueError(f"Linspace num must not be negative, found {num}")
    return (_checked_size(kind, num),)


def _arange(start: np.float32, stop: np.float32, step: np.float32) -> np.ndarray:
    # nnabla accumulates value += step in float32 until value passes stop.
    estimate = _checked_size("Arange", math.ceil(max(0.0, (float(stop) - float(start)) / float(step))))
    terms = np.full(estimate + 2, step, dtype=np.float32)
    terms[0] = start
    values = np.add.accumulate(terms, dtype=np.float32)
    inside = values > stop if step < 0 else values < stop
    if inside.all():
        raise ValueError(f"Arange({start}, {stop}, {step}) does not reach stop in float32")
    return values[:int(np.argmin(inside))]


def _constant_value(call: FunctionCall) -> np.ndarray:
    kind = call.function.type
    shape = _generator_shape_of(call)
    if kind == "Constant":
        return np.full(shape, np.float32(call.param("val", 0.0)), dtype=np.float32)
    if kind == "Arange":
        return _arange(*_arange_args(call))
    num = shape[0]
    start, stop = np.float32(call.param("start", 0.0)), np.float32(call.param("stop", 0.0))
    step = float(stop - start) / (num - 1) if num > 1 else 0.0  # the difference is taken in float32
    return (float(start) + step * np.arange(num, dtype=np.float64)).astype(np.float32)


@shape_rule("Constant", "Arange", "Linspace")
def generator_shape(call: FunctionCall) -> list:
    return [_generator_shape_of(call)]


@onnx_lowering("Constant", "Arange", "Linspace")
def generator(ctx: LoweringContext) -> None:
    value = _constant_value(ctx.call)
    ctx.node("Identity", [ctx.const(value, hint="value")], ctx.outputs[:1])
    ctx.builder.constant_values[ctx.outputs[0]] = value


# --- BatchMatmul ---------------------------------------------------------------------------------

@shape_rule("BatchMatmul")
def batch_matmul_shape(call: FunctionCall) -> list:
    a, b = call.input_shapes[:2]
    if len(a) < 3 or len(a) != len(b):
        raise ValueError(f"inputs must have the same number (>= 3) of dimensions, found {a} and {b}")
    rows, inner_a = (a[-1], a[-2]) if call.param("transpose_a", False) else (a[-2], a[-1])
    inner_b, cols = (b[-1], b[-2]) if call.param("transpose_b", False) else (b[-2], b[-1])
    if inner_a != inner_b:
        raise ValueError(f"reduction sizes differ: {inner_a} vs {inner_b}")
    return [broadcast_shapes(tuple(a[:-2]), tuple(b[:-2])) + (rows, cols)]


@onnx_lowering("BatchMatmul")
def batch_matmul(ctx: LoweringContext) -> None:
    operands = []
    for i, flag in enumerate(("transpose_a", "transpose_b")):
        name = ctx.inputs[i]
        if ctx.param(flag, False):
            ndim = len(ctx.input_shapes[i])
            name = ctx.op("Transpose", name, perm=list(range(ndim - 2)) + [ndim - 1, ndim - 2])
        operands.append(name)
    ctx.node("MatMul", operands, ctx.outputs[:1])
