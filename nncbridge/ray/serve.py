"""``nncbridge serve --ray``: the app of ``nncbridge serve`` as a Ray Serve deployment of N replicas.

Each replica builds the same app (``nncbridge.serve.create_app``) from the models' bytes, so the
endpoints and answers are those of ``nncbridge serve``; Ray Serve's one HTTP proxy, on the head
node, spreads requests over the replicas.
"""
from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from .cluster import connected, import_ray

if TYPE_CHECKING:
    from ..predictor import ModelSource

APP_NAME = "nncbridge"

# What this replica serves: set by ServedModels, read by build_app (Ray Serve calls it without arguments).
_replica_models: tuple[dict[str, bytes], dict[str, Any]] | None = None


class ServedModels:
    """The deployment's class: Ray Serve makes one per replica, then calls build_app for its HTTP app."""

    def __init__(self, models: dict[str, bytes], options: dict[str, Any]) -> None:
        global _replica_models
        _replica_models = (models, options)


def build_app() -> Any:
    from ..serve import create_app

    assert _replica_models is not None, "ServedModels was not constructed in this replica"
    models, options = _replica_models
    return create_app(models, **options)


def application(models: Mapping[str, ModelSource], options: Mapping[str, Any], replicas: int = 1) -> Any:
    """A Ray Serve application of ``replicas`` replicas serving ``models`` (name -> path or bytes)
    with ``create_app``'s ``options``; for ``serve.run``. The models are loaded here first (so their
    errors are those of ``nncbridge serve``) and go to the replicas as bytes."""
    import_ray()
    from ray import serve

    from ..predictor import Predictor
    from ..serve import create_app

    if replicas < 1:
        raise InputError(f"the number of replicas must be positive, got {replicas}")
    options = dict(options)
    # Settings a replica cannot find on its node are resolved here: the token from the environment.
    options["token"] = options.get("token") or os.environ.get("NNCBRIDGE_TOKEN") or None
    predictors = {name: source if isinstance(source, Predictor) else
                  Predictor(source, executor=options.get("executor"), backend=options.get("backend", "auto"))
                  for name, source in models.items()}
    create_app(predictors, **options)  # refuses what the replicas would refuse, with the same message
    deployment = serve.deployment(name=APP_NAME, num_replicas=replicas, ray_actor_options={"num_cpus": 1})(
        serve.ingress(build_app)(ServedModels))
    return deployment.bind({name: p.nnp_bytes() for name, p in predictors.items()}, options)


def serve_on_ray(models: Mapping[str, ModelSource], options: Mapping[str, Any], *, address: str | None,
                 replicas: int, host: str = "127.0.0.1", port: int = 8000,
                 announce: Callable[[str], None] = print) -> int:
    """Run the models on Ray Serve until SIGINT or SIGTERM, then delete the application. Ray Serve's
    proxy listens on ``host:port`` (0: a free port) of the head node."""
    with connected(address):
        from ray import serve

        app = application(models, options, replicas)
        port = port or _free_port(host)
        serve.start(http_options={"host": host, "port": port}, proxy_location="HeadOnly")
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        try:
            serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)
            url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
            for name in models:
                announce(f"model {name!r}: {url}/v2/models/{name}/infer  {url}/predict/{name}")
            announce(f"listening on {url} (Ray Serve, {replicas} replica{'s' * (replicas != 1)}; Ctrl+C to stop)")
            stop.wait()
        finally:
            serve.delete(APP_NAME)
            if address is None and not os.environ.get("RAY_ADDRESS"):
                serve.shutdown()
    return 0


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
