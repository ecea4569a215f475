"""Serve models over HTTP: Open Inference Protocol v2 (Triton, KServe), a Console-friendly
``/predict/{name}``, a page at ``/`` and Prometheus ``/metrics``. Needs ``pip install 'nncbridge[serve]'``.

    from nncbridge.serve import create_app
    app = create_app({"digits": "digits.nnp"})   # an ASGI app: uvicorn, Ray Serve, or mount it in yours
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ..predictor import Predictor

    ModelSpec = Union[str, "os.PathLike[str]", bytes, Predictor]

__all__ = ["create_app"]


def create_app(models: Mapping[str, ModelSpec], *, token: str | None = None, max_batch_size: int = 32,
               max_delay_ms: float = 2.0, max_body: int = 16 * 1024 * 1024, backend: str = "auto",
               executor: str | None = None, page_dir: str | os.PathLike[str] | None = None) -> FastAPI:
    """The app serving ``models`` (name -> .nnp path, .nnp bytes or Predictor); models load here.

    Concurrent requests to one model are batched into one call of up to ``max_batch_size`` samples,
    waiting at most ``max_delay_ms`` for more while others are arriving. With a ``token`` (default:
    the environment variable NNCBRIDGE_TOKEN) every endpoint but the health checks and the page's
    files needs ``Authorization: Bearer <token>``. Bodies over ``max_body`` bytes get 413.
    ``backend`` and ``executor`` go to ``nncbridge.load`` for models given as paths or bytes.
    ``page_dir``: a folder whose ``index.html`` (and other files) are served at ``/`` instead of the
    built-in page's. The page's files answer only paths no route matches, so routes an application
    adds to the returned app (``app.add_route``, FastAPI decorators) take precedence.
    """
    try:
        from .app import create_app as _create_app
    except ImportError as e:
        raise ImportError(f"nncbridge.serve needs FastAPI, uvicorn and prometheus-client: "
                          f"pip install 'nncbridge[serve]' ({e})") from e
    return _create_app(models, token=token, max_batch_size=max_batch_size, max_delay_ms=max_delay_ms,
                       max_body=max_body, backend=backend, executor=executor, page_dir=page_dir)
