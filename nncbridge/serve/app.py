"""The HTTP app: Open Inference Protocol v2, a Console-friendly ``/predict``, a page, ``/metrics``."""
from __future__ import annotations

import hmac
import importlib.util
import logging
import os
import re
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Union

import numpy as np
from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..errors import ImageTooLargeError, InputError, NncBridgeError, RequestError
from ..predictor import Predictor, TensorInfo
from . import protocol
from .batching import Batcher
from .metrics import Metrics

ModelSpec = Union[str, "os.PathLike[str]", bytes, Predictor]
Endpoint = Callable[..., Awaitable[Response]]
TOKEN_ENV = "NNCBRIDGE_TOKEN"
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
PUBLIC_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})
API_PREFIXES = ("/v2", "/predict", "/metrics", "/models")
# Bodies at least this big are parsed on a worker thread so the event loop keeps serving others.
THREAD_FROM_BYTES = 64 * 1024
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")
PAGE_PACKAGE = ("nncbridge.serve", "page")

log = logging.getLogger("nncbridge.serve")


class ServedModel:
    """One served model: its predictor and its batcher."""

    def __init__(self, name: str, predictor: Predictor, batcher: Batcher) -> None:
        self.name = name
        self.predictor = predictor
        self.batcher = batcher
        self.inputs_by_name: dict[str, TensorInfo] = {}
        for info in predictor.inputs:
            self.inputs_by_name[info.name] = info
            if info.data_name:
                self.inputs_by_name.setdefault(info.data_name, info)


def load_models(models: Mapping[str, ModelSpec], backend: str = "auto", executor: str | None = None,
                ) -> dict[str, Predictor]:
    """Name -> Predictor; paths and bytes are loaded here, Predictors are used as they are."""
    if not models:
        raise InputError("no models to serve")
    # onnxruntime's threads would spin between runs, taking the cores the event loop needs to parse
    # requests (at 32 clients on two cores, LeNet served 2-4x fewer requests with spinning on).
    options = {"allow_spinning": False} if backend == "onnxruntime" or (
        backend == "auto" and importlib.util.find_spec("onnxruntime") is not None) else {}
    loaded: dict[str, Predictor] = {}
    for name, source in models.items():
        if not isinstance(name, str) or not MODEL_NAME.match(name):
            raise InputError(f"model name {name!r} cannot be used in a URL: use letters, digits, '_', '.' and '-'")
        loaded[name] = source if isinstance(source, Predictor) else \
            Predictor(source, executor=executor, backend=backend, **options)
    return loaded


def create_app(models: Mapping[str, ModelSpec], *, token: str | None = None, max_batch_size: int = 32,
               max_delay_ms: float = 2.0, max_body: int = 16 * 1024 * 1024, backend: str = "auto",
               executor: str | None = None, page_dir: str | os.PathLike[str] | None = None) -> FastAPI:
    """An ASGI app serving ``models`` (name -> .nnp path, .nnp bytes or Predictor).

    Concurrent requests to one model are batched (up to ``max_batch_size`` samples, waiting at most
    ``max_delay_ms`` for more). With a ``token`` (default: $NNCBRIDGE_TOKEN) every API endpoint but
    the health checks needs ``Authorization: Bearer <token>``. Request bodies over ``max_body`` bytes
    get 413. ``page_dir``'s files are served at ``/`` before the built-in page's.
    """
    if max_batch_size < 1:
        raise InputError(f"max_batch_size must be at least 1, got {max_batch_size}")
    if max_delay_ms < 0:
        raise InputError(f"max_delay_ms must not be negative, got {max_delay_ms}")
    if max_body < 1:
        raise InputError(f"max_body must be positive, got {max_body}")
    if token is None:
        token = os.environ.get(TOKEN_ENV) or None
    if page_dir is not None and not Path(page_dir).is_dir():
        raise InputError(f"page_dir {os.fspath(page_dir)} is not a folder")
    predictors = load_models(models, backend, executor)
    metrics = Metrics()
    served = {name: ServedModel(name, p, Batcher(p, max_batch_size, max_delay_ms / 1000.0, metrics.batch_observer(name)))
              for name, p in predictors.items()}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        for model in served.values():
            model.batcher.close()

    app = FastAPI(title="nncbridge", version=__version__, docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.models = served
    app.state.metrics = metrics

    def lookup(name: str, version: str | None = None) -> ServedModel:
        model = served.get(name)
        if model is None:
            raise RequestError(f"unknown model {name!r}; served models: {', '.join(sorted(served))}", 404)
        if version is not None and version != "1":
            raise RequestError(f"model {name!r} has version 1 only, not {version!r}", 404)
        return model

    async def guarded(endpoint: str, request: Request, name: str | None,
                      handle: Callable[[], Awaitable[Response]]) -> Response:
        """Runs a handler; errors become {"error": ...} with their status; records metrics."""
        start = time.perf_counter()
        label = name if name in served else ""  # unknown names must not grow the metrics
        try:
            response = await handle()
        except RequestError as e:
            response = error_response(e.status, str(e))
        except ImageTooLargeError as e:
            response = error_response(413, str(e))
        except InputError as e:  # what Predictor says about the data
            response = error_response(400, str(e))
        except NncBridgeError as e:  # BackendError and anything else about the model: the server's fault
            response = error_response(500, str(e))
        except Exception as e:  # noqa: BLE001 - the server keeps serving; the log has the traceback
            log.exception("%s %s failed", request.method, request.url.path)
            response = error_response(500, f"internal error: {type(e).__name__}: {e}")
        metrics.observe(label, endpoint, response.status_code, time.perf_counter() - start)
        return response

    def route(path: str, *methods: str) -> Callable[[Endpoint], Endpoint]:
        """Registers ``endpoint(request, **path parameters)`` as a plain Starlette route: FastAPI's
        parameter machinery would only repeat, per request, what the handlers check themselves."""
        def register(endpoint: Endpoint) -> Endpoint:
            async def call(request: Request) -> Response:
                return await endpoint(request, **request.path_params)

            app.router.add_route(path, call, methods=list(methods), name=endpoint.__name__)
            return endpoint
        return register

    # -- Open Inference Protocol v2 ---------------------------------------------------------------
    @route("/v2", "GET")
    async def server_metadata(request: Request) -> Response:
        return json_response({"name": "nncbridge", "version": __version__,
                              "extensions": ["binary_tensor_data", "classification", "model_configuration",
                                             "model_repository"]})

    @route("/v2/health/live", "GET")
    async def live(request: Request) -> Response:
        return json_response({"live": True})

    @route("/v2/health/ready", "GET")
    async def ready(request: Request) -> Response:
        return json_response({"ready": True})

    @route("/v2/repository/index", "POST")
    async def repository_index(request: Request) -> Response:
        return json_response([{"name": name, "version": "1", "state": "READY"} for name in served])

    async def model_metadata(request: Request, name: str, version: str | None = None) -> Response:
        async def handle() -> Response:
            return json_response(protocol.model_metadata(name, lookup(name, version).predictor))
        return await guarded("metadata", request, name, handle)

    async def model_ready(request: Request, name: str, version: str | None = None) -> Response:
        async def handle() -> Response:
            lookup(name, version)
            return json_response({"name": name, "ready": True})
        return await guarded("ready", request, name, handle)

    async def model_config(request: Request, name: str, version: str | None = None) -> Response:
        async def handle() -> Response:
            model = lookup(name, version)
            return json_response(protocol.model_config(name, model.predictor, model.batcher.max_batch_size,
                                                       model.batcher.max_delay))
        return await guarded("config", request, name, handle)

    async def infer(request: Request, name: str, version: str | None = None) -> Response:
        async def handle() -> Response:
            model = lookup(name, version)
            with model.batcher.arriving():
                body = await request.body()
                if request.headers.get("content-encoding"):
                    body = await off_loop(len(body), decoded_body, body, request.headers["content-encoding"], max_body)
                header_length = request.headers.get(protocol.HEADER_LENGTH)
                parsed = await off_loop(len(body), protocol.parse_infer_request, body, header_length,
                                        model.predictor)
            results = await model.batcher.submit(parsed.feeds)
            content, json_length = await off_loop(sum(r.nbytes for r in results), protocol.infer_response,
                                                  name, parsed, results, model.predictor.outputs)
            if json_length is None:
                return Response(content, media_type="application/json")
            return Response(content, media_type="application/octet-stream",
                            headers={protocol.HEADER_LENGTH: str(json_length)})
        return await guarded("infer", request, name, handle)

    for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        route(prefix, "GET")(model_metadata)
        route(prefix + "/ready", "GET")(model_ready)
        route(prefix + "/config", "GET")(model_config)
        route(prefix + "/infer", "POST")(infer)

    # -- Console-friendly -------------------------------------------------------------------------
    @route("/models", "GET")
    async def list_models(request: Request) -> Response:
        return json_response({"models": [describe_model(m) for m in served.values()]})

    @route("/predict/{name}", "POST")
    async def predict(request: Request, name: str) -> Response:
        async def handle() -> Response:
            model = lookup(name)
            resize = query_flag(request, "resize")
            with model.batcher.arriving():
                feeds = await console_feeds(request, model, resize)
            results = await model.batcher.submit(feeds)
            outputs = {info.data_name or info.name: values[0].tolist()
                       for info, values in zip(model.predictor.outputs, results)}
            return json_response({"model_name": name, "outputs": outputs})
        return await guarded("predict", request, name, handle)

    @route("/metrics", "GET")
    async def prometheus(request: Request) -> Response:
        content, content_type = metrics.render()
        return Response(content, media_type=content_type)

    # -- errors in the protocol's shape, the token, the body limit, the page ----------------------
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return error_response(exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError) -> Response:
        return error_response(exc.status, str(exc))

    # The page's files answer whatever no route matched at all (a route matching only by path still
    # answers 405): page_dir's first, then the built-in ones. StaticFiles stays inside its folders.
    app.router.default = StaticFiles(directory=page_dir, packages=[PAGE_PACKAGE], html=True) \
        if page_dir is not None else StaticFiles(packages=[PAGE_PACKAGE], html=True)
    app.add_middleware(BodyLimit, limit=max_body)
    if token:
        app.add_middleware(BearerToken, token=token)
    return app


# -- request bodies of /predict ---------------------------------------------------------------------
async def console_feeds(request: Request, model: ServedModel, resize: bool) -> dict[str, np.ndarray]:
    """Float32 batches of one sample for every input, from an image body, a multipart form or JSON."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    predictor = model.predictor
    if content_type.startswith("image/") or content_type == "application/octet-stream":
        info = only_image_input(model)
        body = await request.body()
        sample = await off_loop(len(body), image_sample, predictor, info, body, resize)
        return {info.name: sample[None]}
    if content_type == "application/json":
        body = await request.body()
        values = await off_loop(len(body), protocol.parse_json_object, body, "JSON body")
        return await off_loop(len(body), json_feeds, model, values, resize)
    if content_type == "multipart/form-data":
        return await form_feeds(request, model, resize)
    raise RequestError(
        f"Content-Type {content_type or '(none)'} is not accepted: send an image with Content-Type image/png "
        "or image/jpeg (curl -H 'Content-Type: image/png' --data-binary @digit.png), a multipart form "
        "(curl -F x=@digit.png), or JSON {\"x\": [...]} keyed by the input's data or variable name", 415)


def only_image_input(model: ServedModel) -> TensorInfo:
    inputs = model.predictor.inputs
    if len(inputs) != 1:
        raise RequestError(f"model {model.name!r} has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}): "
                           "send a multipart form or JSON with one field per input")
    if not inputs[0].accepts_images:
        raise RequestError(f"input {inputs[0].name!r} (data {inputs[0].data_name!r}) has shape {inputs[0].shape}, "
                           f"which does not take images: send JSON {{\"{inputs[0].data_name or inputs[0].name}\": [...]}}",
                           415)
    return inputs[0]


def image_sample(predictor: Predictor, info: TensorInfo, data: bytes, resize: bool) -> np.ndarray:
    """An uploaded image as ``Predictor`` preprocesses it for ``info``. The bytes are decoded here
    (never written anywhere or opened by name), in IMAGE_FORMATS only."""
    from ..dataset.images import open_image

    image = open_image(data, f"input {info.name!r} (data {info.data_name!r})", IMAGE_FORMATS)
    return predictor.sample_array(info, image, resize)


def json_feeds(model: ServedModel, values: dict[str, Any], resize: bool) -> dict[str, np.ndarray]:
    """One sample per input from JSON numbers keyed by data or variable name."""
    assigned: dict[str, np.ndarray] = {}
    for key, value in values.items():
        info = input_named(model, key)
        if info.name in assigned:
            raise RequestError(f"input {info.name!r} is given twice (by data name and by variable name)")
        assigned[info.name] = model.predictor.sample_array(info, numbers(value, info), resize)[None]
    return complete(model, assigned)


async def form_feeds(request: Request, model: ServedModel, resize: bool) -> dict[str, np.ndarray]:
    try:
        form = await request.form(max_files=len(model.predictor.inputs), max_fields=len(model.predictor.inputs))
    except RequestError:
        raise
    except HTTPException as e:
        raise RequestError(f"cannot read the multipart form: {e.detail}") from None
    except Exception as e:  # noqa: BLE001 - python-multipart's parse errors
        raise RequestError(f"cannot read the multipart form: {e}") from None
    try:
        items = list(form.multi_items())
        if not items:
            raise RequestError("the multipart form has no fields: add the image as a file field (curl -F x=@digit.png)")
        single = len(model.predictor.inputs) == 1 and len(items) == 1
        assigned: dict[str, np.ndarray] = {}
        for key, value in items:
            info = model.predictor.inputs[0] if single else input_named(model, key)
            if info.name in assigned:
                raise RequestError(f"input {info.name!r} is given twice")
            if isinstance(value, str):
                sample = model.predictor.sample_array(
                    info, numbers(protocol.parse_json(value, f"form field {key!r}"), info), resize)
            else:
                data = await value.read()
                sample = await off_loop(len(data), image_sample, model.predictor, info, data, resize)
            assigned[info.name] = sample[None]
        return complete(model, assigned)
    finally:
        await form.close()


def input_named(model: ServedModel, key: str) -> TensorInfo:
    info = model.inputs_by_name.get(key)
    if info is None:
        raise RequestError(f"unknown input {key!r}; model {model.name!r} takes "
                           + ", ".join(f"{i.data_name!r} (variable {i.name!r})" for i in model.predictor.inputs))
    return info


def complete(model: ServedModel, assigned: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    missing = [i for i in model.predictor.inputs if i.name not in assigned]
    if missing:
        raise RequestError("missing input(s) " + ", ".join(f"{i.data_name!r} (variable {i.name!r})" for i in missing))
    return assigned


def numbers(value: Any, info: TensorInfo) -> np.ndarray:
    return protocol.numeric_array(value, f"input {info.name!r} (data {info.data_name!r})",
                                  f"numbers nested like its shape {info.shape}")


def describe_model(model: ServedModel) -> dict[str, Any]:
    def tensor(info: TensorInfo) -> dict[str, Any]:
        return {"name": info.name, "data_name": info.data_name, "shape": list(info.shape),
                "image": info.accepts_images, "channels": info.shape[0] if len(info.shape) == 3 else 1}

    p = model.predictor
    return {"name": model.name, "executor": p.executor, "backend": p.backend,
            "normalize_images": p.normalize_images,
            "inputs": [tensor(i) for i in p.inputs], "outputs": [tensor(o) for o in p.outputs]}


# -- helpers ------------------------------------------------------------------------------------------
def query_flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "false").lower()
    if value not in ("true", "false", "1", "0", "yes", "no", ""):
        raise RequestError(f"?{name}= must be true or false, got {value!r}")
    return value in ("true", "1", "yes", "")


def decoded_body(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body as sent before ``Content-Encoding`` gzip or deflate (tritonclient's
    request_compression_algorithm), refused past ``limit`` bytes unpacked."""
    if not encoding or encoding.lower() == "identity":
        return body
    kinds = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
    wbits = kinds.get(encoding.lower())
    if wbits is None:
        raise RequestError(f"Content-Encoding {encoding!r} is not accepted: use gzip, deflate or none", 415)
    unpacker = zlib.decompressobj(wbits)
    try:
        data = unpacker.decompress(body, limit + 1)
    except zlib.error as e:
        raise RequestError(f"the body is not valid {encoding} data: {e}") from None
    if len(data) > limit or unpacker.unconsumed_tail:
        raise RequestError(f"the body unpacks to more than the limit of {limit} bytes (--max-body)", 413)
    return data


async def off_loop(size: int, function: Callable[..., Any], *args: Any) -> Any:
    """Small work runs right here; work on a big body on a thread, so other requests keep flowing."""
    if size < THREAD_FROM_BYTES:
        return function(*args)
    return await run_in_threadpool(function, *args)


def json_response(message: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(protocol.json_bytes(message), status_code=status, media_type="application/json",
                    headers=dict(headers) if headers else None)


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return json_response({"error": message}, status, headers)


class BodyLimit:
    """Refuses bodies over ``limit`` bytes with 413: from Content-Length before reading anything, or
    as soon as a body without one has gone over."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > self.limit:
                    await send_error(send, 413 if declared > self.limit else 400,
                                     f"request body of {value.decode(errors='replace')} bytes: the limit is "
                                     f"{self.limit} bytes (--max-body)" if declared > self.limit else
                                     "Content-Length is not a number")
                    return
        received = 0
        limit = self.limit

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise RequestError(f"request body over the limit of {limit} bytes (--max-body)", 413)
            return message

        await self.app(scope, limited, send)


class BearerToken:
    """Every API path but the health checks needs ``Authorization: Bearer <token>``; the page's own
    files do not (they hold no model data; the page asks for the token)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and needs_token(scope["path"]):
            given = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
            if not hmac.compare_digest(given, self.expected):
                await send_error(send, 401, "missing or wrong token: send the header 'Authorization: Bearer <token>'",
                                 {"www-authenticate": "Bearer"})
                return
        await self.app(scope, receive, send)


def needs_token(path: str) -> bool:
    if path in PUBLIC_PATHS:
        return False
    return any(path == p or path.startswith(p + "/") for p in API_PREFIXES)


async def send_error(send: Send, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
    body = protocol.json_bytes({"error": message})
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
