"""``nncbridge serve MODEL.nnp [NAME=MODEL.nnp ...]``: the models behind an HTTP inference API."""
from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError

if TYPE_CHECKING:  # every command's module is imported to build the parser: keep this one light
    import socket

SIZE = re.compile(r"^\s*(\d+)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
SIZE_FACTORS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="+", metavar="[NAME=]MODEL.nnp",
                   help="models to serve; the name in URLs is the file stem unless NAME= is given")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    p.add_argument("--token", help="require 'Authorization: Bearer TOKEN' on every endpoint but the health "
                   "checks (default: $NNCBRIDGE_TOKEN; the variable keeps it out of the process list)")
    p.add_argument("--max-batch-size", type=int, default=32,
                   help="samples gathered from concurrent requests into one model call (default: 32; 1: no batching)")
    p.add_argument("--max-delay-ms", type=float, default=2.0,
                   help="longest wait for more requests to fill a batch, while more are arriving (default: 2)")
    p.add_argument("--max-body", type=parse_size, default=16 << 20,
                   help="largest request body, e.g. 16M or 1048576 (default: 16M); larger ones get 413")
    p.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "nnabla"],
                   help="auto (default): onnxruntime, or nnabla if onnxruntime is missing")
    p.add_argument("--executor", help="executor to run (default: the only runtime executor)")
    p.add_argument("--page-dir", help="folder whose index.html (and other files) replace the built-in page at /")
    p.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="serve on Ray Serve: the cluster at ADDRESS (auto, HOST:PORT, ray://HOST:PORT), else "
                   "RAY_ADDRESS, else a new local Ray; --host/--port are those of its proxy on the head node")
    p.add_argument("--replicas", type=int, default=1, help="with --ray: copies of the app, one CPU each (default: 1)")


def parse_size(text: str) -> int:
    match = SIZE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 16M, 512K, 1048576)")
    return int(match.group(1)) * SIZE_FACTORS[(match.group(2) or "")[:1].lower()]


def model_arguments(values: list[str]) -> dict[str, str]:
    """``NAME=PATH`` or ``PATH`` (named by its stem) -> {name: path}."""
    models: dict[str, str] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or os.path.exists(value):
            name, path = Path(value).stem, value
        if name in models:
            raise InputError(f"two models are named {name!r}: name one of them with NAME=MODEL.nnp")
        models[name] = path
    return models


def app_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``nncbridge.serve.create_app`` the options ask for."""
    return {"token": args.token, "max_batch_size": args.max_batch_size, "max_delay_ms": args.max_delay_ms,
            "max_body": args.max_body, "backend": args.backend, "executor": args.executor,
            "page_dir": args.page_dir}


def run(args: argparse.Namespace) -> int:
    models = model_arguments(args.models)
    # Other ways to run the same app (a cluster, say) start here from models and app_options(args).
    if args.ray is not None:
        from ..ray.serve import serve_on_ray

        return serve_on_ray(models, app_options(args), address=args.ray or None, replicas=args.replicas,
                            host=args.host, port=args.port, announce=lambda line: print(line, flush=True))
    return serve_here(models, app_options(args), args.host, args.port)


def serve_here(models: dict[str, str], options: dict[str, Any], host: str, port: int) -> int:
    """Serve the app in this process with uvicorn until SIGINT or SIGTERM (in-flight requests finish)."""
    try:
        from ..serve import create_app

        app = create_app(models, **options)
    except ImportError as e:
        print(f"nncbridge serve: {e}", file=sys.stderr)
        return 2
    token = options.get("token") or os.environ.get("NNCBRIDGE_TOKEN")
    if not token and not is_loopback(host):
        print(f"nncbridge serve: warning: listening on {host} without a token: anyone who can reach it can "
              "use the models (set NNCBRIDGE_TOKEN)", file=sys.stderr)

    def announce(url: str) -> None:
        for name, path in models.items():
            print(f"model {name!r} from {path}: {url}/v2/models/{name}/infer  {url}/predict/{name}")
        print(f"listening on {url} (page: {url}/ , Ctrl+C to stop)", flush=True)

    serve_app(app, host, port, announce)
    return 0


def serve_app(app: Any, host: str, port: int, announce: Callable[[str], None]) -> None:
    """Run an ASGI app with uvicorn on ``host:port`` (0: a free port), calling ``announce(url)`` once
    the socket listens. Returns after SIGINT or SIGTERM, once in-flight requests have finished."""
    import uvicorn

    sock = listening_socket(host, port)
    bound_port = sock.getsockname()[1]
    announce(f"http://{host if ':' not in host else f'[{host}]'}:{bound_port}")
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=30,
                            server_header=False)
    uvicorn.Server(config).run(sockets=[sock])


def listening_socket(host: str, port: int) -> socket.socket:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(2048)
    return sock


def is_loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
