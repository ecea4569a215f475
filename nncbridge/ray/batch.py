"""``nncbridge predict --ray``: the chunk tasks of ``predict_csv`` on Ray actors, one per CPU of the cluster.

The output is the local run's, byte for byte: the same tasks format the same text, and this process
writes their results in order. Each actor gets the model as bytes through the object store and
sends the output files it makes back with its results; it reads the dataset's files itself.
"""
from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Executor, Future, InvalidStateError
from functools import partial
from typing import TYPE_CHECKING, Any

from ..errors import BackendError, NncBridgeError
from .cluster import connected

if TYPE_CHECKING:
    from ..dataset.batch import Summary
    from ..predictor import Predictor

# A worker that dies (killed, out of memory, node lost) is restarted and its task run again, this often.
RETRIES = 3


class RayWorker:
    """One Ray actor: runs the tasks it is sent, after setting itself up once with the first."""

    def __init__(self) -> None:
        self._ready = False

    def run(self, setup: list[Any], fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``; first ``initializer(*initargs)`` from ``setup``, ``[ObjectRef]`` of the two:
        so a restarted actor sets itself up again, from the object store."""
        if not self._ready:
            import ray

            initializer, initargs = ray.get(setup[0])
            initializer(*initargs)
            self._ready = True
        return fn(*args)

    def node_id(self) -> str:
        import ray

        return str(ray.get_runtime_context().get_node_id())


class ActorPool(Executor):
    """``count`` RayWorker actors, one CPU each, spread over the cluster's nodes; each task goes to
    the actor with the fewest unfinished ones. A task's failure is re-raised as the NncBridgeError it
    was; an actor lost for good breaks the pool (BrokenExecutor), as a dead process breaks a
    ProcessPoolExecutor."""

    def __init__(self, ray: Any, count: int, initializer: Callable[..., None], initargs: tuple[Any, ...]) -> None:
        self._ray = ray
        worker = ray.remote(num_cpus=1, max_restarts=RETRIES, max_task_retries=RETRIES,
                            scheduling_strategy="SPREAD")(RayWorker)
        # In the object store once, whatever the number of actors.
        self._setup = [ray.put((initializer, initargs))]
        self._actors = [worker.remote() for _ in range(count)]
        self._node_ids = [actor.node_id.remote() for actor in self._actors]
        self._unfinished = [0] * count
        self._tasks = [0] * count
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._lock:
            k = min(range(len(self._actors)), key=self._unfinished.__getitem__)
            self._unfinished[k] += 1
            self._tasks[k] += 1
        result: Future[Any] = Future()
        task = self._actors[k].run.remote(self._setup, partial(fn, **kwargs) if kwargs else fn, *args)
        task.future().add_done_callback(partial(self._finish, k, result))
        return result

    def _finish(self, k: int, result: Future[Any], done: Future[Any]) -> None:
        with self._lock:
            self._unfinished[k] -= 1
        try:
            try:
                result.set_result(done.result())
            except self._ray.exceptions.RayTaskError as e:
                cause = getattr(e, "cause", None)
                result.set_exception(cause if isinstance(cause, NncBridgeError) else BackendError(
                    f"a task failed on a Ray worker: {type(cause).__name__}: {cause}" if cause is not None else
                    f"a task failed on a Ray worker: {_first_line(e)}"))
            except self._ray.exceptions.RayError as e:  # the actor is gone after its retries
                result.set_exception(BrokenExecutor(f"Ray worker lost after {RETRIES} restarts: {_first_line(e)}"))
            except Exception as e:  # noqa: BLE001 - whatever it is, the waiting side must hear of it
                result.set_exception(BackendError(f"a Ray task failed: {type(e).__name__}: {e}"))
        except InvalidStateError:  # cancelled meanwhile: nobody waits for it
            pass

    def tasks_per_node(self) -> dict[str, int]:
        """How many tasks each node was sent (by node id), for the summary."""
        counts: Counter[str] = Counter()
        for node_id, tasks in zip(self._node_ids, self._tasks):
            if not tasks:
                continue
            try:
                counts[self._ray.get(node_id, timeout=10)] += tasks
            except self._ray.exceptions.RayError:  # an actor that never started
                counts["unknown"] += tasks
        return dict(counts)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        for actor in self._actors:
            self._ray.kill(actor, no_restart=True)


def _first_line(error: Exception) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def predict_csv(predictor: Predictor, dataset: str | os.PathLike[str], output: str | os.PathLike[str], *,
                address: str | None = None, workers: int | None = None, batch_size: int = 64,
                skip_errors: bool = False, progress: Callable[[int], None] | None = None,
                output_files: bool = True) -> Summary:
    """``nncbridge.dataset.batch.predict_csv`` with its chunks run on a Ray cluster (see
    ``cluster.connected`` for ``address``) by ``workers`` actors (default: one per CPU of the cluster).
    The dataset's files must be readable at the same paths on every node; the output is written here.
    The summary's ``nodes`` counts the tasks sent to each node."""
    from ..dataset.batch import predict_csv as predict_csv_here

    if workers is not None and workers < 1:
        raise BackendError(f"the number of Ray workers must be positive, got {workers}")
    with connected(address) as ray:
        count = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        pools: list[ActorPool] = []

        def start(initializer: Callable[..., None], initargs: tuple[Any, ...]) -> tuple[Executor, int]:
            pools.append(ActorPool(ray, count, initializer, initargs))
            return pools[0], count

        summary = predict_csv_here(predictor, dataset, output, batch_size=batch_size, skip_errors=skip_errors,
                                   progress=progress, output_files=output_files, worker_pool=start)
        summary.nodes = pools[0].tasks_per_node() if pools else {}
    return summary
