"""Runtime backends: something that runs one executor's network on float32 batches."""
from __future__ import annotations

import importlib.util
from typing import Any, Protocol

import numpy as np

from ..errors import BackendError
from ..model.graph import Executor, Model

BACKENDS = ("onnxruntime", "nnabla")


class Backend(Protocol):
    name: str

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Inputs keyed by variable name (batch first); outputs in the executor's order."""
        ...


def available_backends() -> list[str]:
    return [name for name in BACKENDS if importlib.util.find_spec(name) is not None]


def create_backend(name: str, model: Model, executor: Executor, source: Any, options: dict[str, Any]) -> Backend:
    if name == "auto":
        name = "onnxruntime" if importlib.util.find_spec("onnxruntime") is not None else "nnabla"
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; choose one of: auto, {', '.join(BACKENDS)}")
    if importlib.util.find_spec(name) is None:
        hint = " (nnabla installs on Python 3.10 only: pip install 'nncbridge[nnabla]')" if name == "nnabla" else ""
        raise BackendError(f"backend {name!r} is not installed{hint}")
    if name == "onnxruntime":
        from .onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(model, executor, **options)
    from .nnabla_backend import NnablaBackend

    return NnablaBackend(model, executor, source, **options)
