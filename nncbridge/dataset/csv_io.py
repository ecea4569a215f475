"""Console dataset CSVs: ``name:label`` headers, ``x__0`` vector columns, image cells; output CSVs
in the layout ``nnabla_cli forward`` writes."""
from __future__ import annotations

import csv
import io
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..errors import DatasetError
from .images import load_pixels

_VECTOR = re.compile(r"^(?P<name>.*)__(?P<index>\d+)$")
_MATRIX_BYTES_PER_VALUE = 64  # "-1.2345678901234567e-300," is 25: ample room for any way of writing one
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff"}
csv.field_size_limit(1 << 24)


@dataclass(frozen=True)
class Column:
    index: int
    header: str
    variable: str
    element: int | None
    label: str


def parse_header(header: Sequence[str]) -> list[Column]:
    columns = []
    for i, text in enumerate(header):
        name, _, label = text.partition(":")
        match = _VECTOR.match(name)
        if match:
            columns.append(Column(i, text, match["name"], int(match["index"]), label))
        else:
            columns.append(Column(i, text, name, None, label))
    return columns


def is_float(text: str) -> bool:
    if "/" in text or "\\" in text:  # paths, and never a number
        return False
    try:
        float(text)
        return True
    except ValueError:
        return False


class DatasetCsv:
    """A Console dataset CSV read as a stream of rows (the file is never held in memory)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.folder = self.path.parent
        try:
            self._file: IO[str] = open(self.path, encoding="utf-8-sig", newline="")
        except OSError as e:
            raise DatasetError(f"{self.path}: cannot open: {e.strerror}") from None
        self._reader = csv.reader(self._file)
        try:
            try:
                self.header = next(self._reader)
            except StopIteration:
                raise DatasetError(f"{self.path}: the file is empty (no header row)") from None
            except (UnicodeDecodeError, csv.Error) as e:
                raise DatasetError(f"{self.path}: header row: {_describe(e)}") from None
            self.columns = parse_header(self.header)
        except BaseException:
            self._file.close()  # no one else can: the object is not made
            raise

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> DatasetCsv:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """(line number, cells) for each non-empty data row."""
        while True:
            try:
                row = next(self._reader)
            except StopIteration:
                return
            except (UnicodeDecodeError, csv.Error) as e:
                raise DatasetError(f"{self.path}: line {self._reader.line_num}: {_describe(e)}") from None
            if row:
                yield self._reader.line_num, row

    def columns_for(self, data_name: str) -> list[Column]:
        scalar = [c for c in self.columns if c.variable == data_name and c.element is None]
        vector = sorted((c for c in self.columns if c.variable == data_name and c.element is not None),
                        key=lambda c: c.element or 0)
        return scalar or vector


def _describe(e: Exception) -> str:
    if isinstance(e, UnicodeDecodeError):
        return f"not UTF-8 text (invalid byte at offset {e.start})"
    return str(e)


def cell_to_array(cell: str, column: Column, folder: str | Path, shape: tuple[int, ...]) -> np.ndarray:
    """One CSV cell as a sample for an input of ``shape``: a number or a file of numbers (CSV matrix,
    ``.npy``) as float32 in that shape, an image as its pixels (``images.load_pixels``; integer-typed,
    so callers tell them apart by dtype and convert whole batches of them at once)."""
    ext = os.path.splitext(cell)[1].lower()  # no number has one of these endings
    # Datasets made on Windows separate folders with backslashes; nnabla reads them as slashes.
    relative = cell.replace("\\", "/")
    if ext in IMAGE_EXTENSIONS:
        return load_pixels(os.path.join(folder, relative), shape, what=f"column {column.header!r}")
    if is_float(cell):
        value = np.array([float(cell)], dtype=np.float32)
        if int(np.prod(shape)) != 1:
            raise DatasetError(f"column {column.header!r}: a single number cannot fill an input of shape {shape}")
        return value.reshape(shape)
    if ext in (".csv", ".npy"):
        return _values_file(Path(folder) / relative, ext, shape, f"column {column.header!r}")
    raise DatasetError(f"column {column.header!r}: {cell!r} is neither a number nor an image, CSV or .npy file")


def _values_file(path: Path, ext: str, shape: tuple[int, ...], what: str) -> np.ndarray:
    """A file of numbers (CSV matrix or ``.npy`` array) as float32 in ``shape``; its values are used
    as they are (no image scaling), as nnabla does."""
    needed = int(np.prod(shape))
    try:
        # Only regular files of a sensible size: a FIFO would block, a device never end.
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise DatasetError(f"{what}: {path} is not a regular file")
        if info.st_size > _MATRIX_BYTES_PER_VALUE * needed + 4096:
            raise DatasetError(f"{what}: {path} is {info.st_size} bytes, too large for "
                               f"the {needed} values of an input of shape {shape}")
        read_values = _npy_values if ext == ".npy" else _csv_values
        array = read_values(path, needed, shape, what)
    except FileNotFoundError:
        raise DatasetError(f"{what}: file not found: {path}") from None
    except (ValueError, OSError, EOFError, UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"{what}: cannot read {path}: {_describe(e)}") from None
    return array.astype(np.float32).reshape(shape)


def _csv_values(path: Path, needed: int, shape: tuple[int, ...], what: str) -> np.ndarray:
    with open(path, encoding="utf-8-sig", newline="") as f:
        values = [[float(v) for v in row] for row in csv.reader(f) if row]
    if len({len(row) for row in values}) > 1:
        raise DatasetError(f"{what}: {path} has rows of different lengths "
                           f"({', '.join(str(len(row)) for row in values[:5])}…)")
    array = np.array(values, dtype=np.float32)
    if array.size != needed:
        raise DatasetError(f"{what}: {path} holds {array.size} values, the input needs {shape}")
    return array


def _npy_values(path: Path, needed: int, shape: tuple[int, ...], what: str) -> np.ndarray:
    """The array of a ``.npy`` file, read only after its header shows plain numbers of the right
    count: never unpickled (nnabla would run an object array's code), never a huge allocation."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            stored, fortran_order, dtype = np.lib.format.read_array_header_1_0(f)
        else:  # 2.0 and 3.0 differ only in the header's length field and text encoding
            stored, fortran_order, dtype = np.lib.format.read_array_header_2_0(f)
        if dtype.kind not in "biuf":
            raise DatasetError(f"{what}: {path} holds {dtype} values, not numbers")
        count = int(np.prod(stored, dtype=object))
        if count != needed:
            raise DatasetError(f"{what}: {path} holds {count} values {tuple(stored)}, the input needs {shape}")
        size = count * dtype.itemsize
        data = f.read(size)
    if len(data) < size:
        raise DatasetError(f"{what}: {path} is cut short ({len(data)} of {size} data bytes)")
    return np.frombuffer(data, dtype).reshape(stored, order="F" if fortran_order else "C")


def output_layout(shape: tuple[int, ...], files: bool = True) -> tuple[str, int]:
    """How ``nnabla_cli forward`` writes an output of per-sample ``shape``: ``("columns", n)``, its
    values in n columns; ``("csv", 1)``, a matrix file per row; ``("png", n)``, n image files per row
    (one for a 1- or 3-channel map, else one per channel). ``files=False``, or an empty output: always
    in columns."""
    files = files and 0 not in shape
    if files and len(shape) == 2:
        return "csv", 1
    if files and len(shape) == 3:
        return "png", 1 if shape[0] in (1, 3) else shape[0]
    return "columns", int(np.prod(shape)) if shape else 1


def output_columns(name: str, shape: tuple[int, ...], files: bool = True) -> list[str]:
    """Column names for one output: ``y'`` for one cell, ``y'__0`` … otherwise (nnabla_cli forward)."""
    count = output_layout(shape, files)[1]
    return [name] if count == 1 else [f"{name}__{i}" for i in range(count)]


def carried_cell(cell: str, column: Column) -> str:
    """An input cell as ``nnabla_cli forward`` repeats it: numbers as given, paths as ``./path``."""
    if column.header.startswith("#") or is_float(cell):
        return cell
    full = os.path.join(".", cell).replace("\\", os.sep).replace("/", os.sep)
    return full.replace(os.sep + "." + os.sep, os.sep)


def format_values(values: np.ndarray) -> list[list[str]]:
    """Each row of a 2-D array as shortest round-trip float32 text, as numpy prints float32 scalars
    (``0.00019709874``): one conversion for the whole array."""
    return np.asarray(values, dtype=np.float32).astype(str).tolist()


_CSV_SPECIAL = re.compile('[,"\r\n\x00]')


def csv_text(rows: list[list[str]]) -> str:
    """``rows`` as ``csv.writer(f, lineterminator="\n")`` writes them. Rows of two or more cells,
    none of which needs quoting, are simply joined (4x faster); anything else goes to csv.writer."""
    if rows and min(map(len, rows)) > 1 and not _CSV_SPECIAL.search("".join(map("".join, rows))):
        lines = [",".join(row) for row in rows]
        lines.append("")
        return "\n".join(lines)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()
