"""Adaptive batching: concurrent requests to one model become one ``Predictor.run_batch`` call.

Each model has one queue and one worker task on the event loop. The worker takes the first waiting
request and whatever else is queued (up to ``max_batch_size`` rows). If the batch is not full and
other requests for the model are still arriving (their bodies being read or decoded), it waits for
them, at most ``max_delay`` seconds after the first. So a lone client never waits, and under load the
batches fill while the previous one runs. The model runs on one thread of its own, so batches of one
model never compete with each other for the CPU; batches expected to take well under a millisecond
run right on the event loop instead.
"""
from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..predictor import Predictor

Outputs = list[np.ndarray]
# A batch expected to take less than this runs on the event loop's own thread: handing it to the
# model's thread and back would cost more (two thread wake-ups, each a scheduler delay on a busy machine).
INLINE_BELOW_SECONDS = 0.0005


@dataclass
class _Request:
    feeds: dict[str, np.ndarray]
    rows: int
    future: asyncio.Future[Outputs]
    queued_at: float = field(default_factory=time.perf_counter)


class Batcher:
    """Gathers requests for one predictor into batches; ``submit`` returns the request's own rows."""

    def __init__(self, predictor: Predictor, max_batch_size: int, max_delay: float,
                 on_batch: Callable[[int], None] | None = None) -> None:
        self.predictor = predictor
        self.max_batch_size = max(1, int(max_batch_size))
        self.max_delay = max(0.0, float(max_delay))
        self._on_batch = on_batch
        self._queue: collections.deque[_Request] = collections.deque()
        self._arriving = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._seconds_per_row: float | None = None  # running average of the model's time per sample

    def __getstate__(self) -> dict[str, Any]:
        # A copy (in another process) starts with an empty queue; its worker starts on first use.
        return {"predictor": self.predictor, "max_batch_size": self.max_batch_size, "max_delay": self.max_delay,
                "on_batch": self._on_batch}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["predictor"], state["max_batch_size"], state["max_delay"], state["on_batch"])  # type: ignore[misc]

    @contextmanager
    def arriving(self) -> Iterator[None]:
        """Marks a request for this model as on its way (body being read or decoded): a batch that
        is not full waits for it (up to ``max_delay``) instead of leaving without it."""
        self._arriving += 1
        try:
            yield
        finally:
            self._arriving -= 1

    async def submit(self, feeds: dict[str, np.ndarray]) -> Outputs:
        """Run ``feeds`` (float32 batches keyed by input variable name) in some batch; returns
        the outputs for these rows only, in the executor's order."""
        self._start()
        assert self._loop is not None and self._wakeup is not None
        rows = next(iter(feeds.values())).shape[0]
        request = _Request(feeds, rows, self._loop.create_future())
        self._queue.append(request)
        self._wakeup.set()
        return await request.future

    def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None
        if self._thread is not None:
            self._thread.shutdown(wait=False)
            self._thread = None

    # -- the worker -------------------------------------------------------------------------------
    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is loop and self._worker is not None and not self._worker.done():
            return
        # First use, or a new event loop (an application may run the app on several in turn).
        self._loop = loop
        self._wakeup = asyncio.Event()
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="nncbridge-model")
        self._worker = loop.create_task(self._work())

    async def _work(self) -> None:
        assert self._wakeup is not None
        while True:
            while not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            batch = await self._gather()
            if batch:
                await self._run(batch)

    async def _gather(self) -> list[_Request]:
        assert self._wakeup is not None
        batch: list[_Request] = []
        rows = 0
        deadline = None
        while True:
            while self._queue and (not batch or rows + self._queue[0].rows <= self.max_batch_size):
                request = self._queue.popleft()
                if request.future.done():  # the client went away
                    continue
                batch.append(request)
                rows += request.rows
            if not batch:
                return batch
            if rows >= self.max_batch_size or self._queue or self._arriving <= 0 or self.max_delay <= 0:
                return batch
            if deadline is None:
                deadline = batch[0].queued_at + self.max_delay
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return batch
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    async def _run(self, batch: list[_Request]) -> None:
        assert self._loop is not None
        rows = sum(request.rows for request in batch)
        try:
            if self._seconds_per_row is not None and self._seconds_per_row * rows < INLINE_BELOW_SECONDS:
                per_request = self._predict(batch, rows)
            else:
                per_request = await self._loop.run_in_executor(self._thread, self._predict, batch, rows)
        except Exception as error:
            if len(batch) > 1:
                # Some request's rows made the whole batch fail: run each alone, so only that one fails.
                for request in batch:
                    await self._run([request])
            elif not batch[0].future.done():
                batch[0].future.set_exception(error)
            return
        for request, outputs in zip(batch, per_request):
            if not request.future.done():
                request.future.set_result(outputs)

    def _predict(self, batch: list[_Request], rows: int) -> list[Outputs]:
        if self._on_batch is not None:
            self._on_batch(rows)
        started = time.perf_counter()
        if len(batch) == 1:
            outputs = self.predictor.run_batch(batch[0].feeds)
        else:
            feeds = {name: np.concatenate([request.feeds[name] for request in batch]) for name in batch[0].feeds}
            outputs = self.predictor.run_batch(feeds)
        per_row = (time.perf_counter() - started) / max(rows, 1)
        self._seconds_per_row = per_row if self._seconds_per_row is None else 0.8 * self._seconds_per_row + 0.2 * per_row
        if len(batch) == 1:
            return [outputs]
        per_request: list[Outputs] = []
        start = 0
        for request in batch:
            per_request.append([output[start:start + request.rows] for output in outputs])
            start += request.rows
        return per_request
