"""Bring a digit drawn on a canvas to the look of the images the sample models were trained on.

The models (``../digits/digits.nnp``, ``../siamese/siamese.nnp``) learnt from scikit-learn's
8x8 digits, made into 28x28 images by ``../make_digit_pngs.py``. Those 8x8 digits come from
32x32 black-and-white bitmaps, each digit scaled to fill the bitmap's height, with every 4x4
block counted into one grey level 0..16 (UCI "optdigits"). The recipe then scales the 8x8 grid
to a 20x20 box with bilinear interpolation and pastes it at (4, 4) on a black 28x28 image. A
digit drawn with a pen looks nothing like that until :func:`prepare_drawing` redoes every step.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from make_digit_pngs import digit_to_image  # noqa: E402  (the training recipe itself)

BITMAP = 32           # optdigits' bitmap side; 4x4 blocks of it make the 8x8 grid
INK_THRESHOLD = 0.05  # a pixel brighter than this fraction of the brightest one is ink
# Share of the 8x8 grid that is ink in the training digits (the mean grey level / 16 is 0.30 for
# every one of the ten classes). Strokes thinner or thicker than that are widened or thinned.
INK_SHARE = (0.22, 0.40)
MAX_WIDTH_STEPS = 3


class NothingDrawn(ValueError):
    """The image holds no ink."""


def prepare_drawing(image: Image.Image) -> Image.Image:
    """A drawing (bright ink on a dark background, any size, RGBA over black) -> the 28x28 8-bit
    grayscale image the sample models expect, made like their training images:

    1. ink = pixels brighter than ``INK_THRESHOLD`` of the brightest; crop to the ink's bounding box;
    2. scale the crop, keeping its aspect ratio, to fill the height of a 32x32 bitmap (or its width
       if it is wider than high), centred, with area averaging (Pillow's ``reduce``/``BOX`` filter);
    3. strokes much thinner or thicker than the training digits' (ink covering 22-40 % of the
       grid) are widened or thinned with 3x3 max / min filters on the bitmap, at most 3 times;
    4. the average of each 4x4 block, times 16 and rounded, gives the 8x8 grid of grey levels 0..16;
    5. ``make_digit_pngs.digit_to_image``: bilinear to 20x20, pasted at (4, 4) on black 28x28.

    Raises :class:`NothingDrawn` when nothing is drawn.
    """
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, rgba)
    grey = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    peak = float(grey.max()) if grey.size else 0.0
    if peak <= 0.0:
        raise NothingDrawn("nothing is drawn: the image has no pixel brighter than the background")
    rows = np.flatnonzero((grey > INK_THRESHOLD * peak).any(axis=1))
    cols = np.flatnonzero((grey > INK_THRESHOLD * peak).any(axis=0))
    crop = grey[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] / peak
    bitmap = _fit_into_bitmap(crop)
    bitmap = _normalise_stroke_width(bitmap)
    blocks = bitmap.reshape(8, BITMAP // 8, 8, BITMAP // 8).mean(axis=(1, 3))
    return digit_to_image(np.clip(np.rint(blocks * 16.0), 0, 16))


def _fit_into_bitmap(crop: np.ndarray) -> np.ndarray:
    """The crop scaled (aspect kept) so its longer side is the bitmap's, centred on a black bitmap."""
    h, w = crop.shape
    scale = BITMAP / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    scaled = np.asarray(Image.fromarray(crop, mode="F").resize(size, Image.BOX), dtype=np.float32)
    bitmap = np.zeros((BITMAP, BITMAP), dtype=np.float32)
    top, left = (BITMAP - size[1]) // 2, (BITMAP - size[0]) // 2
    bitmap[top:top + size[1], left:left + size[0]] = np.clip(scaled, 0.0, 1.0)
    return bitmap


def _normalise_stroke_width(bitmap: np.ndarray) -> np.ndarray:
    low, high = INK_SHARE
    for _ in range(MAX_WIDTH_STEPS):
        share = float(bitmap.mean())
        if share < low:
            step = ImageFilter.MaxFilter(3)
        elif share > high:
            step = ImageFilter.MinFilter(3)
        else:
            break
        changed = np.asarray(Image.fromarray(bitmap, mode="F").filter(step), dtype=np.float32)
        if abs(float(changed.mean()) - (low + high) / 2) >= abs(share - (low + high) / 2):
            break  # the step overshoots: one width step is coarser than the gap
        bitmap = changed
    return bitmap
