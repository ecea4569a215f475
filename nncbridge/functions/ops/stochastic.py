"""Stochasticity functions at inference.

Dropout is exported as Identity: nnabla's own Dropout has no test mode (its forward, also through
NnpLoader and ``nnabla_cli forward``, draws a fresh mask on every run), so there is nothing
reproducible to match; inference-time identity is what every other framework does with a trained
network. Data augmentation layers are exported only when their arguments make them a no-op;
random number generators are not exported.
"""
from __future__ import annotations

import math

from ...export.context import LoweringContext
from ..registry import FunctionCall, onnx_lowering, shape_rule

_GENERATORS = ("Rand", "Randint", "Randn", "RandBinomial", "RandBeta", "RandGamma")
_RANDOM_REASON = ("draws random numbers on every forward pass; its output cannot be reproduced at "
                  "inference (nnabla has no test mode for it)")

DOC_NOTES = {
    "Dropout": "Identity at inference. nnabla's Dropout has no test mode (its forward always samples a mask), "
               "so parity is checked with p=0 and identity from first principles.",
    "TopKGrad": "Identity in the forward pass (it only alters gradients).",
    "TopKData": "ONNX TopK on the flattened sample; indices output only as float.",
    "RandomCrop": "Exported only as a no-op (crop shape equal to the input shape).",
    "RandomShift": "Exported only as a no-op (all shifts 0).",
    "RandomErase": "Exported only as a no-op (prob 0).",
    "ImageAugmentation": "Exported only as a no-op (all augmentation arguments at their neutral values).",
}
# Registered lowerings that always refuse, with the reason (docs/functions.md lists them as not exported).
UNSUPPORTED = {name: f"{name} {_RANDOM_REASON}" for name in (*_GENERATORS, "RandomChoice", "RandomFlip")}


@shape_rule("Dropout", "TopKGrad", "RandomFlip", "RandomShift", "RandomErase")
def same_shape(call: FunctionCall) -> list:
    return [tuple(call.input_shapes[0])]


@shape_rule(*_GENERATORS)
def generator_shape(call: FunctionCall) -> list:
    return [tuple(int(d) for d in (call.param("shape") or ()))]


@shape_rule("RandomChoice")
def random_choice_shape(call: FunctionCall) -> list:
    x, w = call.input_shapes[0], call.input_shapes[1]
    if tuple(x) != tuple(w):
        raise ValueError(f"x and w must have the same shape, got {x} and {w}")
    shape = tuple(call.param("shape") or ())
    return [tuple(x[:-1]) + (shape if shape else (1,))]


def _trailing_shape(call: FunctionCall) -> tuple:
    x = tuple(call.input_shapes[0])
    shape = call.param("shape")
    if shape is None:
        return x
    shape = tuple(int(d) for d in shape)
    if len(shape) > len(x):
        raise ValueError(f"shape {shape} has more dimensions than the input {x}")
    return x[:len(x) - len(shape)] + shape


@shape_rule("RandomCrop", "ImageAugmentation")
def crop_shape(call: FunctionCall) -> list:
    return [_trailing_shape(call)]


@shape_rule("TopKData")
def top_k_data_shape(call: FunctionCall) -> list:
    x, k, base = _top_k_arguments(call)
    if not 0 < k <= math.prod(x[base:]):
        raise ValueError(f"k={k} must be in 1..{math.prod(x[base:])}")
    y = x[:base] + (k,) if call.param("reduce", True) else x
    return [y, y] if call.param("with_index", False) else [y]


def _top_k_arguments(call: FunctionCall) -> tuple[tuple[int, ...], int, int]:
    """TopKData's input shape, k, and base_axis counted from the front."""
    x = tuple(call.input_shapes[0])
    base = int(call.param("base_axis", 1))
    return x, int(call.param("k", 1)), (base + len(x) if base < 0 else base)


@onnx_lowering("Dropout", "TopKGrad")
def identity(ctx: LoweringContext) -> None:
    ctx.node("Identity", ctx.inputs[:1], ctx.outputs[:1])


@onnx_lowering(*_GENERATORS, "RandomChoice", "RandomFlip")
def random(ctx: LoweringContext) -> None:
    raise ctx.unsupported(UNSUPPORTED[ctx.call.function.type])


@onnx_lowering("RandomCrop", "RandomShift", "RandomErase", "ImageAugmentation")
def augmentation(ctx: LoweringContext) -> None:
    kind = ctx.call.function.type
    x = tuple(ctx.input_shapes[0])
    if kind == "RandomCrop":
        active = [] if _trailing_shape(ctx.call) == x else [f"shape={tuple(ctx.param('shape'))}"]
    elif kind == "RandomShift":
        active = [f"shifts={tuple(ctx.param('shifts'))}"] if any(ctx.param("shifts") or ()) else []
    elif kind == "RandomErase":
        active = [f"prob={ctx.param('prob')}"] if float(ctx.param("prob", 0.5)) != 0.0 else []
    else:
        neutral = {"min_scale": 1.0, "max_scale": 1.0, "angle": 0.0, "aspect_ratio": 1.0, "distortion": 0.0,
                   "flip_lr": False, "flip_ud": False, "brightness": 0.0, "contrast": 1.0, "noise": 0.0}
        active = [f"{k}={ctx.param(k)}" for k, v in neutral.items() if ctx.param(k, v) != v]
        if _trailing_shape(ctx.call) != x:
            active.append(f"shape={tuple(ctx.param('shape'))}")
        if any(ctx.param("pad") or ()):
            active.append(f"pad={tuple(ctx.param('pad'))}")
    if active:
        raise ctx.unsupported(f"{kind} with {', '.join(active)} is random at every forward pass; only its "
                              "no-op setting is exportable")
    ctx.node("Identity", ctx.inputs[:1], ctx.outputs[:1])


@onnx_lowering("TopKData")
def top_k_data(ctx: LoweringContext) -> None:
    x, k, base = _top_k_arguments(ctx.call)
    if ctx.param("abs", False) or not ctx.param("largest", True) or not ctx.param("reduce", True):
        raise ctx.unsupported("TopKData is exported only with reduce=True, abs=False, largest=True")
    flat = ctx.op("Flatten", ctx.inputs[0], axis=base) if len(x) - base != 1 or base != 1 else ctx.inputs[0]
    values, indices = ctx.node("TopK", [flat, ctx.ints([k], "k")], 2, axis=-1)
    target = ctx.batch_free_shape([*x[:base], k])
    ctx.node("Reshape", [values, target], ctx.outputs[:1])
    if len(ctx.outputs) > 1 and ctx.outputs[1]:
        ctx.node("Reshape", [ctx.op("Cast", indices, to=1), target], ctx.outputs[1:2])
