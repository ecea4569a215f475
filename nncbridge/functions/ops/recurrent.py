"""nnabla's N-step recurrent layers (RNN, LSTM, GRU) as stacks of ONNX RNN/LSTM/GRU nodes.

nnabla's layout, per layer and direction: a weight ``(gates, H, in + H)`` applied to ``[x_t, h_{t-1}]``
(first ``in`` columns act on x, the last H on h). Gate order: LSTM i, f, g, o; GRU r, z, n with
bias ``(b_r, b_z, b_in, b_hn)``; RNN one gate. Layer l > 0 consumes the previous layer's
``(T, B, D*H)`` output (forward half first).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...export.context import LoweringContext
from ..registry import FunctionCall, onnx_lowering, shape_rule

_STATE_INPUTS = {"RNN": 1, "GRU": 1, "LSTM": 2}
_GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
_BIAS_GATES = {"RNN": 1, "GRU": 4, "LSTM": 4}
# nnabla gate index for each ONNX gate slot (ONNX orders: LSTM i,o,f,c; GRU z,r,h)
_ONNX_ORDER = {"RNN": [0], "GRU": [1, 0, 2], "LSTM": [0, 3, 1, 2]}

DOC_NOTES = {
    "RNN": "ONNX RNN per layer (tanh/relu); weights must be stored parameters.",
    "LSTM": "ONNX LSTM per layer; weights must be stored parameters. `dropout` is not applied (as in nnabla's forward).",
    "GRU": "ONNX GRU (linear_before_reset=1) per layer; weights must be stored parameters.",
}


@dataclass
class _Layout:
    kind: str
    num_layers: int
    directions: int
    weight_index: int | None
    bias_index: int | None
    w0_index: int


def _layout(kind: str, params_get: Callable[..., Any], n_inputs: int) -> _Layout:
    """Which optional inputs are present: with one, nnabla takes it as ``weight`` if num_layers > 1, else ``bias``."""
    num_layers = int(params_get("num_layers", 1) or 1)
    directions = 2 if params_get("bidirectional", False) else 1
    w0 = 1 + _STATE_INPUTS[kind]
    optional = list(range(w0 + 1, n_inputs))
    weight = bias = None
    if len(optional) >= 2:
        weight, bias = optional[0], optional[1]
    elif len(optional) == 1:
        if num_layers > 1:
            weight = optional[0]
        else:
            bias = optional[0]
    return _Layout(kind, num_layers, directions, weight, bias, w0)


def _expected_shapes(kind: str, lay: _Layout, input_size: int, hidden: int) -> dict[int, tuple]:
    g, d = _GATES[kind], lay.directions
    gate = () if kind == "RNN" else (g,)
    bgate = () if kind == "RNN" else (_BIAS_GATES[kind],)
    shapes = {lay.w0_index: (d, *gate, hidden, input_size + hidden)}
    if lay.weight_index is not None:
        shapes[lay.weight_index] = (lay.num_layers - 1, d, *gate, hidden, d * hidden + hidden)
    if lay.bias_index is not None:
        shapes[lay.bias_index] = (lay.num_layers, d, *bgate, hidden)
    return shapes


@shape_rule("RNN", "LSTM", "GRU")
def recurrent_shape(call: FunctionCall) -> list:
    kind = call.function.type
    x, h = call.input_shapes[0], call.input_shapes[1]
    lay = _layout(kind, call.param, len(call.input_shapes))
    if len(x) != 3:
        raise ValueError(f"x must be (T, B, I), got {x}")
    want_h = (lay.num_layers, lay.directions, x[1])
    if len(h) != 4 or tuple(h[:3]) != want_h:
        raise ValueError(f"h must be (num_layers, directions, batch, hidden) = {want_h + ('H',)}, got {h}")
    if kind == "LSTM" and tuple(call.input_shapes[2]) != tuple(h):
        raise ValueError(f"c must have h's shape {h}, got {call.input_shapes[2]}")
    if lay.num_layers > 1 and lay.weight_index is None:
        raise ValueError(f"num_layers={lay.num_layers} needs the 'weight' input")
    hidden = h[3]
    for index, want in _expected_shapes(kind, lay, x[2], hidden).items():
        if tuple(call.input_shapes[index]) != want:
            raise ValueError(f"input {index} must have shape {want}, got {call.input_shapes[index]}")
    y = (x[0], x[1], lay.directions * hidden)
    return [y, tuple(h)] + ([tuple(h)] if kind == "LSTM" else [])


def _onnx_weights(kind: str, w: np.ndarray, b: np.ndarray | None, in_size: int,
                  hidden: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One layer's nnabla weight (D, [G,] H, in+H) and bias (D, [G,] H) -> ONNX W, R, B."""
    d = w.shape[0]
    w = w.reshape(d, _GATES[kind], hidden, in_size + hidden).astype(np.float32)
    order = _ONNX_ORDER[kind]
    w_onnx = w[:, order, :, :in_size].reshape(d, len(order) * hidden, in_size)
    r_onnx = w[:, order, :, in_size:].reshape(d, len(order) * hidden, hidden)
    wb = np.zeros((d, len(order), hidden), np.float32)
    rb = np.zeros((d, len(order), hidden), np.float32)
    if b is not None:
        b = b.reshape(d, _BIAS_GATES[kind], hidden).astype(np.float32)
        wb[:] = b[:, order]
        if kind == "GRU":  # b_hn sits inside the reset product: ONNX's Rbh with linear_before_reset
            rb[:, 2] = b[:, 3]
    bias = np.concatenate([wb.reshape(d, -1), rb.reshape(d, -1)], axis=1)
    return w_onnx, r_onnx, bias


@onnx_lowering("RNN", "LSTM", "GRU")
def recurrent(ctx: LoweringContext) -> None:
    kind = ctx.call.function.type
    lay = _layout(kind, ctx.param, len(ctx.inputs))
    x_shape, h_shape = ctx.input_shapes[0], ctx.input_shapes[1]
    hidden, d = int(h_shape[3]), lay.directions
    arrays = {}
    for name, index in (("weight_l0", lay.w0_index), ("weight", lay.weight_index), ("bias", lay.bias_index)):
        if index is None:
            continue
        value = ctx.constant_value(index)
        if value is None:
            raise ctx.unsupported(f"{kind} input {name!r} is computed in the graph; ONNX export needs it "
                                  "to be a stored parameter")
        arrays[name] = np.asarray(value)
    attrs: dict = {"hidden_size": hidden, "direction": "bidirectional" if d == 2 else "forward"}
    if kind == "GRU":
        attrs["linear_before_reset"] = 1
    if kind == "RNN":
        nonlinearity = ctx.param("nonlinearity", "tanh") or "tanh"
        if nonlinearity not in ("tanh", "relu"):
            raise ctx.unsupported(f"RNN nonlinearity {nonlinearity!r} (nnabla knows tanh and relu)")
        attrs["activations"] = [{"tanh": "Tanh", "relu": "Relu"}[nonlinearity]] * d

    layer_in, in_size = ctx.inputs[0], int(x_shape[2])
    h_outs: list[str] = []
    c_outs: list[str] = []
    for layer in range(lay.num_layers):
        w = arrays["weight_l0"] if layer == 0 else arrays["weight"][layer - 1]
        b = arrays["bias"][layer] if "bias" in arrays else None
        w_onnx, r_onnx, b_onnx = _onnx_weights(kind, w, b, in_size, hidden)
        layer_index = ctx.ints([layer], "layer")
        h0 = ctx.op("Squeeze", ctx.op("Gather", ctx.inputs[1], layer_index, axis=0), ctx.ints([0], "axes"))
        inputs = [layer_in, ctx.const(w_onnx, hint="W"), ctx.const(r_onnx, hint="R"), ctx.const(b_onnx, hint="B"),
                  "", h0]
        if kind == "LSTM":
            inputs.append(ctx.op("Squeeze", ctx.op("Gather", ctx.inputs[2], layer_index, axis=0), ctx.ints([0], "axes")))
        outs = ctx.node(kind, inputs, 3 if kind == "LSTM" else 2, **attrs)
        # ONNX Y is (T, D, B, H); nnabla's is (T, B, D*H)
        y = ctx.op("Transpose", outs[0], perm=[0, 2, 1, 3])
        last = layer == lay.num_layers - 1
        target = ctx.outputs[0] if last else ctx.fresh("y")
        ctx.node("Reshape", [y, ctx.ints([0, 0, -1])], [target])
        layer_in, in_size = target, d * hidden
        h_outs.append(outs[1])
        if kind == "LSTM":
            c_outs.append(outs[2])
    for states, out_index in ((h_outs, 1), (c_outs, 2)):
        if not states or out_index >= len(ctx.outputs) or not ctx.outputs[out_index]:
            continue
        stacked = [ctx.op("Unsqueeze", s, ctx.ints([0], "axes")) for s in states]
        if len(stacked) == 1:
            ctx.node("Identity", stacked, [ctx.outputs[out_index]])
        else:
            ctx.node("Concat", stacked, [ctx.outputs[out_index]], axis=0)
