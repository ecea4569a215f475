"""nnabla backend (Python 3.10 environments with nnabla installed): nnabla's own NnpLoader."""
from __future__ import annotations

import os
import re
import tempfile
import threading
from typing import Any

import numpy as np

from ..errors import BackendError
from ..model.graph import Executor, Model


class NnablaBackend:
    name = "nnabla"
    _tmp: str | None = None  # a temporary copy of a model given as bytes (nnabla reads files)

    def __init__(self, model: Model, executor: Executor, source: Any, **_: Any) -> None:
        try:
            from nnabla.utils.nnp_graph import NnpLoader
        except Exception as e:  # a broken install fails with anything: ValueError (numpy ABI), TypeError, ...
            raise BackendError(broken_nnabla_message(e)) from None
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


def broken_nnabla_message(error: Exception) -> str:
    """Why ``import nnabla`` failed and how to repair it: usually a later ``pip install`` lifted numpy
    or protobuf past nnabla's pins (pip ignores the pins of packages already installed)."""
    from importlib import metadata

    message = f"nnabla is installed but cannot be imported ({type(error).__name__}: {error})"
    try:
        nnabla_version = metadata.version("nnabla")
        requirements = metadata.requires("nnabla") or []
    except metadata.PackageNotFoundError:
        return message
    pins: list[str] = []
    found: list[str] = []
    for requirement in requirements:
        spec = requirement.split(";")[0]
        match = re.match(r"\s*(numpy|protobuf)\s*\(?([^)]*)\)?\s*$", spec, re.IGNORECASE)
        if not match:
            continue
        name, version_spec = match[1].lower(), match[2].replace(" ", "")
        pins.append(f"{name}{version_spec}")
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"no {name}")
    if not pins:
        return message
    return (f"{message}. nnabla {nnabla_version} requires {' and '.join(pins)}; this environment has "
            f"{' and '.join(found)}. If a package installed after nnabla changed them, repair it with "
            f"pip install \"nncbridge[nnabla]\" (from a clone: pip install \".[nnabla]\"), which has pip bring "
            f"numpy, protobuf and onnx back to versions nnabla works with")
