"""Batch prediction over a Console dataset CSV, streaming, with decoding overlapped with inference."""
from __future__ import annotations

import csv
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DatasetError, NncBridgeError
from ..util.files import atomic_output
from .csv_io import Column, DatasetCsv, carried_cell, cell_to_array, format_values, output_columns
from .images import image_to_array

if TYPE_CHECKING:
    from ..predictor import Predictor, TensorInfo


@dataclass
class Summary:
    rows: int = 0
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    output: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "skipped": len(self.skipped), "seconds": round(self.seconds, 3),
                "rows_per_second": round(self.rows / self.seconds, 1) if self.seconds > 0 else None,
                "output": self.output}


_Prepared = tuple[int, list[str], "list[np.ndarray] | None", "str | None"]


def predict_csv(predictor: Predictor, dataset: str | os.PathLike[str], output: str | os.PathLike[str],
                batch_size: int = 64, workers: int | None = None, skip_errors: bool = False,
                progress: Callable[[int], None] | None = None) -> Summary:
    """Run ``predictor`` on every row of a Console dataset CSV; write Console's output CSV atomically."""
    if batch_size < 1:
        raise DatasetError(f"batch size must be positive, got {batch_size}")
    start = time.perf_counter()
    summary = Summary(output=os.fspath(output))
    workers = workers or min(8, os.cpu_count() or 1)
    with DatasetCsv(dataset) as table:
        bindings = _bind(table, predictor)
        header = list(table.header)
        for o in predictor.outputs:
            header += output_columns(o.data_name or o.name, o.shape)
        prepare = partial(_prepare_row, bindings, table, predictor)
        with atomic_output(output, "w", encoding="utf-8", newline="") as f, \
                ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nncbridge-decode") as pool:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(header)
            for chunk in _prefetched(pool, table.rows(), prepare, batch_size):
                good = []
                for line, cells, arrays, error in chunk:
                    if error is None:
                        good.append((cells, arrays))
                    elif skip_errors:
                        summary.skipped.append(error)
                    else:
                        raise DatasetError(error)
                if good:
                    feeds = {info.name: np.stack([arrays[k] for _, arrays in good])
                             for k, info in enumerate(predictor.inputs)}
                    results = predictor.run_batch(feeds)
                    flat = [r.reshape(len(good), -1) for r in results]
                    for i, (cells, _) in enumerate(good):
                        values: list[str] = []
                        for r in flat:
                            values += format_values(r[i])
                        writer.writerow([carried_cell(c, col) for c, col in zip(cells, table.columns)] + values)
                summary.rows += len(good)
                if progress is not None:
                    progress(len(chunk))
    summary.seconds = time.perf_counter() - start
    return summary


def _bind(table: DatasetCsv, predictor: Predictor) -> list[tuple[TensorInfo, list[Column]]]:
    bindings = []
    for info in predictor.inputs:
        columns = table.columns_for(info.data_name) or table.columns_for(info.name)
        if not columns:
            raise DatasetError(
                f"{table.path}: no column for input {info.name!r} (data name {info.data_name!r}); "
                f"the header has: {', '.join(table.header)}")
        if len(columns) > 1 and len(columns) != int(np.prod(info.shape)):
            raise DatasetError(f"{table.path}: {len(columns)} columns {columns[0].header!r}… for input "
                               f"{info.name!r}, which needs {int(np.prod(info.shape))} values {info.shape}")
        bindings.append((info, columns))
    return bindings


def _prepare_row(bindings: list[tuple[TensorInfo, list[Column]]], table: DatasetCsv, predictor: Predictor,
                 item: tuple[int, list[str]]) -> _Prepared:
    line, cells = item
    arrays = []
    for info, columns in bindings:
        column = columns[0]
        try:
            if len(cells) <= columns[-1].index:
                raise DatasetError(f"column {columns[-1].header!r}: the row has only {len(cells)} cells")
            if len(columns) == 1:
                load = partial(image_to_array, shape=info.shape, normalize=predictor.normalize_images,
                               what=f"column {column.header!r}")
                arrays.append(cell_to_array(cells[column.index].strip(), column, table.folder, info.shape,
                                            predictor.normalize_images, load))
            else:
                values = []
                for column in columns:
                    try:
                        values.append(float(cells[column.index]))
                    except ValueError:
                        raise DatasetError(f"column {column.header!r}: {cells[column.index]!r} is not a number") from None
                arrays.append(np.asarray(values, dtype=np.float32).reshape(info.shape))
        except NncBridgeError as e:
            return line, cells, None, f"{table.path}: line {line}: {e}"
    return line, cells, arrays, None


def _prefetched(pool: ThreadPoolExecutor, rows: Iterator[tuple[int, list[str]]],
                prepare: Callable[[tuple[int, list[str]]], _Prepared], batch_size: int) -> Iterator[list[_Prepared]]:
    """Chunks of prepared rows; the next chunks decode while the caller runs the current one.

    Work is handed out in slices of a chunk, not row by row: one future per row cost more than
    decoding a small image."""
    pending: deque[list[Future[list[_Prepared]]]] = deque()
    workers = max(1, getattr(pool, "_max_workers", 1))
    exhausted = False

    def prepare_all(items: list[tuple[int, list[str]]]) -> list[_Prepared]:
        return [prepare(item) for item in items]

    def submit_chunk() -> bool:
        items = list(islice(rows, batch_size))
        if items:
            step = -(-len(items) // workers)
            pending.append([pool.submit(prepare_all, items[i:i + step]) for i in range(0, len(items), step)])
        return len(items) == batch_size

    try:
        while True:
            while not exhausted and len(pending) < 3:
                exhausted = not submit_chunk()
            if not pending:
                return
            yield [prepared for f in pending.popleft() for prepared in f.result()]
    finally:
        for futures in pending:
            for f in futures:
                f.cancel()


def count_rows(path: str | os.PathLike[str]) -> int | None:
    """Data rows in a CSV (for a progress bar's ETA), counted quickly in binary; None if unreadable."""
    try:
        with open(Path(path), "rb") as f:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        return max(lines - 1, 0)
    except OSError:
        return None
