"""Images preprocessed exactly as Console's data loader does it."""
from __future__ import annotations

import io
import os
import stat
from functools import lru_cache
from typing import Any

import numpy as np

from ..errors import ImageTooLargeError, InputError

MAX_IMAGE_PIXELS = 64_000_000


def is_image_shape(shape: tuple[int, ...]) -> bool:
    """Inputs shaped (C, H, W) with 1 or 3 channels, or (H, W), can take images."""
    if len(shape) == 3:
        return shape[0] in (1, 3) and shape[1] > 1 and shape[2] > 1
    return len(shape) == 2 and shape[0] > 1 and shape[1] > 1


def image_channels(shape: tuple[int, ...]) -> int:
    """Channels an image input of ``shape`` takes: (C, H, W) inputs C, (H, W) inputs 1."""
    return shape[0] if len(shape) == 3 else 1


def open_image(source: Any, what: str, formats: tuple[str, ...] | None = None) -> Any:
    """A path, file object, bytes or PIL image as a loaded PIL image of at most ``MAX_IMAGE_PIXELS``
    pixels, decoded by Pillow (in ``formats`` only, when given: what a server takes from anyone)."""
    from PIL import Image

    if isinstance(source, Image.Image):
        return source
    if isinstance(source, (bytes, bytearray, memoryview)):
        if not len(source):
            raise InputError(f"{what}: the image is empty")
        source = io.BytesIO(source)
    named = f" {os.fspath(source)}" if isinstance(source, (str, os.PathLike)) else ""
    accepted = f" ({', '.join(formats)} accepted)" if formats else ""
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        # A FIFO or device path would block or never end: only regular files are opened.
        if named and not stat.S_ISREG(os.stat(source).st_mode):
            raise InputError(f"{what}:{named} is not a regular file")
        image = Image.open(source, formats=formats)
        try:
            if image.width * image.height > MAX_IMAGE_PIXELS:  # Pillow refuses only at twice its limit
                raise ImageTooLargeError(f"{what}: the image{named} is {image.width}x{image.height}, larger than "
                                         f"{MAX_IMAGE_PIXELS:,} pixels")
            image.load()
        except BaseException:
            image.close()  # Pillow keeps the file open until the image is closed
            raise
    except FileNotFoundError:
        raise InputError(f"{what}: image file not found:{named}") from None
    except Image.DecompressionBombError:
        raise ImageTooLargeError(f"{what}: the image{named} is larger than {MAX_IMAGE_PIXELS:,} pixels") from None
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for damaged files
        raise InputError(f"{what}: cannot read image{named}{accepted}: {e}") from None
    return image


def image_to_array(source: Any, shape: tuple[int, ...], normalize: bool, resize: bool = False,
                   what: str = "image") -> np.ndarray:
    """A path, file object, bytes or PIL image as float32 in the input's layout (C, H, W) or (H, W).

    Grayscale or RGB is chosen by the input's channel count; 8-bit values are scaled by 1/255
    and 16-bit ones by 1/65535 when ``normalize`` (Console's default), otherwise kept as is.
    """
    return pixels_to_input(load_pixels(source, shape, resize, what), shape, normalize)


def load_pixels(source: Any, shape: tuple[int, ...], resize: bool = False, what: str = "image") -> np.ndarray:
    """The image's pixels as an input of ``shape`` takes them: (H, W) or (H, W, 3), uint8, or an
    integer type wider than 8 bits for 16-bit grayscale images."""
    if not is_image_shape(shape):
        raise InputError(f"{what}: an input of shape {tuple(shape)} does not take images")
    if isinstance(source, (str, os.PathLike)):
        pixels = _plain_png_pixels(source, shape)
        if pixels is not None:
            return pixels
    image = open_image(source, what)
    channels = image_channels(shape)
    height, width = shape[-2], shape[-1]
    sixteen_bit = image.mode in ("I;16", "I;16B", "I;16L", "I")
    wanted = "L" if channels == 1 else "RGB"
    if image.mode == wanted or (sixteen_bit and channels == 1):
        pixels = np.asarray(image)
    else:
        pixels = np.asarray(image.convert(wanted))
    if pixels.shape[:2] != (height, width):
        if not resize:
            raise InputError(f"{what}: image is {pixels.shape[1]}x{pixels.shape[0]} (WxH), the input needs "
                             f"{width}x{height}; resize it or pass resize=True")
        from PIL import Image

        pixels = np.asarray(Image.fromarray(pixels).resize((width, height), Image.Resampling.BILINEAR))
    return pixels


def pixels_to_input(pixels: np.ndarray, shape: tuple[int, ...], normalize: bool) -> np.ndarray:
    """HWC or HW pixel values -> the input layout, scaled like Console."""
    return pixels_to_batch(pixels[None], shape, normalize)[0]


def pixels_to_batch(pixels: np.ndarray, shape: tuple[int, ...], normalize: bool) -> np.ndarray:
    """Pixels of N images, (N, H, W) or (N, H, W, C) -> a float32 batch (N, *shape), scaled like Console:
    8-bit values by 1/255, wider ones (16-bit grayscale) by 1/65535, when ``normalize``."""
    if pixels.ndim == 4:
        pixels = pixels.transpose(0, 3, 1, 2)
    batch_shape = (len(pixels),) + tuple(shape)
    if pixels.dtype == np.uint8:
        # The same float32 values as nnabla's uint8 * (1/255) in float64, by table lookup.
        return (_SCALED_UINT8 if normalize else _UINT8)[pixels].reshape(batch_shape)
    data = pixels.astype(np.float64)
    if normalize:
        data = data * (1.0 / 65535.0)
    return data.astype(np.float32).reshape(batch_shape)


_UINT8 = np.arange(256, dtype=np.float32)
_SCALED_UINT8 = (np.arange(256, dtype=np.float64) * (1.0 / 255.0)).astype(np.float32)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_FAST_PATH_MAX_BYTES = 64 << 20  # bigger files go to Pillow, which reads them incrementally
_FIRST_READ = 1 << 16  # most dataset images fit in one read of this size
_png_decoder: Any = None
# O_NONBLOCK: opening or reading a FIFO must not wait for a writer.
_READ_BINARY = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)


def _fast_png_decoder() -> Any:
    """imagecodecs' PNG decoder (the optional ``fast`` extra): 2-3x faster than Pillow on small
    images and free of the GIL; False when it is not installed."""
    global _png_decoder
    if _png_decoder is None:
        try:
            import imagecodecs

            _png_decoder = imagecodecs.spng_decode if imagecodecs.SPNG.available else (
                imagecodecs.png_decode if imagecodecs.PNG.available else False)
        except ImportError:
            _png_decoder = False
    return _png_decoder


def _plain_png_pixels(path: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    """The pixels of an 8-bit grayscale or RGB PNG that already has the input's size and channel
    count, decoded by imagecodecs; the values Pillow gives for it. None whenever anything else
    applies (no imagecodecs, another format or layout, a damaged file, not a readable regular
    file): Pillow then decodes it, or reports the problem."""
    decode = _fast_png_decoder()
    if not decode:
        return None
    data = _read_png_file(path)
    # Signature, then the IHDR chunk: length 13, b"IHDR", width, height, bit depth, colour type.
    if data is None or len(data) < 33 or data[12:16] != b"IHDR":
        return None
    height, width, colour_type, expected = _png_layout(tuple(shape))
    if data[24] != 8 or data[25] != colour_type or int.from_bytes(data[16:20], "big") != width \
            or int.from_bytes(data[20:24], "big") != height or width * height > MAX_IMAGE_PIXELS:
        return None
    try:
        pixels = decode(data)
    except Exception:  # imagecodecs raises its own error types for damaged data
        return None
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.shape != expected:
        return None
    return pixels


def _read_png_file(path: Any) -> bytes | None:
    """The bytes of a PNG file of at most ``_FAST_PATH_MAX_BYTES``, or None. With os-level calls:
    half the cost of open().read() for files this small. Devices give no PNG signature,
    FIFOs no data, directories an error: all None, and the Pillow path then refuses them."""
    try:
        fd = os.open(path, _READ_BINARY)
        try:
            data = os.read(fd, _FIRST_READ)
            if not data.startswith(_PNG_SIGNATURE):
                return None
            if len(data) < _FIRST_READ:
                return data
            parts, size = [data], len(data)
            while part := os.read(fd, 1 << 20):
                size += len(part)
                if size > _FAST_PATH_MAX_BYTES:
                    return None
                parts.append(part)
            return b"".join(parts)
        finally:
            os.close(fd)
    except (OSError, ValueError):  # ValueError: a NUL byte in the path; Pillow's path reports it
        return None


@lru_cache(maxsize=64)
def _png_layout(shape: tuple[int, ...]) -> tuple[int, int, int, tuple[int, ...]]:
    """Height, width, PNG colour type (0 gray, 2 RGB; -1 none) and decoded array shape for an input."""
    channels = image_channels(shape)
    height, width = shape[-2], shape[-1]
    return height, width, {1: 0, 3: 2}.get(channels, -1), (height, width) if channels == 1 else (height, width, 3)
