"""Pen strokes of the ten digits as a person writes them, for the handwriting demo's tests.

Each digit is a list of strokes; a stroke is a polyline of (x, y) points in a unit box (x to the
right, y down, the digit about 0.6 wide and 1 high), traced in the order a pen moves. The shapes
are written by hand here, not taken from the training images: the tests draw them on the page
with pointer events (or render them with Pillow) and expect the models to read them.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

Stroke = list[tuple[float, float]]


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float, steps: int = 24) -> Stroke:
    """Points on an ellipse from angle ``start`` to ``end`` (degrees; 0 = right, 90 = down)."""
    return [(cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
            for a in np.linspace(start, end, steps)]


def _figure_eight(cx: float, cross: float, top_width: float, bottom_width: float, half_height: float) -> Stroke:
    """An 8 in one stroke (a lemniscate of Gerono standing up): from the top, down the right of
    the upper loop, through the crossing, round the lower loop and back up to the top."""
    points = []
    for t in np.linspace(0, 2 * math.pi, 48):
        width = top_width if math.cos(t) > 0 else bottom_width
        points.append((cx + width * math.sin(2 * t), cross - half_height * math.cos(t) * (0.9 if math.cos(t) > 0 else 1.05)))
    return points


DIGIT_STROKES: dict[int, list[Stroke]] = {
    0: [_arc(0.5, 0.5, 0.28, 0.45, -80, -440, 40)],
    1: [[(0.33, 0.24), (0.45, 0.13), (0.56, 0.04), (0.56, 0.5), (0.56, 0.96)]],
    2: [_arc(0.5, 0.3, 0.27, 0.25, 195, 385) + [(0.5, 0.62), (0.2, 0.95), (0.5, 0.95), (0.82, 0.94)]],
    3: [_arc(0.48, 0.27, 0.25, 0.22, 205, 450) + _arc(0.48, 0.72, 0.28, 0.23, 270, 520)],
    4: [[(0.58, 0.04), (0.35, 0.36), (0.14, 0.66), (0.5, 0.66), (0.86, 0.65)], [(0.64, 0.34), (0.64, 0.65), (0.63, 0.97)]],
    5: [[(0.78, 0.05), (0.5, 0.05), (0.3, 0.06), (0.27, 0.27), (0.26, 0.47)] + _arc(0.5, 0.68, 0.28, 0.27, 215, 520)],
    6: [[(0.7, 0.04), (0.52, 0.15), (0.38, 0.3), (0.28, 0.5)] + _arc(0.5, 0.72, 0.24, 0.23, 190, -160)],
    7: [[(0.18, 0.08), (0.5, 0.06), (0.82, 0.06), (0.62, 0.5), (0.42, 0.96)], [(0.44, 0.5), (0.8, 0.49)]],
    8: [_figure_eight(0.5, 0.47, 0.2, 0.26, 0.46)],
    9: [_arc(0.5, 0.3, 0.25, 0.25, 10, -350, 32) + [(0.75, 0.4), (0.74, 0.7), (0.72, 0.96)]],
}


def place(strokes: list[Stroke], left: float, top: float, height: float, *, width_ratio: float = 1.0,
          slant: float = 0.0) -> list[Stroke]:
    """Strokes in pixels: the unit box scaled to ``height`` (x by ``height * width_ratio``), its
    top-left corner at (left, top), leaning right by ``slant`` (x shifts by slant * (1 - y))."""
    return [[(left + height * width_ratio * (x + slant * (1.0 - y)), top + height * y) for x, y in stroke]
            for stroke in strokes]


def render(strokes: list[Stroke], size: tuple[int, int], pen_width: float) -> Image.Image:
    """White strokes with round ends and joints on black, as the page's pad draws them."""
    image = Image.new("L", size, 0)
    draw = ImageDraw.Draw(image)
    r = pen_width / 2
    for stroke in strokes:
        draw.line(stroke, fill=255, width=round(pen_width), joint="curve")
        for x, y in stroke:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    return image
