"""Write the handwriting page's gallery: the 1,500 training digits as points of the Siamese map.

    python sample_projects/handwriting/make_gallery.py      # rewrites page/gallery.json + page/gallery.png

The page draws the map and finds a drawn digit's nearest neighbours from two committed files,
so the app needs neither scikit-learn nor the (uncommitted) training PNGs:

- ``page/gallery.json``: ``{"model", "count", "thumbnail": {"file", "size", "columns"},
  "labels": [1500 digits], "points": [[x, y], ...]}``, the points being ``siamese.nnp``'s
  outputs for the training digits, computed here with ``nncbridge`` and rounded to 5 decimals;
- ``page/gallery.png``: the same digits as thumbnails, 50 per row, in the same order: the 20x20
  box at (4, 4) of each 28x28 image, where the recipe puts the digit (the rest is black).

The digits are the training split of ``../make_digit_pngs.py`` (scikit-learn's ``load_digits``,
the same recipe and split as ``../digits/data/train.csv``), made in memory. Needs scikit-learn.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from make_digit_pngs import digit_to_image, split_indices  # noqa: E402

MODEL = HERE.parent / "siamese" / "siamese.nnp"
COLUMNS = 50
SIZE = 20
BOX = (4, 4, 24, 24)  # where make_digit_pngs pastes the 20x20 digit
DECIMALS = 5


def gallery_images() -> tuple[list[Image.Image], np.ndarray]:
    """The training split's digits, in the order of ``train.csv``, and their labels."""
    images, labels, train_idx, _ = split_indices()
    return [digit_to_image(images[i]) for i in train_idx], labels[train_idx]


def write_gallery(out: Path, model: Path = MODEL) -> tuple[Path, Path]:
    import nncbridge

    digits, labels = gallery_images()
    points = np.asarray(nncbridge.load(model).predict(digits), dtype=np.float64)
    sprite = Image.new("L", (COLUMNS * SIZE, -(-len(digits) // COLUMNS) * SIZE), 0)
    for n, digit in enumerate(digits):
        sprite.paste(digit.crop(BOX), ((n % COLUMNS) * SIZE, (n // COLUMNS) * SIZE))
    out.mkdir(parents=True, exist_ok=True)
    sprite_path, json_path = out / "gallery.png", out / "gallery.json"
    sprite.save(sprite_path, format="PNG", optimize=True)
    gallery = {
        "model": model.name,
        "count": len(digits),
        "thumbnail": {"file": sprite_path.name, "size": SIZE, "columns": COLUMNS},
        "labels": [int(label) for label in labels],
        "points": [[round(float(x), DECIMALS), round(float(y), DECIMALS)] for x, y in points],
    }
    json_path.write_text(json.dumps(gallery, separators=(",", ":")) + "\n", encoding="utf-8")
    return json_path, sprite_path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Write the handwriting page's gallery (Siamese map of the training digits).")
    ap.add_argument("--out", type=Path, default=HERE / "page", help="folder (default: page/ next to this script)")
    ap.add_argument("--model", type=Path, default=MODEL)
    args = ap.parse_args(argv)
    for path in write_gallery(args.out, args.model):
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
