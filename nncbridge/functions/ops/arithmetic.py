"""Arithmetic (nnabla category "Arithmetic"): *2 binaries, N-ary sums/products and scalar forms.

nnabla's binary functions need inputs of equal rank whose dimensions agree or are 1; ONNX's
numpy-style broadcasting covers that. ``inplace`` arguments do not change results.
"""
from __future__ import annotations

from ...export.context import LoweringContext
from ..registry import FunctionCall, onnx_lowering, shape_rule

_BINARY = {"Add2": "Add", "BcAdd2": "Add", "Sub2": "Sub", "Mul2": "Mul", "Div2": "Div", "Pow2": "Pow"}


def broadcast_shapes(a: tuple, b: tuple) -> tuple:
    """nnabla's broadcast of two equal-rank shapes."""
    if len(a) != len(b):
        raise ValueError(f"inputs must have the same number of dimensions, found {len(a)} and {len(b)}")
    out = []
    for i, (p, q) in enumerate(zip(a, b)):
        if p != q and 1 not in (p, q):
            raise ValueError(f"dimension {i} differs ({p} vs {q}) and neither is 1")
        out.append(q if p == 1 else p)
    return tuple(out)


@shape_rule(*_BINARY)
def binary_shape(call: FunctionCall) -> list:
    return [broadcast_shapes(call.input_shapes[0], call.input_shapes[1])]


@shape_rule("AddN", "MulN")
def nary_shape(call: FunctionCall) -> list:
    first = call.input_shapes[0]
    for i, s in enumerate(call.input_shapes[1:], 1):
        if s != first:
            raise ValueError(f"input {i} has shape {s}, expected {first} like input 0")
    return [first]


@shape_rule("AddScalar", "MulScalar", "PowScalar", "RSubScalar", "RDivScalar", "RPowScalar")
def scalar_shape(call: FunctionCall) -> list:
    return [call.input_shapes[0]]


@onnx_lowering(*_BINARY)
def binary(ctx: LoweringContext) -> None:
    ctx.node(_BINARY[ctx.call.function.type], ctx.inputs[:2], ctx.outputs[:1])


@onnx_lowering("AddN")
def add_n(ctx: LoweringContext) -> None:
    ctx.node("Sum", list(ctx.inputs), ctx.outputs[:1])


@onnx_lowering("MulN")
def mul_n(ctx: LoweringContext) -> None:
    acc = ctx.inputs[0]
    for name in ctx.inputs[1:]:
        acc = ctx.op("Mul", acc, name)
    ctx.node("Identity", [acc], ctx.outputs[:1])


@onnx_lowering("AddScalar", "MulScalar", "PowScalar", "RSubScalar", "RDivScalar", "RPowScalar")
def scalar(ctx: LoweringContext) -> None:
    kind = ctx.call.function.type
    x = ctx.inputs[0]
    val = float(ctx.param("val", 1.0))
    if kind == "PowScalar" and val == 0.5:
        ctx.node("Sqrt", [x], ctx.outputs[:1])
        return
    c = ctx.const(val)
    op, reversed_ = {"AddScalar": ("Add", False), "MulScalar": ("Mul", False), "PowScalar": ("Pow", False),
                     "RSubScalar": ("Sub", True), "RDivScalar": ("Div", True), "RPowScalar": ("Pow", True)}[kind]
    ctx.node(op, [c, x] if reversed_ else [x, c], ctx.outputs[:1])
