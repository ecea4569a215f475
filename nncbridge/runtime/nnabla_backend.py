"""nnabla backend (Python 3.10 environments with nnabla installed): nnabla's own NnpLoader."""
from __future__ import annotations

import os
import tempfile
import threading
from typing import Any

import numpy as np

from ..errors import BackendError
from ..model.graph import Executor, Model


class NnablaBackend:
    name = "nnabla"

    def __init__(self, model: Model, executor: Executor, source: Any, **_: Any) -> None:
        try:
            from nnabla.utils.nnp_graph import NnpLoader
        except ImportError as e:  # pragma: no cover - guarded by create_backend
            raise BackendError(f"nnabla is not importable: {e}") from None
        self._tmp: str | None = None
        if isinstance(source, (bytes, bytearray)):
            fd, self._tmp = tempfile.mkstemp(suffix=".nnp")
            with os.fdopen(fd, "wb") as f:
                f.write(source)
            path = self._tmp
        else:
            path = os.fspath(source)
        try:
            self._loader = NnpLoader(path)
        except Exception as e:
            raise BackendError(f"nnabla cannot load {path}: {e}") from None
        self._executor = executor
        self._networks: dict[int, Any] = {}
        self._lock = threading.Lock()  # nnabla graphs hold their buffers: one call at a time

    def _network(self, batch_size: int) -> Any:
        net = self._networks.get(batch_size)
        if net is None:
            net = self._loader.get_network(self._executor.network, batch_size=batch_size)
            self._networks[batch_size] = net
        return net

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        batch = next(iter(feeds.values())).shape[0]
        with self._lock:
            try:
                net = self._network(batch)
                for name, value in feeds.items():
                    net.variables[name].d = value
                outputs = [net.variables[o.variable] for o in self._executor.outputs]
                import nnabla as nn

                nn.forward_all(outputs, clear_buffer=True)
                return [np.array(o.d, dtype=np.float32, copy=True) for o in outputs]
            except Exception as e:
                raise BackendError(f"nnabla failed: {e}") from None

    def __del__(self) -> None:
        if self._tmp:
            try:
                os.unlink(self._tmp)
            except OSError:
                pass
