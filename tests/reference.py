"""Reference outputs computed by nnabla 1.39 (`nnabla_cli forward`), as listed in
tests/data/console-exports/README.md (copied from ../shared). Parsed from that README so the numbers have one source."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np


def _table_rows(text: str, after: str) -> list[list[str]]:
    block = text[text.index(after):]
    rows = []
    for line in block.splitlines()[1:]:
        if line.startswith("| 0") and ".png" in line:
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif rows and not line.startswith("|"):
            break
    return rows


def image_references(exports: Path) -> dict[str, dict[str, np.ndarray]]:
    """{model file name: {image name: y' values}} for the MNIST exports."""
    text = (exports / "README.md").read_text(encoding="utf-8")
    refs: dict[str, dict[str, np.ndarray]] = {}
    for model in ("binary-4or9-2018.nnp", "lenet-10class-2017.nnp"):
        rows = _table_rows(text, f"{model} → output CSV header")
        refs[model] = {r[0]: np.array([float(v) for v in r[1].split(",")], dtype=np.float64) for r in rows}
    return refs


def sin_references(exports: Path) -> list[tuple[float, float, float]]:
    """First (x, y, y') rows of nnabla_cli forward on sin_Validation.csv."""
    text = (exports / "README.md").read_text(encoding="utf-8")
    triples = re.findall(r"`([-\d.e]+),([-\d.e]+),([-\d.e]+)`", text[text.index("sin_Validation.csv` writes"):])
    return [tuple(float(v) for v in t) for t in triples]  # type: ignore[misc]
