"""Reaching Ray: the one place that imports it, and connects this process to a cluster."""
from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
from collections.abc import Iterator
from types import ModuleType

from ..errors import BackendError

RAY_MISSING = 'Ray is not installed: pip install "nncbridge[ray]"'
LOCAL = "local"
"""The address that asks for a new Ray instance on this machine, on 127.0.0.1 only."""


def require_ray() -> None:
    """A BackendError naming the extra that installs Ray if it is missing; Ray itself is not imported
    (importing it before ``connected`` would fix its choice of addresses too early)."""
    if importlib.util.find_spec("ray") is None:
        raise BackendError(RAY_MISSING)


def import_ray() -> ModuleType:
    """The ``ray`` module, or a BackendError naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise BackendError(RAY_MISSING) from None
    return ray


@contextlib.contextmanager
def connected(address: str | None = None) -> Iterator[ModuleType]:
    """Ray, with this process connected for the block: to ``address`` (``auto`` for the cluster this
    machine joined with ``ray start``, ``HOST:PORT``, ``ray://HOST:PORT``), else to ``RAY_ADDRESS``,
    else to a new Ray instance on this machine, started on 127.0.0.1 and stopped afterwards.
    A connection this process already has is used as it is and left open."""
    address = address or os.environ.get("RAY_ADDRESS") or LOCAL
    if address == LOCAL and "ray" not in sys.modules:
        # Ray gives a local instance this machine's external address unless told it is no cluster.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    options = {"include_dashboard": False, "num_cpus": os.cpu_count()} if address == LOCAL else {}
    try:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False, **options)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise BackendError(f"cannot connect to the Ray cluster at {address}: {e}") from None
    try:
        yield ray
    finally:
        ray.shutdown()
