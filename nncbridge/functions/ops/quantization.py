"""Quantization layers at inference.

nnabla's binary layers recompute their binarized weight from the float ``weight`` on every forward
pass (the stored ``binary_weight``/``alpha`` are outputs of that step), so the export binarizes the
stored ``weight`` and hands the result to the Affine/Convolution lowering.
"""
from __future__ import annotations

import math

import numpy as np

from ...export.context import LoweringContext
from ..registry import FunctionCall, function_spec, lowering_for, onnx_lowering, shape_rule, shape_rule_for

_BINARY = {"BinaryConnectAffine": "Affine", "BinaryWeightAffine": "Affine", "INQAffine": "Affine",
           "BinaryConnectConvolution": "Convolution", "BinaryWeightConvolution": "Convolution",
           "INQConvolution": "Convolution"}

DOC_NOTES = {
    "BinaryConnectAffine": "Weight binarized at export (sign, zeros to quantize_zero_to); weight must be stored.",
    "BinaryConnectConvolution": "Weight binarized at export (sign, zeros to quantize_zero_to); weight must be stored.",
    "BinaryWeightAffine": "Weight binarized and scaled by its mean |w| per output at export.",
    "BinaryWeightConvolution": "Weight binarized and scaled by its mean |w| per output map at export.",
}
# Registered lowerings that always refuse, with the reason (docs/functions.md lists them as not exported).
UNSUPPORTED = {
    "INQAffine": "INQAffine is not exportable: its weight quantization depends on the training iteration",
    "INQConvolution": "INQConvolution is not exportable: its weight quantization depends on the training iteration",
    "Prune": "Prune is not exportable: its threshold is a rank statistic of the whole input",
    "MinMaxQuantize": "MinMaxQuantize is not exportable: its range follows training statistics (ema / x_min_max)",
}


def _core_call(call: FunctionCall) -> FunctionCall:
    """The plain Affine/Convolution call behind a binary layer: inputs (x, weight[, bias])."""
    kind = call.function.type
    shapes = list(call.input_shapes)
    bias_index = 4 if "Weight" in kind and "Binary" in kind else 3
    core = shapes[:2] + ([shapes[bias_index]] if len(shapes) > bias_index else [])
    params = {i: v for i, v in call.parameter_inputs.items() if i < 2}
    spec = function_spec(_BINARY[kind])
    assert spec is not None, _BINARY[kind]  # Affine and Convolution are always in nnabla's table
    return FunctionCall(call.function, spec, core, call.network, call.batch_size, params)


@shape_rule(*_BINARY)
def binary_shape(call: FunctionCall) -> list:
    w, binary = call.input_shapes[1], call.input_shapes[2]
    if "INQ" not in call.function.type and tuple(w) != tuple(binary):
        raise ValueError(f"binary_weight must have weight's shape {w}, got {binary}")
    rule = shape_rule_for(_BINARY[call.function.type])
    if rule is None:
        raise ValueError(f"no shape rule for {_BINARY[call.function.type]}")
    return rule(_core_call(call))


def _binarize(w: np.ndarray, zero_to: float) -> np.ndarray:
    return np.where(w > 0, 1.0, np.where(w < 0, -1.0, zero_to)).astype(np.float32)


@onnx_lowering("BinaryConnectAffine", "BinaryConnectConvolution", "BinaryWeightAffine", "BinaryWeightConvolution")
def binary_layer(ctx: LoweringContext) -> None:
    kind = ctx.call.function.type
    w = ctx.constant_value(1)
    if w is None:
        raise ctx.unsupported(f"{kind} weight is computed in the graph; ONNX export needs a stored parameter")
    w = np.asarray(w, np.float32)
    binary = _binarize(w, float(ctx.param("quantize_zero_to", 1.0)))
    if kind.startswith("BinaryWeight"):
        if kind.endswith("Affine"):
            # Affine weight is (in..., out...): alpha per output = mean |w| over the input features
            rows = int(w.shape[0])
            flat = np.abs(w.reshape(rows, -1))
            binary = binary * (flat.sum(axis=0) / rows).reshape((1,) + w.shape[1:])
        else:
            alpha = np.abs(w.reshape(w.shape[0], -1)).mean(axis=1)
            binary = binary * alpha.reshape((-1,) + (1,) * (w.ndim - 1))
    core = _core_call(ctx.call)
    entry = lowering_for(_BINARY[kind])
    if entry is None:
        raise ctx.unsupported(f"no ONNX lowering for {_BINARY[kind]}")
    bias_index = 4 if kind.startswith("BinaryWeight") else 3
    inputs = [ctx.inputs[0], ctx.const(binary.astype(np.float32), hint="binary_weight")]
    if ctx.has_input(bias_index):
        inputs.append(ctx.inputs[bias_index])
    entry.convert(LoweringContext(ctx.builder, core, inputs, ctx.outputs, ctx.output_shapes, ctx.fixed_batch,
                                  ctx.batch_dims_of))


@onnx_lowering("INQAffine", "INQConvolution", "Prune", "MinMaxQuantize")
def not_exportable(ctx: LoweringContext) -> None:
    raise ctx.unsupported(UNSUPPORTED[ctx.call.function.type])


@shape_rule("BinarySigmoid", "BinaryTanh", "FixedPointQuantize", "Pow2Quantize", "Prune")
def same_shape(call: FunctionCall) -> list:
    return [tuple(call.input_shapes[0])]


@shape_rule("MinMaxQuantize", "QuantizeLinear", "DequantizeLinear")
def broadcast_params(call: FunctionCall) -> list:
    x = tuple(call.input_shapes[0])
    for s in call.input_shapes[1:]:
        if len(s) != len(x) or any(d not in (1, xd) for d, xd in zip(s, x)):
            raise ValueError(f"parameter shape {tuple(s)} does not broadcast to the input {x}")
    return [x]


@onnx_lowering("BinarySigmoid", "BinaryTanh")
def binary_activation(ctx: LoweringContext) -> None:
    low = 0.0 if ctx.call.function.type == "BinarySigmoid" else -1.0
    positive = ctx.op("Greater", ctx.inputs[0], ctx.const(0.0))
    ctx.node("Where", [positive, ctx.const(1.0), ctx.const(low)], ctx.outputs[:1])


def _round_half_away(ctx: LoweringContext, x: str) -> str:
    """std::round: halves away from zero (ONNX Round goes to even)."""
    return ctx.op("Mul", ctx.op("Sign", x), ctx.op("Floor", ctx.op("Add", ctx.op("Abs", x), ctx.const(0.5))))


@onnx_lowering("FixedPointQuantize")
def fixed_point(ctx: LoweringContext) -> None:
    sign = bool(ctx.param("sign", True))
    n = int(ctx.param("n", 8)) - (1 if sign else 0)
    delta = float(ctx.param("delta", 0.0625))
    high = (2.0 ** n - 1) * delta
    low = -high if sign else 0.0
    x = ctx.inputs[0]
    # int(|x|/delta + 0.5) truncates toward zero: the same as Floor for non-negative values
    steps = ctx.op("Floor", ctx.op("Add", ctx.op("Div", ctx.op("Abs", x), ctx.const(delta)), ctx.const(0.5)))
    magnitude = ctx.op("Mul", steps, ctx.const(delta))
    q = ctx.op("Where", ctx.op("Less", x, ctx.const(0.0)), ctx.op("Neg", magnitude), magnitude)
    q = ctx.op("Where", ctx.op("Greater", x, ctx.const(high)), ctx.const(high), q)
    ctx.node("Where", [ctx.op("Less", x, ctx.const(low)), ctx.const(low), q], ctx.outputs[:1])


@onnx_lowering("Pow2Quantize")
def pow2(ctx: LoweringContext) -> None:
    sign = bool(ctx.param("sign", True))
    with_zero = bool(ctx.param("with_zero", True))
    n, m = int(ctx.param("n", 8)), int(ctx.param("m", 1))
    n -= int(sign) + int(with_zero)  # bits left for the exponent
    p_max = 2.0 ** m
    p_min = 2.0 ** (m - ((1 << n) - 1))
    threshold = p_min * 2.0 ** -0.5
    x = ctx.inputs[0]
    x_abs = ctx.op("Abs", x)
    log2 = ctx.op("Div", ctx.op("Log", x_abs), ctx.const(math.log(2.0)))
    q = ctx.op("Pow", ctx.const(2.0), _round_half_away(ctx, log2))
    too_small = ctx.op("Less", q, ctx.const(p_min))
    small_value = (ctx.op("Where", ctx.op("Less", x_abs, ctx.const(threshold)), ctx.const(0.0), ctx.const(p_min))
                   if with_zero else ctx.const(p_min))
    q = ctx.op("Where", too_small, small_value, q)
    q = ctx.op("Where", ctx.op("Greater", q, ctx.const(p_max)), ctx.const(p_max), q)
    negative = ctx.op("Less", x, ctx.const(0.0))
    other = ctx.op("Neg", q) if sign else ctx.const(0.0 if with_zero else p_min)
    ctx.node("Where", [negative, other, q], ctx.outputs[:1])


def _range(ctx: LoweringContext) -> tuple[float, float]:
    narrow = bool(ctx.param("narrow_range", False))
    dtype = int(ctx.param("dtype", 1))  # nnabla's dtypes enum: 1 BYTE (int8), 2 UBYTE (uint8)
    if dtype == 2:
        return (1.0 if narrow else 0.0), 255.0
    if dtype == 1:
        return (-127.0 if narrow else -128.0), 127.0
    raise ctx.unsupported(f"QuantizeLinear dtype {dtype} (nnabla supports int8 and uint8)")


@onnx_lowering("QuantizeLinear")
def quantize_linear(ctx: LoweringContext) -> None:
    mode = ctx.param("round_mode", "HALF_AWAY_FROM_ZERO") or "HALF_AWAY_FROM_ZERO"
    low, high = _range(ctx)

    def rnd(v: str) -> str:
        return _round_half_away(ctx, v) if mode == "HALF_AWAY_FROM_ZERO" else ctx.op("Round", v)

    if mode not in ("HALF_AWAY_FROM_ZERO", "HALF_TO_EVEN"):
        raise ctx.unsupported(f"round_mode {mode!r}")
    lo, hi = ctx.const(low), ctx.const(high)
    zero_point = ctx.op("Clip", rnd(ctx.inputs[2]), lo, hi)
    y = ctx.op("Add", rnd(ctx.op("Div", ctx.inputs[0], ctx.inputs[1])), zero_point)
    ctx.node("Clip", [y, lo, hi], ctx.outputs[:1])


@onnx_lowering("DequantizeLinear")
def dequantize_linear(ctx: LoweringContext) -> None:
    ctx.node("Mul", [ctx.op("Sub", ctx.inputs[0], ctx.inputs[2]), ctx.inputs[1]], ctx.outputs[:1])
