"""Array manipulation (nnabla category "Array Manipulation") and Interpolate.

Reshape, Transpose, Concatenate, Split, Stack, Slice, Flip, Shift, Pad, Broadcast, BroadcastTo, Tile,
OneHot, Sort, Gather, GatherNd, MatrixDiag, MatrixDiagPart, Trilu, Meshgrid, Shape, BoolFill,
BatchDet, BatchLogdet, ScatterNd, ScatterAdd; the rest of the category is refused with a reason.

Shapes seen here carry the export batch size in dimension 0, while stored parameters (Reshape and
Broadcast targets) may carry the file's; every lowering keeps the batch symbolic in the ONNX graph
(0 or -1 in Reshape targets, Shape/Slice/Concat, or broadcasting from 1).
"""
from __future__ import annotations

import math

import numpy as np

from ...export.context import LoweringContext
from ..registry import FunctionCall, onnx_lowering, shape_rule
from .reduction import norm_axes, reduce, squeeze, unsqueeze

INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min


def _is_data(ctx: LoweringContext, index: int = 0) -> bool:
    """Whether input ``index`` is computed from the network's data (so dimension 0 is the batch)."""
    return index not in ctx.call.parameter_inputs and ctx.constant_value(index) is None


# --- Reshape -----------------------------------------------------------------------------------

def _reshape_target(call: FunctionCall) -> list[int]:
    x = call.input_shapes[0]
    target = [int(d) for d in call.param("shape", ())]
    size = math.prod(x)
    if target and target[0] == -1 and target.count(-1) > 1 and x:
        target[0] = x[0]  # nnabla's saver writes -1 for the batch even next to another -1
    if target.count(-1) > 1 or any(d < -1 for d in target):
        raise ValueError(f"invalid target shape {tuple(target)}")
    if -1 in target:
        resolved = _fill(target, size)
        if resolved is None and x:
            # Console's batch size in dimension 0 (not the one the shapes are computed for)
            resolved = _fill([x[0]] + target[1:], size)
        if resolved is None:
            raise ValueError(f"cannot reshape {x} to {tuple(target)}")
        return resolved
    per_sample = math.prod(target[1:]) if target else 0
    if target and math.prod(target) != size and per_sample and size % per_sample == 0:
        target[0] = size // per_sample  # written for another batch size than the one used here
    return target


def _fill(target: list[int], size: int) -> list[int] | None:
    known = math.prod(d for d in target if d != -1)
    if not known or size % known:
        return None
    return [size // known if d == -1 else d for d in target]


@shape_rule("Reshape")
def reshape_shape(call: FunctionCall) -> list:
    target = _reshape_target(call)
    if math.prod(target) != math.prod(call.input_shapes[0]):
        raise ValueError(f"cannot reshape {call.input_shapes[0]} to {tuple(call.param('shape', ()))}")
    return [tuple(target)]


@onnx_lowering("Reshape")
def reshape(ctx: LoweringContext) -> None:
    x = ctx.input_shapes[0]
    target = _reshape_target(ctx.call)
    spec = list(target)
    if _is_data(ctx) and not ctx.fixed_batch and x and spec:
        if target[0] == x[0]:
            spec[0] = 0
        elif x[0] and target[0] % x[0] == 0:
            spec[0] = -1  # the batch is merged into dimension 0
    ctx.node("Reshape", [ctx.inputs[0], ctx.ints(spec)], ctx.outputs[:1])


# --- Transpose / Concatenate / Split / Stack ----------------------------------------------------

@shape_rule("Transpose")
def transpose_shape(call: FunctionCall) -> list:
    x = call.input_shapes[0]
    axes = norm_axes(call.param("axes"), len(x))
    if sorted(axes) != list(range(len(x))):
        raise ValueError(f"axes {tuple(call.param('axes') or ())} are not a permutation of {len(x)} axes")
    return [tuple(x[a] for a in axes)]


@onnx_lowering("Transpose")
def transpose(ctx: LoweringContext) -> None:
    ctx.node("Transpose", ctx.inputs[:1], ctx.outputs[:1],
             perm=norm_axes(ctx.param("axes"), len(ctx.input_shapes[0])))


def _axis(call: FunctionCall, ndim: int, name: str = "axis", default: int = 0) -> int:
    axis = int(call.param(name, default))
    return norm_axes([axis], ndim)[0]


@shape_rule("Concatenate")
def concatenate_shape(call: FunctionCall) -> list:
    first = call.input_shapes[0]
    axis = _axis(call, len(first))
    for s in call.input_shapes[1:]:
        if len(s) != len(first) or any(a != b for i, (a, b) in enumerate(zip(s, first)) if i != axis):
            raise ValueError(f"shapes {call.input_shapes} differ outside axis {axis}")
    return [first[:axis] + (sum(s[axis] for s in call.input_shapes),) + first[axis + 1:]]


@onnx_lowering("Concatenate")
def concatenate(ctx: LoweringContext) -> None:
    ctx.node("Concat", list(ctx.inputs), ctx.outputs[:1], axis=_axis(ctx.call, len(ctx.input_shapes[0])))


@shape_rule("Split")
def split_shape(call: FunctionCall) -> list:
    x = call.input_shapes[0]
    axis = _axis(call, len(x))
    n = len(call.function.outputs)
    if x[axis] != n:
        raise ValueError(f"axis {axis} has size {x[axis]} but the layer has {n} outputs")
    return [x[:axis] + x[axis + 1:]] * n


@onnx_lowering("Split")
def split(ctx: LoweringContext) -> None:
    x = ctx.input_shapes[0]
    axis = _axis(ctx.call, len(x))
    n = len(ctx.outputs)
    if n == 1:
        squeeze(ctx, ctx.inputs[0], [axis], ctx.outputs)
        return
    batch = ctx.batch_dims(ctx.inputs[0])
    if batch is not None and axis + 1 < len(x) and axis not in batch:
        # (.., n, r, ..) -> (.., n*r, ..) split in n: each part is one step, without a Squeeze each
        merged_batch = frozenset(d if d < axis else d - 1 for d in batch)
        target = ctx.reshape_target([*x[:axis], n * x[axis + 1], *x[axis + 2:]], merged_batch)
        if target is not None:
            merged = ctx.op("Reshape", ctx.inputs[0], target)
            if axis + 1 in batch:  # parts as long as the batch: equal parts
                ctx.node("Split", [merged], ctx.outputs, axis=axis, num_outputs=n if ctx.opset >= 18 else None)
            else:
                ctx.node("Split", [merged, ctx.ints([x[axis + 1]] * n, "split")], ctx.outputs, axis=axis)
            return
    parts = ctx.node("Split", [ctx.inputs[0], ctx.ints([1] * n, "split")], n, axis=axis)
    for part, out in zip(parts, ctx.outputs):
        squeeze(ctx, part, [axis], [out])


@shape_rule("Stack")
def stack_shape(call: FunctionCall) -> list:
    first = call.input_shapes[0]
    if any(s != first for s in call.input_shapes):
        raise ValueError(f"stacked shapes differ: {call.input_shapes}")
    axis = _axis(call, len(first) + 1)
    return [first[:axis] + (len(call.input_shapes),) + first[axis:]]


@onnx_lowering("Stack")
def stack(ctx: LoweringContext) -> None:
    step = ctx.input_shapes[0]
    axis = _axis(ctx.call, len(step) + 1)
    target = ctx.reshape_target(ctx.output_shapes[0], ctx.batch_dims(ctx.outputs[0])) if axis < len(step) else None
    if target is not None:
        # steps concatenated along their own axis are the stack with two axes merged: one Reshape
        # instead of an Unsqueeze per step
        joined = ctx.op("Concat", *ctx.inputs, axis=axis)
        ctx.node("Reshape", [joined, target], ctx.outputs[:1])
        return
    parts = [unsqueeze(ctx, x, [axis]) for x in ctx.inputs]
    ctx.node("Concat", parts, ctx.outputs[:1], axis=axis)


# --- Slice / Flip -------------------------------------------------------------------------------

def _slice_plan(call: FunctionCall) -> list[tuple[int, int, int, int]]:
    """Per dimension (start, stop, step, size) resolved as nnabla does."""
    x = call.input_shapes[0]
    start = [int(v) for v in call.param("start", ())]
    stop = [int(v) for v in call.param("stop", ())]
    step = [int(v) for v in call.param("step", ())]
    if not (len(start) == len(stop) == len(step)):
        raise ValueError(f"start/stop/step lengths differ: {len(start)}, {len(stop)}, {len(step)}")
    lead = len(x) - len(start)
    if lead < 0:
        raise ValueError(f"{len(start)} slice dimensions for a {len(x)}-D input")
    start, stop, step = [0] * lead + start, list(x[:lead]) + stop, [1] * lead + step
    none = 0x7FFFFFFF
    plan = []
    for n, b, e, s in zip(x, start, stop, step):
        if s == 0:
            raise ValueError("slice step 0")
        s = 1 if s == none else s
        b = b + n if b < 0 else b
        e = e + n if e < 0 else e
        if b == none:
            b = 0 if s > 0 else n - 1
        if e == none:
            e = n if s > 0 else -1
        if s < 0 and b > e:
            size = (b - 1 - e) // -s + 1
        elif s > 0 and b < e:
            size = (min(e, n) - 1 - b) // s + 1
        else:
            size = 0
        plan.append((b, e, s, size))
    return plan


@shape_rule("Slice")
def slice_shape(call: FunctionCall) -> list:
    return [tuple(p[3] for p in _slice_plan(call))]


@onnx_lowering("Slice")
def slice_(ctx: LoweringContext) -> None:
    x = ctx.input_shapes[0]
    starts, ends, axes, steps = [], [], [], []
    for axis, ((b, e, s, size), n) in enumerate(zip(_slice_plan(ctx.call), x)):
        if s == 1 and b == 0 and e >= n:
            continue
        if size == 0:
            b, e, s = 0, 0, 1
        elif s > 0:
            e = INT64_MAX if e >= n else e
        else:
            e = INT64_MIN if e < 0 else e
        starts.append(b)
        ends.append(e)
        axes.append(axis)
        steps.append(s)
    if not axes:
        ctx.node("Identity", ctx.inputs[:1], ctx.outputs[:1])
        return
    ctx.node("Slice", [ctx.inputs[0], ctx.ints(starts, "starts"), ctx.ints(ends, "ends"), ctx.ints(axes, "axes"),
                       ctx.ints(steps, "steps")], ctx.outputs[:1])


def _flip_axes(call: FunctionCall) -> list[int]:
    ndim = len(call.input_shapes[0])
    axes = call.params.get("axes")
    return norm_axes(axes if axes is not None else [ndim - 1], ndim)


@shape_rule("Flip")
def flip_shape(call: FunctionCall) -> list:
    _flip_axes(call)
    return [call.input_shapes[0]]


@shape_rule("Shift")
def shift_shape(call: FunctionCall) -> list:
    if len(call.param("shifts") or ()) > len(call.input_shapes[0]):
        raise ValueError(f"{len(call.param('shifts'))} shifts for a {len(call.input_shapes[0])}-D input")
    return [call.input_shapes[0]]


@onnx_lowering("Flip")
def flip(ctx: LoweringContext) -> None:
    axes = sorted(set(_flip_axes(ctx.call)))
    if not axes:
        ctx.node("Identity", ctx.inputs[:1], ctx.outputs[:1])
        return
    n = len(axes)
    ctx.node("Slice", [ctx.inputs[0], ctx.ints([-1] * n, "starts"), ctx.ints([INT64_MIN] * n, "ends"),
                       ctx.ints(axes, "axes"), ctx.ints([-1] * n, "steps")], ctx.outputs[:1])


@onnx_lowering("Shift")
def shift(ctx: LoweringContext) -> None:
    x = ctx.input_shapes[0]
    shifts = [int(v) for v in (ctx.param("shifts") or ())]
    mode = ctx.param("border_mode") or "nearest"
    if mode not in ("nearest", "reflect"):
        raise ctx.unsupported(f"border_mode {mode!r} (nnabla knows 'nearest' and 'reflect')")
    y = ctx.inputs[0]
    lead = len(x) - len(shifts)
    for k, s in enumerate(shifts):
        axis = lead + k
        if s == 0:
            continue
        if axis == 0 and _is_data(ctx) and not ctx.fixed_batch:
            raise ctx.unsupported("a shift along the batch axis needs a fixed batch size (--batch-size)")
        n = x[axis]
        idx = []
        for i in range(n):
            if mode == "reflect":
                a = abs(i + 2 * n - s) % (2 * n) if n > 1 else 0
                idx.append(2 * n - 1 - a if a >= n else a)
            else:
                idx.append(min(max(i - s, 0), n - 1))
        y = ctx.op("Gather", y, ctx.ints(idx, "indices"), axis=axis)
    ctx.node("Identity", [y], ctx.outputs[:1])


# --- Pad ----------------------------------------------------------------------------------------

_PAD_MODES = {"constant": "constant", "reflect": "reflect", "repeat": "edge"}


@shape_rule("Pad")
def pad_shape(call: FunctionCall) -> list:
    x = call.input_shapes[0]
    width = [int(v) for v in call.param("pad_width", ())]
    if len(width) % 2 or len(width) // 2 > len(x):
        raise ValueError(f"pad_width {tuple(width)} does not fit a {len(x)}-D input")
    lead = len(x) - len(width) // 2
    return [tuple(d if i < lead else d + width[2 * (i - lead)] + width[2 * (i - lead) + 1] for i, d in enumerate(x))]


@onnx_lowering("Pad")
def pad(ctx: LoweringContext) -> None:
    x = ctx.input_shapes[0]
    width = [int(v) for v in ctx.param("pad_width", ())]
    mode = ctx.param("mode") or "constant"
    if mode not in _PAD_MODES:
        raise ctx.unsupported(f"mode {mode!r} (ONNX Pad has constant, reflect and edge)")
    lead = len(x) - len(width) // 2
    begins = [0] * lead + width[0::2]
    ends = [0] * lead + width[1::2]
    inputs = [ctx.inputs[0], ctx.ints(begins + ends, "pads")]
    if mode == "constant":
        inputs.append(ctx.const(float(ctx.param("constant_value", 0.0))))
    elif mode == "reflect" and any(w >= d for w, d in zip(begins + ends, list(x) * 2) if w):
        raise ctx.unsupported(f"reflect padding {tuple(width)} as wide as the input {x}")
    ctx.node("Pad", inputs, ctx.outputs[:1], mode=_PAD_MODES[mode])


# --- Broadcast / BroadcastTo / Tile -------------------------------------------------------------

def _broadcast_target(call: FunctionCall) -> tuple[tuple[int, ...], list[int]]:
    """(input shape with leading 1s added, target shape). nnabla's saver writes -1 for a target's
    batch dimension; nnabla's loader puts the network's batch size there."""
    x = tuple(call.input_shapes[0])
    shape = [int(d) for d in call.param("shape", ())]
    if len(shape) < len(x):
        raise ValueError(f"cannot broadcast {x} to {tuple(shape)}")
    ex = (1,) * (len(shape) - len(x)) + x
    if shape and shape[0] == -1:
        shape[0] = call.batch_size if ex[0] == 1 else ex[0]
    elif shape and len(x) == len(shape) and 0 not in call.parameter_inputs:
        shape[0] = ex[0]  # dimension 0 of data is the batch (Console writes its own batch size there)
    if any(a != b and a != 1 for a, b in zip(ex, shape)) or any(d < 0 for d in shape):
        raise ValueError(f"cannot broadcast {x} to {tuple(call.param('shape', ()))}")
    return ex, shape


@shape_rule("Broadcast")
def broadcast_shape(call: FunctionCall) -> list:
    return [tuple(_broadcast_target(call)[1])]


@onnx_lowering("Broadcast")
def broadcast(ctx: LoweringContext) -> None:
    ex, shape = _broadcast_target(ctx.call)
    # Expand keeps a dimension where the target says 1, so the (batch) size is never baked in.
    target = [1 if a == b else b for a, b in zip(ex, shape)]
    if target and target[0] != 1 and not ctx.fixed_batch and ctx.param("shape", (0,))[0] == -1:
        raise ctx.unsupported(f"broadcasting dimension 0 from {ex[0]} to the batch size needs a fixed "
                              "batch size (--batch-size)")
    ctx.node("Expand", [ctx.inputs[0], ctx.ints(target)], ctx.outputs[:1])


def _broadcast_to_axis(call: FunctionCall) -> int:
    x, y = call.input_shapes[0], call.input_shapes[1]
    axis = int(call.param("axis", -1))
    return len(x) - len(y) if axis < 0 else axis


@shape_rule("BroadcastTo")
def broadcast_to_shape(call: FunctionCall) -> list:
    """nnabla broadcasts the second input ``y`` to the shape of the first, ``x``."""
    x, y = call.input_shapes[0], call.input_shapes[1]
    axis = _broadcast_to_axis(call)
    if len(y) > len(x) or tuple(x[axis:axis + len(y)]) != tuple(y):
        raise ValueError(f"y {y} does not match x {x} from axis {axis}")
    return [tuple(x)]


@onnx_lowering("BroadcastTo")
def broadcast_to(ctx: LoweringContext) -> None:
    x, y = ctx.input_shapes[0], ctx.input_shapes[1]
    axis = _broadcast_to_axis(ctx.call)
    outer = list(range(axis)) + list(range(axis + len(y), len(x)))
    yi = unsqueeze(ctx, ctx.inputs[1], outer) if outer else ctx.inputs[1]
    ctx.node("Expand", [yi, ctx.op("Shape", ctx.inputs[0])], ctx.outputs[:1])


def _tile_reps(call: FunctionCall) -> tuple[list[int], int]:
    x = call.input_shapes[0]
    reps = [int(r) for r in call.param("reps", ())]
    ndim = max(len(x), len(reps))
    return [1] * (ndim - len(reps)) + reps, ndim - len(x)


@shape_rule("Tile")
def tile_shape(call: FunctionCall) -> list:
    reps, extra = _tile_reps(call)
    x = (1,) * extra + tuple(call.input_shapes[0])
    return [tuple(d * r for d, r in zip(x, reps))]


@onnx_lowering("Tile")
def tile(ctx: LoweringContext) -> None:
    reps, extra = _tile_reps(ctx.call)
    x = unsqueeze(ctx, ctx.inputs[0], list(range(extra))) if extra else ctx.inputs[0]
    ctx.node("Tile", [x, ctx.ints(reps, "repeats")], ctx.outputs[:1])


# --- OneHot / Sort / Gather / MatrixDiag / Trilu ------------------------------------------------

@shape_rule("OneHot")
def one_hot_shape(call: FunctionCall) -> list:
    x = call.input_shapes[0]
    shape = tuple(int(d) for d in call.param("shape", ()))
    if x[-1] != len(shape):
        raise ValueError(f"last dimension {x[-1]} != number of one-hot dimensions {len(shape)}")
    return [tuple(x[:-1]) + shape]


@onnx_lowering("OneHot")
def one_hot(ctx: LoweringContext) -> None:
    x = ctx.input_shapes[0]
    shape = [int(d) for d in ctx.param("shape", ())]
    # Invalid (out of range) indices give zero vectors in nnabla: index -> -1 after masking,
    # and ONNX OneHot turns -1 into its last class, so push invalid ones to depth instead.
    idx = ctx.inputs[0]
    classes = ctx.const(np.asarray(shape, np.float32).reshape((1,) * (len(x) - 1) + (-1,)))
    idx = ctx.op("Where", ctx.op("Less", idx, ctx.const(0.0)), ctx.op("Add", idx, classes), idx)
    valid = ctx.op("And", ctx.op("GreaterOrEqual", idx, ctx.const(0.0)), ctx.op("Less", idx, classes))
    strides = [math.prod(shape[k + 1:]) for k in range(len(shape))]
    flat = reduce(ctx, "ReduceSum", ctx.op("Mul", idx, ctx.const(np.asarray(strides, np.float32))), [len(x) - 1],
                  False)
    all_valid = reduce(ctx, "ReduceMin", ctx.op("Cast", valid, to=1), [len(x) - 1], False)
    depth = math.prod(shape)
    flat = ctx.op("Where", ctx.op("Greater", all_valid, ctx.const(0.5)), flat, ctx.const(float(depth)))
    flat = ctx.op("Cast", flat, to=7)
    hot = ctx.op("OneHot", flat, ctx.const(depth + 1, np.int64, "depth"), ctx.const([0.0, 1.0]), axis=-1)
    hot = ctx.op("Slice", hot, ctx.ints([0]), ctx.ints([depth]), ctx.ints([len(x) - 1]))
    ctx.node("Reshape", [hot, ctx.ints([0] * (len(x) - 1) + shape)], ctx.outputs[:1])


@shape_rule("Sort")
def sort_shape(call: FunctionCall) -> list:
    x = call.input_shapes[0]
    _axis(call, len(x), default=-1)
    if call.param("with_index") and not call.param("only_index"):
        return [x, x]
    return [x]


@onnx_lowering("Sort")
def sort(ctx: LoweringContext) -> None:
    x = ctx.input_shapes[0]
    axis = _axis(ctx.call, len(x), default=-1)
    if axis == 0 and _is_data(ctx) and not ctx.fixed_batch:
        raise ctx.unsupported("sorting along the batch axis needs a fixed batch size (--batch-size)")
    values, indices = ctx.node("TopK", [ctx.inputs[0], ctx.ints([x[axis]], "k")], 2, axis=axis,
                               largest=int(bool(ctx.param("reverse"))), sorted=1)
    with_index, only_index = bool(ctx.param("with_index")), bool(ctx.param("only_index"))
    if only_index:
        ctx.node("Cast", [indices], ctx.outputs[:1], to=1)
        return
    ctx.node("Identity", [values], ctx.outputs[:1])
    if with_index:
        ctx.node("Cast", [indices], ctx.outputs[1:2], to=1)


@shape_rule("Gather")
def gather_shape(call: FunctionCall) -> list:
    x, idx = call.input_shapes[0], call.input_shapes[1]
    axis = _axis(call, len(x))
    b = int(call.param("batch_dims", 0))
    if not 0 <= b <= min(axis, len(idx)):
        raise ValueError(f"batch_dims {b} with axis {axis} and {len(idx)}-D indices")
    return [tuple(x[:axis]) + tuple(idx[b:]) + tuple(x[axis + 1:])]


@onnx_lowering("Gather")
def gather(ctx: LoweringContext) -> None:
    x = ctx.input_shapes[0]
    axis = _axis(ctx.call, len(x))
    batch_dims = int(ctx.param("batch_dims", 0))
    if batch_dims:
        raise ctx.unsupported(f"batch_dims={batch_dims} (ONNX Gather has no batch dimensions)")
    idx = ctx.op("Cast", ctx.inputs[1], to=7)
    ctx.node("Gather", [ctx.inputs[0], idx], ctx.outputs[:1], axis=axis)


@shape_rule("GatherNd")
def gather_nd_shape(call: FunctionCall) -> list:
    x, idx = call.input_shapes[0], call.input_shapes[1]
    if not idx or idx[0] > len(x):
        raise ValueError(f"indices {idx} do not index {x}")
    return [tuple(idx[1:]) + tuple(x[idx[0]:])]


@onnx_lowering("GatherNd")
def gather_nd(ctx: LoweringContext) -> None:
    idx_shape = ctx.input_shapes[1]
    # nnabla puts the coordinate in the first index dimension, ONNX in the last.
    perm = list(range(1, len(idx_shape))) + [0]
    idx = ctx.op("Cast", ctx.op("Transpose", ctx.inputs[1], perm=perm), to=7)
    ctx.node("GatherND", [ctx.inputs[0], idx], ctx.outputs[:1])


@shape_rule("MatrixDiag")
def matrix_diag_shape(call: FunctionCall) -> list:
    x = call.input_shapes[0]
    return [tuple(x) + (x[-1],)]


@onnx_lowering("MatrixDiag")
def matrix_diag(ctx: LoweringContext) -> None:
    n = ctx.input_shapes[0][-1]
    col = unsqueeze(ctx, ctx.inputs[0], [len(ctx.input_shapes[0])])
    ctx.node("Mul", [col, ctx.const(np.eye(n, dtype=np.float32))], ctx.outputs[:1])


@shape_rule("MatrixDiagPart")
def matrix_diag_part_shape(call: FunctionCall) -> list:
    x = call.input_shapes[0]
    return [tuple(x[:-1])]


@onnx_lowering("MatrixDiagPart")
def matrix_diag_part(ctx: LoweringContext) -> None:
    x = ctx.input_shapes[0]
    masked = ctx.op("Mul", ctx.inputs[0], ctx.const(np.eye(x[-1], dtype=np.float32)))
    reduce(ctx, "ReduceSum", masked, [len(x) - 1], False, ctx.outputs[:1])


@shape_rule("Trilu")
def trilu_shape(call: FunctionCall) -> list:
    return [call.input_shapes[0]]


@onnx_lowering("Trilu", min_opset=14)
def trilu(ctx: LoweringContext) -> None:
    ctx.node("Trilu", [ctx.inputs[0], ctx.const(int(ctx.param("k", 0)), np.int64, "k")], ctx.outputs[:1],
             upper=int(bool(ctx.param("upper"))))


@shape_rule("Meshgrid")
def meshgrid_shape(call: FunctionCall) -> list:
    sizes = [math.prod(s) for s in call.input_shapes]
    if not call.param("ij_indexing") and len(sizes) > 1:
        sizes[0], sizes[1] = sizes[1], sizes[0]
    return [tuple(sizes)] * len(call.input_shapes)


@onnx_lowering("Meshgrid")
def meshgrid(ctx: LoweringContext) -> None:
    out_shape = list(meshgrid_shape(ctx.call)[0])
    n = len(ctx.inputs)
    xy = not ctx.param("ij_indexing") and n > 1
    for i, (x, out) in enumerate(zip(ctx.inputs, ctx.outputs)):
        position = (1 - i if i < 2 else i) if xy else i
        shape = [1] * n
        shape[position] = -1
        column = ctx.op("Reshape", x, ctx.ints(shape))
        ctx.node("Expand", [column, ctx.ints(out_shape)], [out])


# --- Shape / BoolFill / BatchDet / BatchLogdet / BatchInv / ScatterNd / ScatterAdd ---------------

def _shape_range(call: FunctionCall) -> tuple[int, int]:
    ndim = len(call.input_shapes[0])
    start, end = int(call.param("start", 0)), int(call.param("end", 0))
    e = ndim
    s = start + e if start < 0 else min(start, ndim)
    if end < 0:
        e += end
    elif end > 0:
        e = min(end, ndim)
    return s, e


@shape_rule("Shape")
def shape_shape(call: FunctionCall) -> list:
    s, e = _shape_range(call)
    return [(max(e - s, 0),)]


@onnx_lowering("Shape")
def shape_(ctx: LoweringContext) -> None:
    s, e = _shape_range(ctx.call)
    dims = ctx.op("Slice", ctx.op("Shape", ctx.inputs[0]), ctx.ints([s]), ctx.ints([max(e, s)]))
    ctx.node("Cast", [dims], ctx.outputs[:1], to=1)


@shape_rule("BoolFill")
def bool_fill_shape(call: FunctionCall) -> list:
    return [call.input_shapes[0]]


@onnx_lowering("BoolFill")
def bool_fill(ctx: LoweringContext) -> None:
    mask = ctx.op("Not", ctx.op("Equal", ctx.inputs[1], ctx.const(0.0)))
    ctx.node("Where", [mask, ctx.const(float(ctx.param("value", 0.0))), ctx.inputs[0]], ctx.outputs[:1])


@shape_rule("BatchDet", "BatchLogdet")
def batch_det_shape(call: FunctionCall) -> list:
    x = call.input_shapes[0]
    if len(x) != 3 or x[1] != x[2]:
        raise ValueError(f"expected a batch of square matrices, got {x}")
    return [(x[0],)]


@onnx_lowering("BatchDet")
def batch_det(ctx: LoweringContext) -> None:
    ctx.node("Det", ctx.inputs[:1], ctx.outputs[:1])


@onnx_lowering("BatchLogdet")
def batch_logdet(ctx: LoweringContext) -> None:
    ctx.node("Log", [ctx.op("Abs", ctx.op("Det", ctx.inputs[0]))], ctx.outputs[:1])


@onnx_lowering("BatchInv")
def batch_inv(ctx: LoweringContext) -> None:
    raise ctx.unsupported("ONNX has no matrix inverse operator in its default domain")


@shape_rule("ScatterNd")
def scatter_nd_shape(call: FunctionCall) -> list:
    if len(call.input_shapes) > 2:
        return [call.input_shapes[2]]
    shape = call.param("shape")
    if not shape:
        raise ValueError("ScatterNd needs 'shape' or an 'out' input")
    return [tuple(int(d) for d in shape)]


@onnx_lowering("ScatterNd")
def scatter_nd(ctx: LoweringContext) -> None:
    add = bool(ctx.param("add"))
    if add and ctx.opset < 16:
        raise ctx.unsupported("add=True needs ScatterND's reduction (opset 16 or newer)")
    base = ctx.inputs[2] if ctx.has_input(2) else ctx.const(np.zeros(ctx.output_shapes[0], np.float32), hint="zeros")
    idx_shape = ctx.input_shapes[1]
    perm = list(range(1, len(idx_shape))) + [0]
    idx = ctx.op("Cast", ctx.op("Transpose", ctx.inputs[1], perm=perm), to=7)
    ctx.node("ScatterND", [base, idx, ctx.inputs[0]], ctx.outputs[:1], reduction="add" if add else None)


@shape_rule("ScatterAdd")
def scatter_add_shape(call: FunctionCall) -> list:
    x0, idx, x1 = call.input_shapes[:3]
    _axis(call, len(x0))
    if not len(x0) == len(idx) == len(x1) or any(i > u for i, u in zip(idx[1:], x1[1:])):
        raise ValueError(f"indices {idx} must fit x1 {x1} with the rank of x0 {x0}")
    return [x0]


@onnx_lowering("ScatterAdd", min_opset=16)
def scatter_add(ctx: LoweringContext) -> None:
    x0, idx, x1 = ctx.input_shapes[:3]
    axis = _axis(ctx.call, len(x0))
    # nnabla reads x1 only where indices has entries (x1 may be larger)
    updates = ctx.op("Slice", ctx.inputs[2], ctx.ints([0] * len(idx)), ctx.op("Shape", ctx.inputs[1]))
    indices = ctx.op("Cast", ctx.inputs[1], to=7)
    ctx.node("ScatterElements", [ctx.inputs[0], indices, updates], ctx.outputs[:1], axis=axis, reduction="add")


# --- Interpolate --------------------------------------------------------------------------------

@shape_rule("Interpolate")
def interpolate_shape(call: FunctionCall) -> list:
    x = call.input_shapes[0]
    size = tuple(int(d) for d in call.param("output_size", ()))
    if not 1 <= len(size) <= 3:
        raise ValueError(f"output_size {size} must have 1 to 3 dimensions")
    if call.param("channel_last"):
        return [tuple(x[:-len(size) - 1]) + size + (x[-1],)]
    return [tuple(x[:-len(size)]) + size]


@onnx_lowering("Interpolate")
def interpolate(ctx: LoweringContext) -> None:
    x = ctx.input_shapes[0]
    size = [int(d) for d in ctx.param("output_size", ())]
    mode = ctx.param("mode") or "linear"
    align_corners = bool(ctx.param("align_corners"))
    half_pixel = bool(ctx.param("half_pixel"))
    half_pixel_for_nn = bool(ctx.param("half_pixel_for_nn"))
    channel_last = bool(ctx.param("channel_last"))
    n = len(size)
    # nnabla: src = scale * dst (asymmetric / align_corners) or max(0, scale * (dst + .5) - .5)
    # (half_pixel), with scale = (in-1)/(out-1) under align_corners else in/out, and 0 when out == 1.
    if mode == "linear":
        if half_pixel and align_corners:
            raise ctx.unsupported("linear mode with half_pixel and align_corners together: no ONNX Resize "
                                  "coordinate mode maps dst to max(0, (in-1)/(out-1) * (dst+0.5) - 0.5)")
        coord = "pytorch_half_pixel" if half_pixel else "align_corners" if align_corners else "asymmetric"
        attrs = {"mode": "linear", "coordinate_transformation_mode": coord}
    elif mode == "nearest":
        if half_pixel_for_nn:
            # floor(in/out * (dst + .5)) == round_prefer_ceil(in/out * (dst + .5) - .5)
            attrs = {"coordinate_transformation_mode": "half_pixel", "nearest_mode": "round_prefer_ceil"}
        elif half_pixel and align_corners:
            raise ctx.unsupported("nearest mode with half_pixel and align_corners together has no ONNX "
                                  "Resize coordinate mode")
        else:
            coord = "pytorch_half_pixel" if half_pixel else "align_corners" if align_corners else "asymmetric"
            attrs = {"coordinate_transformation_mode": coord, "nearest_mode": "floor"}
        attrs["mode"] = "nearest"
    else:
        raise ctx.unsupported(f"mode {mode!r} (nnabla knows 'linear' and 'nearest')")
    if len(x) < n + (2 if channel_last else 1):
        raise ctx.unsupported(f"{n}-D output_size for a {len(x)}-D input")
    xi = ctx.inputs[0]
    ndim = len(x)
    if channel_last:
        perm = list(range(ndim - n - 1)) + [ndim - 1] + list(range(ndim - n - 1, ndim - 1))
        xi = ctx.op("Transpose", xi, perm=perm)
    lead = ctx.op("Slice", ctx.op("Shape", xi), ctx.ints([0]), ctx.ints([ndim - n]))
    sizes = ctx.op("Concat", lead, ctx.ints(size), axis=0)
    if channel_last:
        y = ctx.op("Resize", xi, "", "", sizes, **attrs)
        inverse = [perm.index(d) for d in range(ndim)]
        ctx.node("Transpose", [y], ctx.outputs[:1], perm=inverse)
    else:
        ctx.node("Resize", [xi, "", "", sizes], ctx.outputs[:1], **attrs)


_INEXPRESSIBLE = {
    "BatchCholesky": "ONNX has no Cholesky decomposition operator",
    "Assign": "Assign writes into another variable (training state); an ONNX graph has no mutable variables",
    "BoolGather": "the output size depends on the mask's values (ONNX shapes here must follow the input shapes)",
    "BoolScatter": "it inverts BoolGather, whose output size depends on the mask's values",
    "NonZero": "the output size depends on the input's values",
    "PackPaddedSequence": "packed sequences (variable lengths per sample) have no ONNX representation",
    "PadPackedSequence": "packed sequences (variable lengths per sample) have no ONNX representation",
}


@onnx_lowering(*_INEXPRESSIBLE)
def inexpressible(ctx: LoweringContext) -> None:
    raise ctx.unsupported(_INEXPRESSIBLE[ctx.call.function.type])
