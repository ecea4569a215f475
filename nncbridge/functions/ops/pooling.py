"""Pooling family: MaxPooling, AveragePooling, SumPooling, GlobalAveragePooling, Unpooling.

nnabla's pooling window for output index o along an axis of size w is
``[o*stride - pad, min(o*stride - pad + kernel, w + pad))`` clipped to ``[0, w)``; the output
length is ``(w + 2*pad - kernel) // stride + 1`` with ignore_border, else
``(w + pad - 1) // stride + 1`` (only one pad, independent of the kernel). AveragePooling divides by
the window length before clipping to ``[0, w)`` with including_pad, else after. ONNX pooling
cannot express the ``w + pad`` cut nor this output length, so windows are computed explicitly:
max pooling pads with -inf (implicit in MaxPool), sum/average pooling counts padded elements
(``count_include_pad``) and divides by a constant count tensor.
"""
from __future__ import annotations

import math

import numpy as np

from ...export.context import LoweringContext
from ..registry import FunctionCall, onnx_lowering, shape_rule
from .convolution import from_nchw, spatial_param, to_nchw


class _Pool:
    def __init__(self, call: FunctionCall) -> None:
        kernel = call.param("kernel")
        if not kernel:
            raise ValueError("kernel is empty")
        self.kernel = tuple(int(k) for k in kernel)
        n = self.n = len(self.kernel)
        self.x = tuple(call.input_shapes[0])
        if len(self.x) < n + 1:
            raise ValueError(f"input {self.x} has fewer than {n} spatial axes plus a channel axis")
        self.stride = tuple(int(s) for s in call.param("stride") or ()) or self.kernel
        if len(self.stride) != n:
            raise ValueError(f"stride {self.stride} and kernel {self.kernel} differ in length")
        self.pad = spatial_param(call, "pad", 0, n)
        if any(k <= 0 for k in self.kernel) or any(s <= 0 for s in self.stride) or any(p < 0 for p in self.pad):
            raise ValueError(f"kernel {self.kernel} and stride {self.stride} must be positive, pad {self.pad} >= 0")
        self.ignore_border = bool(call.param("ignore_border", True))
        self.channel_last = bool(call.param("channel_last", False))
        self.lead = len(self.x) - n - 1
        if self.channel_last:
            self.channels, self.spatial = self.x[-1], self.x[self.lead:self.lead + n]
        else:
            self.channels, self.spatial = self.x[self.lead], self.x[self.lead + 1:]
        out = []
        for w, k, s, p in zip(self.spatial, self.kernel, self.stride, self.pad):
            span = w + 2 * p - k if self.ignore_border else w + p - 1
            if span < 0:
                raise ValueError(f"kernel {self.kernel} does not fit input {self.spatial} with pad {self.pad}")
            out.append(span // s + 1)
        self.out = tuple(out)

    def output_shape(self) -> tuple:
        spatial = (*self.out, self.channels) if self.channel_last else (self.channels, *self.out)
        return self.x[:self.lead] + spatial

    def right_pads(self) -> list[int]:
        """Right padding so that floor-mode ONNX pooling yields exactly ``self.out`` full windows."""
        return [max(0, (o - 1) * s - p + k - w)
                for o, s, p, k, w in zip(self.out, self.stride, self.pad, self.kernel, self.spatial)]

    def counts(self, including_pad: bool) -> np.ndarray:
        per_axis = []
        for o, s, p, k, w in zip(self.out, self.stride, self.pad, self.kernel, self.spatial):
            start = np.arange(o) * s - p
            end = np.minimum(start + k, w + p)
            if not including_pad:
                start, end = np.maximum(start, 0), np.minimum(end, w)
            per_axis.append((end - start).astype(np.float64))
        count = per_axis[0]
        for c in per_axis[1:]:
            count = np.multiply.outer(count, c)
        return count.astype(np.float32)


@shape_rule("MaxPooling", "AveragePooling", "SumPooling")
def pooling_shape(call: FunctionCall) -> list:
    return [_Pool(call).output_shape()]


def _pool(ctx: LoweringContext, kind: str) -> None:
    g = _Pool(ctx.call)
    x = to_nchw(ctx, ctx.inputs[0], g.x, g.lead, g.n, g.channel_last)
    right = g.right_pads()
    if kind == "max":
        if any(p >= k for p, k in zip(g.pad, g.kernel)):
            raise ctx.unsupported(f"pad {g.pad} not smaller than kernel {g.kernel}: "
                                  "nnabla then has windows lying entirely in the padding")
        y = ctx.op("MaxPool", x, kernel_shape=list(g.kernel), strides=list(g.stride),
                   pads=list(g.pad) + right)
    else:
        # Padded windows count as full (sum / kernel size); the count tensor below corrects that.
        y = ctx.op("AveragePool", x, kernel_shape=list(g.kernel), strides=list(g.stride),
                   pads=list(g.pad) + right, count_include_pad=1 if any(g.pad) or any(right) else None)
        window = math.prod(g.kernel)
        if kind == "sum":
            y = ctx.op("Mul", y, ctx.const(np.float32(window)))
        else:
            counts = g.counts(bool(ctx.param("including_pad", True)))
            if not np.all(counts == window):
                scale = (window / counts).astype(np.float32).reshape((1, 1) + g.out)
                y = ctx.op("Mul", y, ctx.const(scale))
    from_nchw(ctx, y, ctx.input_shapes[0], g.lead, g.n, g.channel_last, g.channels, g.out, ctx.outputs[0])


@onnx_lowering("MaxPooling")
def max_pooling(ctx: LoweringContext) -> None:
    _pool(ctx, "max")


@onnx_lowering("AveragePooling")
def average_pooling(ctx: LoweringContext) -> None:
    _pool(ctx, "average")


@onnx_lowering("SumPooling")
def sum_pooling(ctx: LoweringContext) -> None:
    _pool(ctx, "sum")


@shape_rule("GlobalAveragePooling")
def global_average_pooling_shape(call: FunctionCall) -> list:
    x = tuple(call.input_shapes[0])
    if len(x) < 2:
        raise ValueError(f"input {x} needs at least 2 axes")
    return [x[:2] + (1, 1)]


@onnx_lowering("GlobalAveragePooling")
def global_average_pooling(ctx: LoweringContext) -> None:
    x = ctx.input_shapes[0]
    y = ctx.inputs[0]
    if len(x) > 4:
        # nnabla ignores axes beyond the fourth: output (n, c) averages the (n*C + c)-th block of
        # H*W consecutive elements of the whole flattened tensor. Reproduce that.
        end = ctx.op("Mul", ctx.op("Slice", ctx.op("Shape", y), ctx.ints([0]), ctx.ints([1])),
                     ctx.ints([x[1] * x[2] * x[3]]))
        y = ctx.op("Slice", ctx.op("Reshape", y, ctx.ints([-1])), ctx.ints([0]), end, ctx.ints([0]))
        y = ctx.op("Reshape", y, ctx.ints([-1, x[1], x[2] * x[3], 1]))
    if len(x) != 4:
        y = ctx.op("Reshape", y, ctx.ints([0, x[1], -1, 1]))
    ctx.node("GlobalAveragePool", [y], ctx.outputs[:1])


def _unpool_geometry(call: FunctionCall) -> tuple[tuple[int, ...], int]:
    kernel = tuple(int(k) for k in call.param("kernel") or ())
    x = tuple(call.input_shapes[0])
    if not kernel or any(k <= 0 for k in kernel):
        raise ValueError(f"kernel {kernel} must be non-empty and positive")
    first = len(x) - len(kernel) - (1 if call.param("channel_last", False) else 0)
    if first < 0:
        raise ValueError(f"input {x} has fewer axes than kernel {kernel} needs")
    return kernel, first


@shape_rule("Unpooling")
def unpooling_shape(call: FunctionCall) -> list:
    kernel, first = _unpool_geometry(call)
    x = list(call.input_shapes[0])
    for i, k in enumerate(kernel):
        x[first + i] *= k
    return [tuple(x)]


@onnx_lowering("Unpooling")
def unpooling(ctx: LoweringContext) -> None:
    kernel, first = _unpool_geometry(ctx.call)
    x = list(ctx.input_shapes[0])
    y = ctx.inputs[0]
    if any(k != 1 for k in kernel):
        # Nearest-neighbour resizing by whole factors repeats each element k times along each axis
        # (onnxruntime's Expand over inner unit axes is two orders of magnitude slower).
        scales = [float(kernel[axis - first]) if 0 <= axis - first < len(kernel) else 1.0 for axis in range(len(x))]
        y = ctx.op("Resize", y, "", ctx.const(scales, hint="scales"), mode="nearest",
                   coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    ctx.node("Identity", [y], ctx.outputs[:1])
