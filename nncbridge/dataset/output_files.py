"""Outputs that ``nnabla_cli forward`` writes as files beside its CSV: a matrix per row as a CSV
file, a (C, H, W) map per row as PNG images; the CSV cell holds the file's path."""
from __future__ import annotations

import os

import numpy as np

from ..errors import DatasetError
from .csv_io import csv_text, format_values


def write_output_files(folder: str, output_index: int, row_index: int, sample: np.ndarray, kind: str,
                       count: int) -> list[str]:
    """Write one row's ``sample`` of output number ``output_index`` as nnabla does, under
    ``folder/<output>_<row // 1000>/``; returns the cells, paths like ``./0_0000/12.png``."""
    try:
        return _write(folder, output_index, row_index, sample, kind, count)
    except (OSError, ValueError) as e:  # ValueError: Pillow refusing an image
        raise DatasetError(f"cannot write an output file in {folder}: {e}") from None


def _write(folder: str, output_index: int, row_index: int, sample: np.ndarray, kind: str, count: int) -> list[str]:
    subfolder = f"{output_index}_{row_index // 1000:04d}"
    os.makedirs(os.path.join(folder, subfolder), exist_ok=True)
    if kind == "csv":
        name = f"{row_index}.csv"
        with open(os.path.join(folder, subfolder, name), "w", encoding="utf-8", newline="") as f:
            f.write(csv_text(format_values(sample.reshape(sample.shape[0], -1))))
        return [os.path.join(".", subfolder, name)]
    from PIL import Image

    # nnabla: value × 255, clipped, truncated to 8 bits (a NaN becomes 0 here, as on x86).
    scaled = np.nan_to_num(np.asarray(sample, dtype=np.float32) * np.float32(255), nan=0.0)
    pixels = scaled.clip(0, 255).astype(np.uint8)
    cells = []
    for channel in range(count):
        if count > 1:
            image, name = pixels[channel], f"{channel}_{row_index}.png"
        else:
            image, name = (pixels.transpose(1, 2, 0) if pixels.shape[0] == 3 else pixels[0]), f"{row_index}.png"
        Image.fromarray(np.ascontiguousarray(image)).save(os.path.join(folder, subfolder, name))
        cells.append(os.path.join(".", subfolder, name))
    return cells
