"""Batch inference on Ray Data: a model's outputs added to a Dataset as columns."""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from .cluster import import_ray

if TYPE_CHECKING:
    from ..predictor import ModelSource, Predictor


class BatchPredictor:
    """The callable class ``map_batches`` runs: each actor builds the predictor once, from the model's
    bytes in the object store, and adds the outputs of every batch it is given as columns."""

    def __init__(self, model: list[Any], executor: str, backend: str, options: dict[str, Any],
                 inputs: dict[str, str], outputs: dict[str, str], root: str | None, resize: bool) -> None:
        import ray

        from ..predictor import Predictor

        self._predictor = Predictor(ray.get(model[0]), executor=executor, backend=backend, **options)
        self._inputs = inputs  # input variable -> column
        self._outputs = outputs  # output variable -> column
        self._root = root
        self._resize = resize

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = {variable: [self._sample(value) for value in batch[column]]
                 for variable, column in self._inputs.items()}
        results = self._predictor.predict(feeds, resize=self._resize)
        if not isinstance(results, dict):
            results = {self._predictor.outputs[0].name: results}
        return {**batch, **{column: results[variable] for variable, column in self._outputs.items()}}

    def _sample(self, value: Any) -> Any:
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        if isinstance(value, str) and self._root is not None:
            return os.path.join(self._root, value)
        return value


def predict_dataset(ds: Any, model: ModelSource | Predictor, *, batch_size: int = 64,
                    concurrency: int | tuple[int, int] | None = None, num_cpus: float = 1,
                    executor: str | None = None, backend: str = "auto", inputs: Mapping[str, str] | None = None,
                    root: str | os.PathLike[str] | None = None, resize: bool = False, **options: Any) -> Any:
    """``ds`` (a ``ray.data.Dataset``) with the model's outputs added as columns, lazily, like any
    Ray Data transformation.

    Each input is read from the column named by its data name (``x``), else by its variable name
    (``Input``), unless ``inputs`` maps the input (either name) to a column. A column holds per row an
    array for the input (float32 values, or uint8 pixels for an image input: ``read_images`` gives
    those), or an image path (relative ones are joined to ``root``). Each output becomes a column
    named by its data name (``y'``), else its variable name, holding one array per row.

    ``model``: an ``.nnp`` path, its bytes, or a Predictor; it goes to the workers as bytes through
    the object store, so they need no copy of the file. ``concurrency``: how many actors (or a
    ``(min, max)`` range; default: from one to one per ``num_cpus`` of the cluster, as Ray Data sees fit);
    each builds the predictor once.
    ``options`` go to the backend; onnxruntime gets ``intra_op_num_threads=num_cpus`` unless given.
    """
    ray = import_ray()
    from ray.data import ActorPoolStrategy

    from ..predictor import Predictor

    predictor = model if isinstance(model, Predictor) else Predictor(model, executor=executor, backend=backend)
    available = list(ds.columns())
    columns = {}
    for info in predictor.inputs:
        names = [name for name in (info.data_name, info.name) if name]
        chosen = next((inputs[n] for n in names if inputs and n in inputs), None)
        column = chosen if chosen is not None else next((n for n in names if n in available), None)
        if column is None or column not in available:
            raise InputError(f"no column {column or info.data_name!r} for input {info.name!r} (data name "
                             f"{info.data_name!r}); the dataset has: {', '.join(available)}")
        columns[info.name] = column
    outputs = {o.name: o.data_name or o.name for o in predictor.outputs}
    if predictor.backend == "onnxruntime":
        options.setdefault("intra_op_num_threads", max(1, int(num_cpus)))
    if concurrency is None:
        # An autoscaling pool: all CPUs taken by actors would leave none to read the data.
        concurrency = (1, max(1, int(ray.cluster_resources().get("CPU", 1) // num_cpus)))
    pool = ActorPoolStrategy(size=concurrency) if isinstance(concurrency, int) else \
        ActorPoolStrategy(min_size=concurrency[0], max_size=concurrency[1])
    shared = [ray.put(predictor.nnp_bytes())]
    return ds.map_batches(BatchPredictor, batch_size=batch_size, batch_format="numpy", compute=pool, num_cpus=num_cpus,
                          fn_constructor_args=(shared, predictor.executor, predictor.backend, options, columns,
                                               outputs, None if root is None else os.fspath(root), resize))
