"""Signal processing: STFT (as nnabla computes it: padding, then a convolution with windowed DFT
kernels), ISTFT and FFT/IFFT shape rules."""
from __future__ import annotations

import numpy as np

from ...export.context import LoweringContext
from ..registry import FunctionCall, onnx_lowering, shape_rule

DOC_NOTES = {
    "STFT": "Pad + two Conv nodes with windowed DFT kernels; as_istft_backward is not exportable.",
    "ISTFT": "Two ConvTranspose nodes with windowed inverse-DFT kernels, then the overlap-add window "
             "normalization; as_stft_backward is not exportable.",
    "FFT": "Real DFT matrices applied with MatMul along each signal axis.",
    "IFFT": "Real DFT matrices applied with MatMul along each signal axis.",
}



@shape_rule("FFT", "IFFT")
def fft_shape(call: FunctionCall) -> list:
    x = tuple(call.input_shapes[0])
    n = int(call.param("signal_ndim", 1))
    if x[-1] != 2 or len(x) < n + 1:
        raise ValueError(f"input must be (..., {'N, ' * n}2) with real and imaginary parts last, got {x}")
    return [x]


def _stft_args(call) -> tuple[int, int, int]:
    window, stride, fft = (int(call.param(k, 0)) for k in ("window_size", "stride", "fft_size"))
    if stride <= 0 or fft <= 0 or not 0 < window <= fft:
        raise ValueError(f"need stride > 0 and 0 < window_size <= fft_size, got window_size={window}, "
                         f"stride={stride}, fft_size={fft}")
    return window, stride, fft


@shape_rule("STFT")
def stft_shape(call: FunctionCall) -> list:
    x = tuple(call.input_shapes[0])
    _, stride, fft = _stft_args(call)
    if len(x) != 2:
        raise ValueError(f"x must be (batch, samples), got {x}")
    length = x[1] + (2 * (fft // 2) if call.param("center", True) else 0)
    frames = (length - fft) // stride + 1
    if frames <= 0:
        raise ValueError(f"{x[1]} samples are fewer than fft_size {fft}")
    return [(x[0], fft // 2 + 1, frames)] * 2


@shape_rule("ISTFT")
def istft_shape(call: FunctionCall) -> list:
    y_r, y_i = tuple(call.input_shapes[0]), tuple(call.input_shapes[1])
    _, stride, fft = _stft_args(call)
    if y_r != y_i or len(y_r) != 3 or y_r[1] != fft // 2 + 1:
        raise ValueError(f"y_r and y_i must both be (batch, {fft // 2 + 1}, frames), got {y_r} and {y_i}")
    if fft % stride:
        raise ValueError(f"fft_size {fft} must be a multiple of stride {stride}")
    length = (y_r[2] - 1) * stride + fft
    if call.param("center", True):
        length -= 2 * (fft // 2)
    return [(y_r[0], length)]


def _window(kind: str, window_size: int, fft_size: int) -> np.ndarray:
    window = np.zeros(fft_size, np.float64)
    i = np.arange(window_size)
    values = {"hanning": 0.5 - 0.5 * np.cos(2 * np.pi * i / window_size),
              "hamming": 0.54 - 0.46 * np.cos(2 * np.pi * i / window_size)}.get(kind, np.ones(window_size))
    left = (fft_size - window_size) // 2
    window[left:left + window_size] = values
    return window


def _fourier_setup(ctx: LoweringContext, backward_flag: str, other: str) -> tuple:
    """(window_size, stride, fft_size, window, frequency grid, time grid) shared by STFT and ISTFT."""
    if ctx.param(backward_flag, False):
        raise ctx.unsupported(f"{backward_flag}=True (the gradient of {other}) is not exportable")
    window_size, stride, fft = _stft_args(ctx.call)
    kind = ctx.param("window_type", "hanning") or "hanning"
    if kind not in ("hanning", "hamming", "rectangular"):
        raise ctx.unsupported(f"window_type {kind!r}")
    w, t = np.meshgrid(np.arange(fft // 2 + 1), np.arange(fft), indexing="ij")
    return window_size, stride, fft, _window(kind, window_size, fft), w, t


@onnx_lowering("STFT")
def stft(ctx: LoweringContext) -> None:
    window_size, stride, fft, window, w, t = _fourier_setup(ctx, "as_istft_backward", "ISTFT")
    angle = 2 * np.pi * w * t / fft
    real = (np.cos(angle) * window).reshape(fft // 2 + 1, 1, fft)
    imag = (-np.sin(angle) * window).reshape(fft // 2 + 1, 1, fft)
    x = ctx.inputs[0]
    if ctx.param("center", True):
        mode = ctx.param("pad_mode", "reflect") or "reflect"
        if mode not in ("reflect", "constant"):
            raise ctx.unsupported(f"pad_mode {mode!r}")
        half = fft // 2
        x = ctx.op("Pad", x, ctx.ints([0, half, 0, half], "pads"), mode=mode)
    x = ctx.op("Unsqueeze", x, ctx.ints([1], "axes"))
    for out, kernel in zip(ctx.outputs[:2], (real, imag)):
        ctx.node("Conv", [x, ctx.const(kernel.astype(np.float32), hint="dft")], [out], strides=[stride])


@onnx_lowering("FFT", "IFFT")
def fft(ctx: LoweringContext) -> None:
    shape = tuple(ctx.input_shapes[0])
    inverse = ctx.call.function.type == "IFFT"
    n = int(ctx.param("signal_ndim", 1))
    rank = len(shape) - 1
    last = ctx.ints([-1], "axes")
    real, imag = (ctx.op("Squeeze", ctx.op("Slice", ctx.inputs[0], ctx.ints([i]), ctx.ints([i + 1]), last), last)
                  for i in (0, 1))
    size = 1
    for axis in range(rank - n, rank):
        length = int(shape[axis])
        size *= length
        k = np.arange(length)
        angle = 2 * np.pi * np.outer(k, k) / length
        cos, sin = ctx.const(np.cos(angle), hint="cos"), ctx.const(np.sin(angle), hint="sin")
        perm = list(range(rank))
        perm[axis], perm[-1] = perm[-1], perm[axis]
        if axis != rank - 1:
            real, imag = (ctx.op("Transpose", t, perm=perm) for t in (real, imag))
        # forward e^{-j theta}: (r cos + i sin, i cos - r sin); inverse e^{+j theta}: signs of sin flip
        r_cos, i_cos = ctx.op("MatMul", real, cos), ctx.op("MatMul", imag, cos)
        r_sin, i_sin = ctx.op("MatMul", real, sin), ctx.op("MatMul", imag, sin)
        if inverse:
            real, imag = ctx.op("Sub", r_cos, i_sin), ctx.op("Add", i_cos, r_sin)
        else:
            real, imag = ctx.op("Add", r_cos, i_sin), ctx.op("Sub", i_cos, r_sin)
        if axis != rank - 1:
            real, imag = (ctx.op("Transpose", t, perm=perm) for t in (real, imag))
    stacked = ctx.op("Concat", *(ctx.op("Unsqueeze", t, last) for t in (real, imag)), axis=-1)
    if ctx.param("normalized", False):
        scale = size ** -0.5
    else:
        scale = 1.0 / size if inverse else 1.0
    if scale == 1.0:
        ctx.node("Identity", [stacked], ctx.outputs[:1])
    else:
        ctx.node("Mul", [stacked, ctx.const(scale, hint="scale")], ctx.outputs[:1])


@onnx_lowering("ISTFT")
def istft(ctx: LoweringContext) -> None:
    window_size, stride, fft, window, w, t = _fourier_setup(ctx, "as_stft_backward", "STFT")
    alpha = np.where((w == 0) | (w == fft // 2), 1.0, 2.0) / fft
    angle = 2 * np.pi * w * t / fft
    cos = (alpha * np.cos(angle) * window).reshape(fft // 2 + 1, 1, fft)
    sin = (alpha * -np.sin(angle) * window).reshape(fft // 2 + 1, 1, fft)
    frames = int(ctx.input_shapes[0][2])
    length = (frames - 1) * stride + fft
    overlap = np.zeros(length)
    for start in range(0, length - fft + 1, stride):
        overlap[start:start + fft] += window ** 2
    center = bool(ctx.param("center", True))
    lo, hi = (fft // 2, length - fft // 2) if center else (0, length)
    if np.any(overlap[lo:hi] < 1e-11):
        raise ctx.unsupported("the window does not overlap-add to a nonzero sum (NOLA condition), as nnabla checks")
    overlap[overlap < 1e-11] = 1.0  # only outside the kept range
    parts = [ctx.op("ConvTranspose", y, ctx.const(k.astype(np.float32), hint="idft"), strides=[stride])
             for y, k in zip(ctx.inputs[:2], (cos, sin))]
    signal = ctx.op("Squeeze", ctx.op("Add", *parts), ctx.ints([1], "axes"))
    signal = ctx.op("Div", signal, ctx.const(overlap.astype(np.float32), hint="overlap"))
    if center:
        signal = ctx.op("Slice", signal, ctx.ints([lo]), ctx.ints([hi]), ctx.ints([1], "axes"))
    ctx.node("Identity", [signal], ctx.outputs[:1])
