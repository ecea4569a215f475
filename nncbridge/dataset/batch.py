"""Batch prediction over a Console dataset CSV: streamed in chunks, run on threads or worker processes.

Each chunk of rows (one batch) is decoded, predicted and formatted as output CSV text by one task;
the tasks run on a thread pool sharing the caller's Predictor, or on worker processes that each
rebuild it (decoding images is mostly Python and holds the GIL, so only processes use every core;
a task sent to a process holds several chunks, as sending it has a cost of its own). Results
are written in input order; at most a few chunks are in flight, so memory stays flat.
"""
from __future__ import annotations

import contextlib
import csv
import os
import shutil
import stat
import tempfile
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator
# concurrent.futures.process (and multiprocessing) load only when worker processes are asked for.
from concurrent.futures import BrokenExecutor, Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import BackendError, DatasetError, NncBridgeError, NncBridgeWarning
from ..util.files import atomic_output, move_into, staging_folder
from .csv_io import (Column, DatasetCsv, carried_cell, cell_to_array, csv_text, format_values, output_columns,
                     output_layout)
from .images import pixels_to_batch, pixels_to_input
from .output_files import write_output_files

if TYPE_CHECKING:
    from ..predictor import Predictor, TensorInfo

_Rows = list[tuple[int, int, list[str]]]  # (data row number from 0, CSV line number, cells)
_PROCESS_TASK_ROWS = 512

WorkerPool = Callable[[Callable[..., None], tuple[Any, ...]], tuple[Executor, int]]
"""Workers that may be on other machines (``nncbridge.ray`` makes them): given the function each worker
runs once before its first task and that function's arguments, the ``Executor`` over the workers and how
many tasks they run at once. Such workers get the model as bytes and send the output files they make
back with their results, so they need to see no file but the dataset's."""


@dataclass
class Summary:
    rows: int = 0
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    output: str = ""
    processes: int = 0
    nodes: dict[str, int] = field(default_factory=dict)  # tasks run per cluster node (nncbridge.ray)

    def as_dict(self) -> dict[str, Any]:
        summary = {"rows": self.rows, "skipped": len(self.skipped), "seconds": round(self.seconds, 3),
                   "rows_per_second": round(self.rows / self.seconds, 1) if self.seconds > 0 else None,
                   "output": self.output, "processes": self.processes}
        return summary | ({"nodes": self.nodes} if self.nodes else {})


@dataclass(frozen=True)
class _Plan:
    """How rows of one dataset become output text; picklable, so worker processes get it once."""

    dataset: str
    folder: str
    columns: tuple[Column, ...]
    bindings: tuple[tuple[TensorInfo, tuple[Column, ...]], ...]
    normalize: bool
    skip_errors: bool
    batch_size: int
    # Per output, how nnabla_cli forward writes it (csv_io.output_layout); files go to output_folder.
    output_layouts: tuple[tuple[str, int], ...]
    output_folder: str
    # Workers write output files in a folder of their own and return them with their results.
    files_travel: bool = False
    # Per binding, its column furthest right: a row must reach it (vector columns may be in any order).
    rightmost: tuple[Column, ...] = field(init=False)
    writes_files: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rightmost",
                           tuple(max(columns, key=lambda c: c.index) for _, columns in self.bindings))
        object.__setattr__(self, "writes_files", any(kind != "columns" for kind, _ in self.output_layouts))


@dataclass
class _ChunkResult:
    text: str
    rows: int
    errors: list[str]
    files: list[tuple[str, bytes]] = field(default_factory=list)  # (path in the output folder, content)


def predict_csv(predictor: Predictor, dataset: str | os.PathLike[str], output: str | os.PathLike[str],
                batch_size: int = 64, workers: int | None = None, skip_errors: bool = False,
                progress: Callable[[int], None] | None = None, processes: int = 0,
                output_files: bool = True, worker_pool: WorkerPool | None = None) -> Summary:
    """Run ``predictor`` on every row of a Console dataset CSV; write Console's output CSV atomically.
    Outputs that are matrices or (C, H, W) maps per sample become files beside ``output``, named in
    its cells, as ``nnabla_cli forward`` writes them; they appear only if the run succeeds.
    ``output_files=False`` writes their values in columns instead.

    ``workers``: threads sharing ``predictor`` (default: CPU count, at most 8). ``processes``: if
    above 0, that many worker processes instead, each rebuilding the predictor from its source with
    one onnxruntime thread (start-up costs about half a second of CPU each), while this process
    runs chunks with ``predictor`` whenever they are all busy: so give ``predictor`` one thread too,
    and use one process fewer than CPUs. Worth it for big datasets of images. A script that uses
    processes must guard its entry point with ``if __name__ == "__main__":``.
    ``worker_pool``: run the chunks on those workers instead (``processes`` and ``workers`` are then
    unused, and this process predicts nothing itself).
    """
    if batch_size < 1:
        raise DatasetError(f"batch size must be positive, got {batch_size}")
    if processes < 0:
        raise DatasetError(f"processes must be 0 or more, got {processes}")
    start = time.perf_counter()
    summary = Summary(output=os.fspath(output), processes=processes)
    with DatasetCsv(dataset) as table:
        folder = os.path.dirname(os.path.abspath(output))
        plan = _Plan(str(table.path), str(table.folder), tuple(table.columns), _bind(table, predictor),
                     predictor.normalize_images, skip_errors, batch_size,
                     tuple(output_layout(o.shape, output_files) for o in predictor.outputs), folder,
                     files_travel=worker_pool is not None)
        # Matrix and map outputs go to files beside the CSV: staged, and moved in only on success.
        with staging_folder(folder) if plan.writes_files else contextlib.nullcontext(folder) as files_folder:
            plan = replace(plan, output_folder=files_folder)
            header = list(table.header)
            for o in predictor.outputs:
                header += output_columns(o.data_name or o.name, o.shape, output_files)
            with atomic_output(output, "w", encoding="utf-8", newline="") as f:
                csv.writer(f, lineterminator="\n").writerow(header)
                _write_rows(predictor, plan, table, f, summary, workers, processes, progress, worker_pool)
                if plan.writes_files:
                    try:
                        move_into(files_folder, folder)
                    except OSError as e:
                        raise DatasetError(f"cannot move the output files into {folder}: {e}") from None
    summary.seconds = time.perf_counter() - start
    return summary


def _write_rows(predictor: Predictor, plan: _Plan, table: DatasetCsv, f: Any, summary: Summary,
                workers: int | None, processes: int, progress: Callable[[int], None] | None,
                worker_pool: WorkerPool | None) -> None:
    if worker_pool is not None:
        pool, parallel = worker_pool(_start_worker, (predictor._rebuild_arguments(True, portable=True), plan))
        task: Callable[[_Rows], _ChunkResult] = _run_task_in_worker
        summary.processes = parallel
    else:
        pool, task, parallel = _pool(predictor, plan, workers, processes)
    # With local worker processes, this process runs chunks too while they are all busy.
    local_task = partial(_run_task, predictor, plan) if processes and worker_pool is None else None
    try:
        # A couple of tasks ahead of every worker keeps them busy while memory stays flat.
        # A task sent to a process costs ~0.5 ms in this one, so those get several batches.
        batches_per_task = max(1, _PROCESS_TASK_ROWS // plan.batch_size) if processes or worker_pool else 1
        numbered = ((i, line, cells) for i, (line, cells) in enumerate(table.rows()))
        chunks = _chunks(numbered, plan.batch_size * batches_per_task)
        for result in _in_order(pool, task, chunks, 2 * parallel + 1, local_task):
            if result.errors and not plan.skip_errors:
                raise DatasetError(result.errors[0])
            summary.skipped += result.errors
            _write_files(plan.output_folder, result.files)
            f.write(result.text)
            summary.rows += result.rows
            if progress is not None:
                progress(result.rows + len(result.errors))
    except BrokenExecutor as e:  # a worker process died (threads have no initializer)
        raise BackendError(f"a worker process stopped unexpectedly ({e})") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _write_files(folder: str, files: list[tuple[str, bytes]]) -> None:
    """Output files a worker made elsewhere, written where it would have written them here."""
    for name, content in files:
        path = os.path.join(folder, name)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(content)
        except OSError as e:
            raise DatasetError(f"cannot write an output file in {folder}: {e}") from None


def _chunks(rows: Iterator[tuple[int, int, list[str]]], size: int) -> Iterator[_Rows]:
    while True:
        chunk = list(islice(rows, size))
        if not chunk:
            return
        yield chunk


def _pool(predictor: Predictor, plan: _Plan, workers: int | None,
          processes: int) -> tuple[Executor, Callable[[_Rows], _ChunkResult], int]:
    """The pool, the task it runs per chunk, and how many chunks it runs at once."""
    if processes > 0:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: the parent already runs onnxruntime's threads.
        pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start_process_worker,
                                   initargs=(os.getpid(), predictor._rebuild_arguments(single_threaded=True), plan))
        return pool, _run_task_in_worker, processes
    threads = workers or min(8, os.cpu_count() or 1)
    return (ThreadPoolExecutor(max_workers=threads, thread_name_prefix="nncbridge-predict"),
            partial(_run_task, predictor, plan), threads)


def _in_order(pool: Executor, task: Callable[[_Rows], _ChunkResult], chunks: Iterator[_Rows], depth: int,
              local_task: Callable[[_Rows], _ChunkResult] | None = None) -> Iterator[_ChunkResult]:
    """Results of ``task`` over ``chunks`` in order, with at most ``depth`` chunks in the pool.

    With ``local_task``, this process runs a chunk itself whenever the pool is full and its oldest
    chunk is not done, instead of waiting (so it works while worker processes start, too); at most
    ``_LOCAL_AHEAD`` such results wait for an older chunk, to keep memory bounded.
    """
    pending: deque[Future[_ChunkResult] | _ChunkResult] = deque()
    most_pending = depth if local_task is None else depth + _LOCAL_AHEAD
    try:
        for chunk in chunks:
            while pending and _is_done(pending[0]):
                yield _result_of(pending.popleft())
            while len(pending) >= most_pending:
                yield _result_of(pending.popleft())
            if local_task is None or sum(isinstance(p, Future) and not p.done() for p in pending) < depth:
                pending.append(pool.submit(task, chunk))
            else:
                pending.append(local_task(chunk))
        while pending:
            yield _result_of(pending.popleft())
    finally:
        for f in pending:
            if isinstance(f, Future):
                f.cancel()


_LOCAL_AHEAD = 16


def _is_done(item: Future[_ChunkResult] | _ChunkResult) -> bool:
    return not isinstance(item, Future) or item.done()


def _result_of(item: Future[_ChunkResult] | _ChunkResult) -> _ChunkResult:
    return item.result() if isinstance(item, Future) else item


_worker: tuple[Predictor, _Plan] | None = None


def _start_worker(rebuild: tuple[Any, ...], plan: _Plan) -> None:
    global _worker
    from ..predictor import _rebuild

    with warnings.catch_warnings():  # the caller's process has shown the model's warnings once
        warnings.simplefilter("ignore", NncBridgeWarning)
        _worker = (_rebuild(*rebuild), plan)


def _start_process_worker(parent: int, rebuild: tuple[Any, ...], plan: _Plan) -> None:
    """``_start_worker`` in a local worker process that ends itself once ``parent`` is gone: a parent
    killed with SIGKILL cannot shut its pool down, and the worker would wait for tasks forever."""
    import threading

    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True, name="nncbridge-parent-watch").start()
    _start_worker(rebuild, plan)


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _run_task_in_worker(rows: _Rows) -> _ChunkResult:
    assert _worker is not None, "worker process was not initialized"
    predictor, plan = _worker
    if not (plan.files_travel and plan.writes_files):
        return _run_task(predictor, plan, rows)
    folder = tempfile.mkdtemp(prefix="nncbridge-worker-")
    try:
        result = _run_task(predictor, replace(plan, output_folder=folder), rows)
        result.files = _collect_files(folder)
        return result
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _collect_files(folder: str) -> list[tuple[str, bytes]]:
    files = []
    for parent, _, names in os.walk(folder):
        for name in sorted(names):
            path = os.path.join(parent, name)
            with open(path, "rb") as f:
                files.append((os.path.relpath(path, folder), f.read()))
    return files


def _run_task(predictor: Predictor, plan: _Plan, rows: _Rows) -> _ChunkResult:
    """``_run_chunk`` over ``rows`` in batches of the plan's batch size, as one result."""
    texts: list[str] = []
    done = 0
    errors: list[str] = []
    for start in range(0, len(rows), plan.batch_size):
        part = _run_chunk(predictor, plan, rows[start:start + plan.batch_size])
        texts.append(part.text)
        done += part.rows
        errors += part.errors
        if part.errors and not plan.skip_errors:
            break
    return _ChunkResult("".join(texts), done, errors)


def _run_chunk(predictor: Predictor, plan: _Plan, rows: _Rows) -> _ChunkResult:
    """Decode, predict and format one chunk. Bad rows are reported (the first only, unless skipped)."""
    good: list[list[str]] = []
    numbers: list[int] = []
    per_input: list[list[np.ndarray]] = [[] for _ in plan.bindings]
    errors: list[str] = []
    for number, line, cells in rows:
        arrays = _prepare_row(plan, line, cells)
        if isinstance(arrays, str):
            errors.append(arrays)
            if not plan.skip_errors:
                return _ChunkResult("", 0, errors)
            continue
        good.append(cells)
        numbers.append(number)
        for k, array in enumerate(arrays):
            per_input[k].append(array)
    if not good:
        return _ChunkResult("", 0, errors)
    results = predictor.run_batch({info.name: _stack_samples(arrays, info.shape, plan.normalize)
                                   for (info, _), arrays in zip(plan.bindings, per_input)})
    if plan.writes_files:
        values = _output_cells(plan, numbers, results)
    else:
        values = format_values(np.concatenate([r.reshape(len(good), -1) for r in results], axis=1))
    text = csv_text([[carried_cell(c, col) for c, col in zip(cells, plan.columns)] + row_values
                     for cells, row_values in zip(good, values)])
    return _ChunkResult(text, len(good), errors)


def _output_cells(plan: _Plan, numbers: list[int], results: list[np.ndarray]) -> list[list[str]]:
    """Each row's output cells when some outputs are written as files (matrices, maps)."""
    per_output = []
    for k, (result, (kind, count)) in enumerate(zip(results, plan.output_layouts)):
        if kind == "columns":
            per_output.append(format_values(result.reshape(len(numbers), -1)))
        else:
            per_output.append([write_output_files(plan.output_folder, k, number, sample, kind, count)
                               for number, sample in zip(numbers, result)])
    return [[cell for cells in row for cell in cells] for row in zip(*per_output)]


def _stack_samples(samples: list[np.ndarray], shape: tuple[int, ...], normalize: bool) -> np.ndarray:
    """One input's batch from ``cell_to_array``'s samples: float32 ones as they are, image pixels
    (integer-typed) scaled; a chunk of 8-bit images is scaled in one step."""
    if all(s.dtype == np.uint8 for s in samples):
        return pixels_to_batch(np.stack(samples), shape, normalize)
    return np.stack([s if s.dtype == np.float32 else pixels_to_input(s, shape, normalize) for s in samples])


def _bind(table: DatasetCsv, predictor: Predictor) -> tuple[tuple[TensorInfo, tuple[Column, ...]], ...]:
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
        bindings.append((info, tuple(columns)))
    return tuple(bindings)


def _prepare_row(plan: _Plan, line: int, cells: list[str]) -> list[np.ndarray] | str:
    """The row's array for each input, or the message saying why it cannot be used."""
    arrays = []
    for (info, columns), rightmost in zip(plan.bindings, plan.rightmost):
        column = columns[0]
        try:
            if len(cells) <= rightmost.index:
                raise DatasetError(f"column {rightmost.header!r}: the row has only {len(cells)} cells")
            if len(columns) == 1:
                arrays.append(cell_to_array(cells[column.index].strip(), column, plan.folder, info.shape))
            else:
                values = []
                for column in columns:
                    try:
                        values.append(float(cells[column.index]))
                    except ValueError:
                        raise DatasetError(f"column {column.header!r}: {cells[column.index]!r} is not a number") from None
                arrays.append(np.asarray(values, dtype=np.float32).reshape(info.shape))
        except NncBridgeError as e:
            return f"{plan.dataset}: line {line}: {e}"
    return arrays


def count_rows(path: str | os.PathLike[str]) -> int | None:
    """Data rows in a CSV (for a progress bar's ETA), counted quickly in binary; None if unreadable,
    or if it is not a regular file (a pipe can be read only once: by the prediction)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        with open(Path(path), "rb") as f:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        return max(lines - 1, 0)
    except OSError:
        return None
