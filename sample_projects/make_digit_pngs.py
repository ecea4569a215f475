"""Turn scikit-learn's bundled handwritten digits into 28x28 PNGs and Console dataset CSVs.

Shared by both sample projects (``digits/`` and ``siamese/``). No download: the data is
``sklearn.datasets.load_digits()`` -- 1,797 images of 8x8 pixels with 17 grey levels (0..16),
ink bright on a dark background, labels 0..9.

Recipe, for every image (exact, deterministic):

1. ``pixels = np.rint(values * 255 / 16).astype(np.uint8)``  (0 -> 0, 16 -> 255)
2. ``Image.fromarray(pixels, "L").resize((20, 20), Image.BILINEAR)``  (Pillow)
3. paste it at (4, 4) on a black 28x28 ``"L"`` canvas -- the digit centred in a 20x20 box
   like MNIST, white on black
4. save as an 8-bit grayscale PNG.

Split: ``train_test_split(indices, test_size=297, stratify=labels, random_state=0)`` ->
1,500 training and 297 test images. Files are numbered in split order from 1:
``<out>/train/0001.png`` ... ``<out>/train/1500.png`` and ``<out>/test/0001.png`` ...
``<out>/test/0297.png``. Each split gets a Console dataset CSV, ``<out>/train.csv`` and
``<out>/test.csv``, with the header ``x:image,y:label`` and image paths relative to the
CSV's folder (``test/0001.png``).

The test split (297 PNGs + test.csv) is committed under ``sample_projects/digits/data``; the
training split is only generated (``sample_projects/.gitignore`` excludes it).

Usage::

    python sample_projects/make_digit_pngs.py            # writes sample_projects/digits/data/
    python sample_projects/make_digit_pngs.py --out DIR  # somewhere else

Needs numpy, Pillow and scikit-learn.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "digits" / "data"
TEST_SIZE = 297
SEED = 0


def digit_to_image(values: np.ndarray) -> Image.Image:
    """One 8x8 sklearn digit (values 0..16) -> 28x28 8-bit grayscale PIL image (the recipe above)."""
    pixels = np.rint(np.asarray(values, dtype=np.float64).reshape(8, 8) * 255.0 / 16.0).astype(np.uint8)
    small = Image.fromarray(pixels, mode="L").resize((20, 20), Image.BILINEAR)
    canvas = Image.new("L", (28, 28), 0)
    canvas.paste(small, (4, 4))
    return canvas


def split_indices() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(images, labels, train_indices, test_indices) of the fixed stratified seeded split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    indices = np.arange(len(digits.target))
    train_idx, test_idx = train_test_split(indices, test_size=TEST_SIZE, stratify=digits.target,
                                           random_state=SEED)
    return digits.images, digits.target, train_idx, test_idx


def write_split(out: Path, name: str, images: np.ndarray, labels: np.ndarray, idx: np.ndarray) -> Path:
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for n, i in enumerate(idx, start=1):
        rel = f"{name}/{n:04d}.png"
        digit_to_image(images[i]).save(out / rel, format="PNG")
        rows.append((rel, int(labels[i])))
    csv_path = out / f"{name}.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["x:image", "y:label"])
        w.writerows(rows)
    return csv_path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    args = ap.parse_args(argv)
    images, labels, train_idx, test_idx = split_indices()
    for name, idx in (("train", train_idx), ("test", test_idx)):
        path = write_split(args.out, name, images, labels, idx)
        counts = np.bincount(labels[idx], minlength=10)
        print(f"{path}: {len(idx)} images, per digit {counts.tolist()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
