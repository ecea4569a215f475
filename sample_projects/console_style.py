"""Helpers shared by the two sample ``train.py`` scripts (nnabla needed): Console-style names,
image loading the way Console feeds images, and saving a training result the way Console does.

Console names every layer after its type, numbering repeats ``Convolution``, ``Convolution_2``,
...; the layer's output variable carries the layer's name and its parameters live under the
layer's name as parameter scope (``Convolution/conv/W``, ``Affine/affine/b``). Loss layers take
their label from an input variable called ``<loss layer>_T`` (``CategoricalCrossEntropy_T``).

``nnabla.utils.save.save(path, contents)`` names a variable after the key it has in the
network's ``names``/``outputs`` dicts and every other variable ``@<network>/<Type>_out``; it
names every *function* ``@<network>/<Type>`` (``@Main/Convolution``, ``@Main/Convolution_2``)
whatever you pass. So :func:`save_console_nnp` runs exactly what ``save`` runs --
``create_proto(contents)`` then nnabla's own file savers -- but in between renames each function
after its (single) output variable, as Console does, and checks that no ``@...`` name is left.
"""
from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
DIGITS_DATA = HERE / "digits" / "data"


class LayerNames:
    """Console-style unique layer names (``ReLU``, ``ReLU_2``, ...) and the name -> variable map
    for one network (``contents['networks'][i]['names']``)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.variables: dict = {}

    def next(self, layer_type: str) -> str:
        n = self.counts.get(layer_type, 0) + 1
        self.counts[layer_type] = n
        return layer_type if n == 1 else f"{layer_type}_{n}"

    def add(self, name: str, variable):
        if name in self.variables:
            raise ValueError(f"duplicate layer name {name}")
        self.variables[name] = variable
        return variable

    def __call__(self, layer_type: str, variable):
        """Name ``variable`` as the next layer of ``layer_type``; returns the variable."""
        return self.add(self.next(layer_type), variable)


def ensure_digit_pngs() -> None:
    """Run make_digit_pngs.py if the (uncommitted) training split is missing."""
    if not (DIGITS_DATA / "train.csv").exists():
        sys.path.insert(0, str(HERE))
        import make_digit_pngs

        make_digit_pngs.main([])


def read_dataset_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    """A Console dataset CSV -> (header, rows). Image cells are relative to the CSV's folder."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def load_image(path: Path) -> np.ndarray:
    """One PNG the way Console feeds a (1, 28, 28) input: 8-bit grayscale / 255.0, float32."""
    with Image.open(path) as im:
        pixels = np.asarray(im.convert("L"), dtype=np.uint8)
    return (pixels.astype(np.float32) / 255.0)[None]


def load_image_column(csv_path: Path, column: int = 0) -> np.ndarray:
    _, rows = read_dataset_csv(csv_path)
    return np.stack([load_image(csv_path.parent / r[column]) for r in rows])


def load_label_column(csv_path: Path, column: int = 1) -> np.ndarray:
    _, rows = read_dataset_csv(csv_path)
    return np.array([[int(r[column])] for r in rows], dtype=np.int32)


def save_console_nnp(path: Path, contents: dict) -> None:
    """``nnabla.utils.save.save(path, contents, parameter_format='.protobuf')`` with Console's
    function names (see the module docstring). Writes network.nntxt + parameter.protobuf."""
    from nnabla.utils.get_file_handle import FileHandlerContext, get_default_file_savers, save_files
    from nnabla.utils.save import create_proto

    proto = create_proto(contents, include_params=False, variable_batch_size=True)
    for net in proto.network:
        for v in net.variable:
            if v.name.startswith("@"):
                raise ValueError(f"network {net.name}: variable {v.name} has no Console name")
        for fn in net.function:
            if len(fn.output) != 1:
                raise ValueError(f"network {net.name}: function {fn.name} has {len(fn.output)} outputs")
            fn.name = fn.output[0]
    ctx = FileHandlerContext()
    ctx.proto = proto
    ctx.parameters = None  # the current global parameters, as save() does
    save_files(ctx, get_default_file_savers(parameter_format=".protobuf"), str(path), ".nnp")


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
