"""Convolution family: Convolution, Deconvolution, DepthwiseConvolution, DepthwiseDeconvolution.

ONNX Conv/ConvTranspose want (N, C, spatial...). nnabla allows any number of leading
"batch" axes (base_axis) and channel-last layouts, so inputs are brought to that form first
(transpose channel to axis 1, fold leading axes into one with Reshape -1) and restored after.
"""
from __future__ import annotations

import numpy as np

from ...export.context import LoweringContext
from ..registry import FunctionCall, onnx_lowering, shape_rule


def spatial_param(call: FunctionCall, name: str, default: int, n: int) -> tuple[int, ...]:
    value = call.param(name)
    if not value:
        return (default,) * n
    value = tuple(int(v) for v in value)
    if len(value) != n:
        raise ValueError(f"{name} has {len(value)} values but there are {n} spatial axes")
    return value


def _base_axis(call: FunctionCall, ndim: int) -> int:
    base_axis = int(call.param("base_axis", 1))
    if base_axis < 0:
        base_axis += ndim
    if not 0 <= base_axis < ndim:
        raise ValueError(f"base_axis {base_axis} out of range for a {ndim}-D input")
    return base_axis


def _split(x: tuple, lead: int, n: int, channel_last: bool) -> tuple[int, tuple[int, ...]]:
    """(channels, spatial dims) of ``x`` whose first ``lead`` axes are batch-like."""
    if channel_last:
        return x[lead + n], tuple(x[lead:lead + n])
    return x[lead], tuple(x[lead + 1:lead + 1 + n])


def _join(lead: tuple, channels: int, spatial: tuple, channel_last: bool) -> tuple:
    return tuple(lead) + (tuple(spatial) + (channels,) if channel_last else (channels,) + tuple(spatial))


def to_nchw(ctx: LoweringContext, x: str, shape: tuple, lead: int, n: int, channel_last: bool) -> str:
    """Bring ``x`` (``lead`` batch-like axes, channel, ``n`` spatial axes) to (N', C, spatial)."""
    if channel_last:
        perm = list(range(lead)) + [lead + n] + list(range(lead, lead + n))
        x = ctx.op("Transpose", x, perm=perm)
    if lead != 1:
        channels, spatial = _split(tuple(shape), lead, n, channel_last)
        x = ctx.op("Reshape", x, ctx.ints([-1, channels, *spatial]))
    return x


def from_nchw(ctx: LoweringContext, y: str, x_shape: tuple, lead: int, n: int, channel_last: bool,
              channels: int, spatial: tuple, output: str) -> None:
    """Inverse of :func:`to_nchw` for a result with ``channels`` and ``spatial`` dims; writes ``output``."""
    if lead != 1:
        tail = [channels, *spatial]
        if lead == 0:
            y = ctx.op("Reshape", y, ctx.ints(tail))
        else:
            y = ctx.op("Reshape", y, ctx.batch_free_shape([*x_shape[:lead], *tail]))
    if channel_last:
        perm = list(range(lead)) + list(range(lead + 1, lead + 1 + n)) + [lead]
        y = ctx.op("Transpose", y, perm=perm)
    ctx.node("Identity", [y], [output])


def _conv_out(size: int, k: int, p: int, s: int, d: int) -> int:
    return (size + 2 * p - (d * (k - 1) + 1)) // s + 1


def _deconv_out(size: int, k: int, p: int, s: int, d: int, op: int) -> int:
    return (size - 1) * s - 2 * p + d * (k - 1) + 1 + op


class _Geometry:
    def __init__(self, call: FunctionCall, depthwise: bool, fused: bool = False) -> None:
        x, w = tuple(call.input_shapes[0]), tuple(call.input_shapes[1])
        self.x, self.w = x, w
        self.lead = _base_axis(call, len(x))
        self.n = len(x) - self.lead - 1
        if self.n < 1:
            raise ValueError(f"input {x} has no spatial axis after base_axis {self.lead}")
        self.channel_last = False if depthwise else bool(call.param("channel_last", False))
        self.channels, self.spatial = _split(x, self.lead, self.n, self.channel_last)
        if depthwise:
            if len(w) != 1 + self.n:
                raise ValueError(f"weight {w} must have 1 + {self.n} axes")
            self.kernel = w[1:]
        else:
            if len(w) != 2 + self.n:
                raise ValueError(f"weight {w} must have 2 + {self.n} axes")
            self.kernel = w[1:1 + self.n] if self.channel_last else w[2:]
        self.pad = (0,) * self.n if fused else spatial_param(call, "pad", 0, self.n)
        self.stride = spatial_param(call, "stride", 1, self.n)
        self.dilation = spatial_param(call, "dilation", 1, self.n)
        if any(s <= 0 for s in self.stride) or any(d <= 0 for d in self.dilation):
            raise ValueError(f"stride {self.stride} and dilation {self.dilation} must be positive")


def _weight_in_channels(g: _Geometry) -> int:
    return g.w[1 + g.n] if g.channel_last else g.w[1]


def _group(call: FunctionCall) -> int:
    group = int(call.param("group", 1))
    if group <= 0:
        raise ValueError(f"group {group} must be positive")
    return group


def _check_positive(out: tuple) -> tuple:
    if any(o <= 0 for o in out):
        raise ValueError(f"output spatial size {out} is not positive")
    return out


@shape_rule("Convolution")
def convolution_shape(call: FunctionCall) -> list:
    g = _Geometry(call, depthwise=False)
    group = _group(call)
    if g.channels != _weight_in_channels(g) * group:
        raise ValueError(f"input channels {g.channels} != weight channels {_weight_in_channels(g)} * group {group}")
    out = _check_positive(tuple(_conv_out(*a) for a in zip(g.spatial, g.kernel, g.pad, g.stride, g.dilation)))
    return [_join(g.x[:g.lead], g.w[0], out, g.channel_last)]


@shape_rule("Deconvolution")
def deconvolution_shape(call: FunctionCall) -> list:
    g = _Geometry(call, depthwise=False)
    group = _group(call)
    if g.channels != g.w[0]:
        raise ValueError(f"input channels {g.channels} != weight's first axis {g.w[0]}")
    out_pad = spatial_param(call, "output_padding", 0, g.n)
    out = _check_positive(tuple(_deconv_out(*a) for a in
                                zip(g.spatial, g.kernel, g.pad, g.stride, g.dilation, out_pad)))
    return [_join(g.x[:g.lead], _weight_in_channels(g) * group, out, g.channel_last)]


@shape_rule("DepthwiseConvolution")
def depthwise_convolution_shape(call: FunctionCall) -> list:
    g = _Geometry(call, depthwise=True)
    multiplier = int(call.param("multiplier", 1)) or 1
    if g.w[0] != g.channels * multiplier:
        raise ValueError(f"weight's first axis {g.w[0]} != input channels {g.channels} * multiplier {multiplier}")
    out = _check_positive(tuple(_conv_out(*a) for a in zip(g.spatial, g.kernel, g.pad, g.stride, g.dilation)))
    return [_join(g.x[:g.lead], g.w[0], out, False)]


@shape_rule("DepthwiseDeconvolution")
def depthwise_deconvolution_shape(call: FunctionCall) -> list:
    g = _Geometry(call, depthwise=True)
    divisor = int(call.param("divisor", 1)) or 1
    if g.w[0] != g.channels or g.channels % divisor:
        raise ValueError(f"weight's first axis {g.w[0]} must equal input channels {g.channels}, "
                         f"divisible by divisor {divisor}")
    out = _check_positive(tuple(_deconv_out(*a, 0) for a in
                                zip(g.spatial, g.kernel, g.pad, g.stride, g.dilation)))
    return [_join(g.x[:g.lead], g.channels // divisor, out, False)]


def _emit(ctx: LoweringContext, op_type: str, g: _Geometry, weight: str, group: int,
          out_channels: int, **attrs) -> None:
    out_spatial = _split(tuple(ctx.output_shapes[0]), g.lead, g.n, g.channel_last)[1]
    x = to_nchw(ctx, ctx.inputs[0], g.x, g.lead, g.n, g.channel_last)
    inputs = [x, weight]
    if ctx.has_input(2):
        bias = ctx.inputs[2]
        if len(ctx.input_shapes[2]) != 1:
            bias = ctx.op("Reshape", bias, ctx.ints([-1]))
        inputs.append(bias)
    y = ctx.op(op_type, *inputs, kernel_shape=list(g.kernel), strides=list(g.stride),
               dilations=list(g.dilation), pads=list(g.pad) * 2, group=group, **attrs)
    from_nchw(ctx, y, ctx.input_shapes[0], g.lead, g.n, g.channel_last, out_channels, out_spatial, ctx.outputs[0])


def _weight_channel_first(ctx: LoweringContext, g: _Geometry) -> str:
    if not g.channel_last:
        return ctx.inputs[1]
    return ctx.op("Transpose", ctx.inputs[1], perm=[0, g.n + 1] + list(range(1, g.n + 1)))


@onnx_lowering("Convolution")
def convolution(ctx: LoweringContext) -> None:
    g = _Geometry(ctx.call, depthwise=False)
    _emit(ctx, "Conv", g, _weight_channel_first(ctx, g), _group(ctx.call), g.w[0])


@onnx_lowering("Deconvolution")
def deconvolution(ctx: LoweringContext) -> None:
    g = _Geometry(ctx.call, depthwise=False)
    group = _group(ctx.call)
    out_pad = spatial_param(ctx.call, "output_padding", 0, g.n)
    for op, s, d in zip(out_pad, g.stride, g.dilation):
        if op and op >= max(s, d):
            raise ctx.unsupported(f"output_padding {out_pad} must be smaller than stride {g.stride} "
                                  f"or dilation {g.dilation} for ONNX ConvTranspose")
    _emit(ctx, "ConvTranspose", g, _weight_channel_first(ctx, g), group, _weight_in_channels(g) * group,
          output_padding=list(out_pad) if any(out_pad) else None)


@onnx_lowering("DepthwiseConvolution")
def depthwise_convolution(ctx: LoweringContext) -> None:
    g = _Geometry(ctx.call, depthwise=True)
    weight = ctx.op("Reshape", ctx.inputs[1], ctx.ints([g.w[0], 1, *g.kernel]))
    _emit(ctx, "Conv", g, weight, g.channels, g.w[0])


@onnx_lowering("DepthwiseDeconvolution")
def depthwise_deconvolution(ctx: LoweringContext) -> None:
    g = _Geometry(ctx.call, depthwise=True)
    divisor = int(ctx.param("divisor", 1)) or 1
    weight = ctx.op("Reshape", ctx.inputs[1], ctx.ints([g.w[0], 1, *g.kernel]))
    _emit(ctx, "ConvTranspose", g, weight, g.channels // divisor, g.channels // divisor)


def _fused_conv_pad(call: FunctionCall, n: int) -> tuple[list[int], list[int]]:
    """(begin pads, end pads) of FusedConvolution's pad, or ValueError if it is not zero padding."""
    pad = tuple(int(p) for p in call.param("pad") or ())
    if not pad:
        return [0] * n, [0] * n
    if len(pad) == n:
        return list(pad), list(pad)
    if len(pad) == 2 * n:
        mode = call.param("pad_mode", "constant") or "constant"
        if mode != "constant" or float(call.param("constant_value", 0.0)) != 0.0:
            raise ValueError(f"pad_mode {mode!r} with constant_value {call.param('constant_value', 0.0)}")
        return list(pad[0::2]), list(pad[1::2])
    raise ValueError(f"pad {pad} must have {n} or {2 * n} values")


@shape_rule("FusedConvolution")
def fused_convolution_shape(call: FunctionCall) -> list:
    g = _Geometry(call, depthwise=False, fused=True)
    begin, end = _fused_conv_pad(call, g.n)
    out = _check_positive(tuple((s + b + e - (d * (k - 1) + 1)) // st + 1 for s, b, e, d, k, st in
                                zip(g.spatial, begin, end, g.dilation, g.kernel, g.stride)))
    return [_join(g.x[:g.lead], g.w[0], out, g.channel_last)]


_FUSED_ACTIVATIONS = {"identity": None, "relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh",
                      "leaky_relu": "LeakyRelu", "elu": "Elu", "relu6": "Clip"}


def _fused_roles(ctx: LoweringContext) -> dict[str, str]:
    """Which optional inputs are present: nnabla tells them apart only by their count (and
    whether a third input is 1-D), as its FusedConvolution does."""
    names = [n for n in ctx.inputs if n]
    shapes = [s for n, s in zip(ctx.inputs, ctx.input_shapes) if n]
    bn = ["beta", "gamma", "mean", "variance"]
    if len(names) == 2:
        roles: list[str] = []
    elif len(names) == 3:
        roles = ["bias" if len(shapes[2]) == 1 else "z"]
    elif len(names) == 4:
        roles = ["bias", "z"]
    elif len(names) == 6:
        roles = bn
    elif len(names) == 7:
        roles = bn + ["z"]
    else:
        raise ctx.unsupported(f"{len(names)} inputs (nnabla accepts 2, 3, 4, 6 or 7)")
    return dict(zip(roles, names[2:]))


@onnx_lowering("FusedConvolution")
def fused_convolution(ctx: LoweringContext) -> None:
    g = _Geometry(ctx.call, depthwise=False, fused=True)
    try:
        begin, end = _fused_conv_pad(ctx.call, g.n)
    except ValueError as exc:
        raise ctx.unsupported(f"padding other than zero padding: {exc}") from None
    nonlinearity = ctx.param("nonlinearity", "relu") or "identity"
    if nonlinearity not in _FUSED_ACTIVATIONS:
        raise ctx.unsupported(f"nonlinearity {nonlinearity!r}")
    roles = _fused_roles(ctx)
    has_bn = "mean" in roles
    if has_bn and ctx.param("batch_stat", True):
        raise ctx.unsupported("batch_stat=True (normalizes with the statistics of the batch being run)")
    out_spatial = _split(tuple(ctx.output_shapes[0]), g.lead, g.n, g.channel_last)[1]
    x = to_nchw(ctx, ctx.inputs[0], g.x, g.lead, g.n, g.channel_last)
    inputs = [x, _weight_channel_first(ctx, g)]
    if "bias" in roles:
        inputs.append(ctx.op("Reshape", roles["bias"], ctx.ints([-1])))
    y = ctx.op("Conv", *inputs, kernel_shape=list(g.kernel), strides=list(g.stride),
               dilations=list(g.dilation), pads=begin + end, group=_group(ctx.call))
    if has_bn:
        channel = [1, g.w[0]] + [1] * g.n

        def stat(role: str) -> str:
            return ctx.op("Reshape", roles[role], ctx.ints(channel))

        eps = ctx.const(np.float32(ctx.param("eps", 1e-5)))
        y = ctx.op("Div", ctx.op("Sub", y, stat("mean")), ctx.op("Sqrt", ctx.op("Add", stat("variance"), eps)))
        y = ctx.op("Add", ctx.op("Mul", y, stat("gamma")), stat("beta"))
    result = ctx.fresh("fused")
    from_nchw(ctx, y, ctx.input_shapes[0], g.lead, g.n, g.channel_last, g.w[0], out_spatial, result)
    if "z" in roles:
        result = ctx.op("Add", result, roles["z"])
    op_type = _FUSED_ACTIVATIONS[nonlinearity]
    args = list(ctx.param("nonlinearity_args") or ())
    if op_type is None:
        ctx.node("Identity", [result], ctx.outputs[:1])
    elif op_type == "Clip":
        ctx.node("Clip", [result, ctx.const(np.float32(0)), ctx.const(np.float32(6))], ctx.outputs[:1])
    elif op_type in ("LeakyRelu", "Elu"):
        if not args:
            raise ctx.unsupported(f"nonlinearity {nonlinearity!r} without its alpha in nonlinearity_args "
                                  "(nnabla rejects it too)")
        ctx.node(op_type, [result], ctx.outputs[:1], alpha=float(args[0]))
    else:
        ctx.node(op_type, [result], ctx.outputs[:1])
