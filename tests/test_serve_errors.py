"""``nncbridge serve`` with bad, hostile and oversized requests: every one gets a 4xx with
{"error": ...} naming what is wrong; backend failures get 500 and the server keeps serving; the
token guards every endpoint but health; no request makes the server open a file."""
from __future__ import annotations

import json
import socket
import textwrap
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from PIL import Image
from tritonclient.utils import InferenceServerException

import nncbridge
from tests.serve_helpers import IMAGES, LENET, SIN, Server, client_fixture, png_bytes, server_fixture

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TOKEN = "s3cret-token"
MAX_BODY = 8192


server = server_fixture(f"lenet={LENET}", f"sin={SIN}")
client = client_fixture()


@pytest.fixture(scope="module")
def guarded():
    """A server with a token (from the environment) and a small body limit."""
    s = Server([f"lenet={LENET}", "--max-body", str(MAX_BODY)], env={"NNCBRIDGE_TOKEN": TOKEN})
    yield s
    s.stop()


def lenet_request(**overrides):
    tensor = {"name": "Input", "datatype": "FP32", "shape": [1, 1, 28, 28], "data": [0.5] * 784}
    tensor.update(overrides)
    return {"inputs": [tensor]}


def assert_error(response, status, *fragments):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    message = response.json()["error"]
    for fragment in fragments:
        assert fragment in message, message
    return message


# -- v2 inference requests -------------------------------------------------------------------------------
V2_BAD_BODIES = [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b"{}", '"inputs"'),
    (b'{"inputs": [{"datatype": "FP32"}]}', '"name"'),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
]


@pytest.mark.parametrize("body, fragment", V2_BAD_BODIES, ids=["malformed", "list", "no-inputs", "no-name", "deep"])
def test_v2_malformed_requests(client, body, fragment):
    response = client.post("/v2/models/lenet/infer", content=body, headers={"Content-Type": "application/json"})
    assert_error(response, 400, fragment)


V2_BAD_TENSORS = [
    (dict(name="Image"), "unknown input 'Image'", "'Input'"),
    (dict(datatype="INT32"), "input 'Input'", "INT32", "FP32"),
    (dict(datatype="BYTES"), "input 'Input'", "BYTES"),
    (dict(shape=[1, 28, 28]), "input 'Input'", "[1, 28, 28]", "[-1, 1, 28, 28]"),
    (dict(shape=[1, 1, 28, 27]), "input 'Input'", "[1, 1, 28, 27]"),
    (dict(shape=[0, 1, 28, 28], data=[]), "input 'Input'", "batch size from 1"),
    (dict(shape=[1, 1, 28, -28]), "input 'Input'", "non-negative integers"),
    (dict(shape="1x1x28x28"), "input 'Input'", "shape"),
    (dict(data=[0.5] * 783), "input 'Input'", "783 values", "784"),
    (dict(data=["0.5"] * 784), "input 'Input'", "strings"),
    (dict(data=[True] * 784), "input 'Input'", "true/false"),
    (dict(data=[None] * 784), "input 'Input'", "null"),
    (dict(data=[[0.5] * 28] * 27 + [[0.5] * 27]), "input 'Input'", "uneven"),
    (dict(data=0.5), "input 'Input'", "single number"),
    (dict(data=None), "input 'Input'", "null"),
    (dict(data="/etc/passwd"), "input 'Input'", "strings"),
    (dict(parameters=[1]), "input 'Input'", "parameters"),
]


@pytest.mark.parametrize("override", V2_BAD_TENSORS, ids=lambda o: "-".join(sorted(o[0])) + ":" + str(list(o[0].values())[0])[:12])
def test_v2_bad_tensors_name_the_input(client, override):
    changes, *fragments = override
    response = client.post("/v2/models/lenet/infer", json=lenet_request(**changes))
    assert_error(response, 400, *fragments)


def test_v2_request_level_problems(client):
    ok = lenet_request()
    twice = {"inputs": ok["inputs"] * 2}
    assert_error(client.post("/v2/models/lenet/infer", json=twice), 400, "'Input' is given twice")
    assert_error(client.post("/v2/models/lenet/infer", json={**ok, "outputs": [{"name": "Sigmoid"}]}), 400,
                 "unknown output 'Sigmoid'", "'Softmax'")
    assert_error(client.post("/v2/models/lenet/infer", json={**ok, "outputs": "Softmax"}), 400, '"outputs"')
    assert_error(client.post("/v2/models/lenet/infer", json={**ok, "id": 7}), 400, '"id"')
    assert_error(client.post("/v2/models/lenet/infer",
                             json={**ok, "outputs": [{"name": "Softmax", "parameters": {"binary_data": "yes"}}]}),
                 400, "output 'Softmax'", "binary_data")
    assert_error(client.post("/v2/models/lenet/infer",
                             json={**ok, "outputs": [{"name": "Softmax", "parameters": {"classification": -1}}]}),
                 400, "output 'Softmax'", "classification")
    assert_error(client.post("/v2/models/nope/infer", json=ok), 404, "unknown model 'nope'", "lenet")
    assert_error(client.post("/v2/models/lenet/versions/2/infer", json=ok), 404, "version")
    assert_error(client.get("/v2/models/nope"), 404, "unknown model 'nope'")
    assert_error(client.get("/v2/models/nope/ready"), 404, "unknown model 'nope'")
    assert_error(client.get("/v2/models/lenet/infer"), 405, "Method Not Allowed")
    assert_error(client.get("/v2/nothing"), 404, "Not Found")
    assert client.post("/v2/models/lenet/versions/1/infer", json=ok).status_code == 200


def binary_body(values: np.ndarray, declared: int | None = None, header_length: int | None = None):
    header = {"inputs": [{"name": "Input", "datatype": "FP32", "shape": [1, 1, 28, 28],
                          "parameters": {"binary_data_size": values.nbytes if declared is None else declared}}]}
    head = __import__("json").dumps(header).encode()
    return head + values.tobytes(), {"Inference-Header-Content-Length": str(len(head) if header_length is None else header_length),
                                     "Content-Type": "application/octet-stream"}


def test_v2_bad_binary_tensors(client):
    values = np.full((1, 1, 28, 28), 0.5, np.float32)
    cases = [
        (binary_body(values, declared=3132), ("input 'Input'", "binary_data_size is 3132", "3136")),
        (binary_body(values[..., :27].copy(), declared=3136), ("input 'Input'", "3136")),
        (binary_body(values, header_length=10), ("not valid JSON",)),
        (binary_body(values, header_length=10**9), ("Inference-Header-Content-Length",)),
        (binary_body(values, header_length=-5), ("Inference-Header-Content-Length",)),
    ]
    body, headers = binary_body(values)
    cases.append(((body + b"\0\0\0\0", headers), ("3140 bytes of binary tensor data",)))
    headers = dict(headers, **{"Inference-Header-Content-Length": "many"})
    cases.append(((body, headers), ("Inference-Header-Content-Length",)))
    for (body, headers), fragments in cases:
        assert_error(client.post("/v2/models/lenet/infer", content=body, headers=headers), 400, *fragments)
    body, headers = binary_body(values)
    assert client.post("/v2/models/lenet/infer", content=body, headers=headers).status_code == 200


def test_tritonclient_sees_the_error_text(server):
    c = triton.InferenceServerClient(server.host_port)
    tensor = triton.InferInput("Input", [1, 1, 28, 27], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 1, 28, 27), np.float32))
    with pytest.raises(InferenceServerException, match=r"input 'Input' has shape \[1, 1, 28, 27\]") as caught:
        c.infer("lenet", [tensor])
    assert caught.value.status() == "400"
    c.close()


# -- /predict ------------------------------------------------------------------------------------------
def test_predict_bad_requests(client):
    digit = (IMAGES / "001.png").read_bytes()
    post = client.post
    assert_error(post("/predict/lenet", content=b"hello", headers={"Content-Type": "text/plain"}), 415,
                 "Content-Type text/plain", "image/png")
    assert_error(post("/predict/lenet", content=digit), 415, "(none)")
    assert_error(post("/predict/lenet", content=b"\x89PNG\r\n\x1a\nbroken", headers={"Content-Type": "image/png"}),
                 400, "input 'Input'", "cannot read image", "(PNG, JPEG, BMP, GIF, TIFF, WEBP accepted)")
    assert_error(post("/predict/lenet", content=b"", headers={"Content-Type": "image/png"}), 400, "input 'Input'", "empty")
    wide = png_bytes(Image.new("L", (30, 28)))
    assert_error(post("/predict/lenet", content=wide, headers={"Content-Type": "image/png"}), 400,
                 "input 'Input'", "30x28", "resize")
    assert_error(post("/predict/sin", content=digit, headers={"Content-Type": "image/png"}), 415,
                 "input 'Input'", "does not take images")
    assert_error(post("/predict/lenet", json={"y": [1]}), 400, "unknown input 'y'", "'x'")
    assert_error(post("/predict/lenet", json=[1, 2]), 400, "JSON object")
    assert_error(post("/predict/lenet", json={}), 400, "missing input", "'x'")
    assert_error(post("/predict/lenet", json={"x": [[0.1] * 28] * 28}), 400, "input 'Input'", "(1, 28, 28)")
    assert_error(post("/predict/lenet", json={"x": [[[0.1] * 28] * 28], "Input": [[[0.1] * 28] * 28]}), 400, "twice")
    assert_error(post("/predict/sin", json={"x": [True]}), 400, "input 'Input'", "true/false")
    assert_error(post("/predict/sin", json={"x": 0.5}), 400, "input 'Input'", "single number")
    assert_error(post("/predict/sin", json={"x": [1, 2]}), 400, "input 'Input'", "(1,)")
    assert_error(post("/predict/sin", content=b'{"x": [0.5', headers={"Content-Type": "application/json"}), 400,
                 "not valid JSON")
    assert_error(post("/predict/lenet", files={}, data={}), 415)  # no multipart body at all
    assert_error(post("/predict/lenet", files={"x": ("a.png", b"not an image", "image/png")}), 400,
                 "input 'Input'", "cannot read image")
    assert_error(post("/predict/lenet", files={"x": ("a.png", digit, "image/png"), "z": ("b.png", digit, "image/png")}),
                 400)
    assert_error(post("/predict/sin", files={"x": (None, "[0.5")}), 400, "form field 'x'", "not valid JSON")
    assert_error(post("/predict/sin", data={"x": "[0.5]"}), 415, "application/x-www-form-urlencoded")
    assert_error(post("/predict/nope", json={"x": [1]}), 404, "unknown model 'nope'")


def test_predict_resize_and_color_follow_predictor(client, tmp_path):
    predictor = nncbridge.load(LENET)
    big = Image.open(IMAGES / "002.png").convert("RGB").resize((56, 40))
    path = tmp_path / "big.png"
    big.save(path)
    response = client.post("/predict/lenet?resize=true", content=path.read_bytes(), headers={"Content-Type": "image/png"})
    assert response.status_code == 200, response.text
    want = predictor.predict(str(path), resize=True)  # RGB -> gray, bilinear resize, / 255: Predictor's rules
    assert np.array_equal(np.float32(response.json()["outputs"]["y'"]), want)


def test_no_request_opens_a_file(client):
    """Strings are never taken for image paths, and the page's files cannot be left by '..'."""
    existing = str(IMAGES / "001.png")  # a real image: a server that opened paths would answer 200
    assert_error(client.post("/predict/lenet", json={"x": existing}), 400, "input 'Input'", "strings")
    assert_error(client.post("/predict/lenet", files={"x": (None, existing)}), 400, "form field 'x'")
    assert_error(client.post("/v2/models/lenet/infer", json=lenet_request(data=existing)), 400, "strings")
    assert_error(client.post("/predict/lenet", files={"x": (existing, b"", "image/png")}), 400, "empty")
    for path in ("/../pyproject.toml", "/%2e%2e/pyproject.toml", "/..%2fpyproject.toml", "/%2e%2e%2f%2e%2e%2fetc/passwd",
                 "//etc/passwd", "/app.js/../../pyproject.toml"):
        status, body = raw_get(client, path)
        assert status in (400, 404), (path, status)
        assert b"[project]" not in body and b"root:" not in body


def raw_get(client, path: str) -> tuple[int, bytes]:
    """GET with the path exactly as written (httpx would normalize the dots)."""
    host, port = str(client.base_url).removeprefix("http://").rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_decompression_bomb_is_refused(client):
    bomb = png_bytes(Image.new("L", (9000, 9000)))  # 81 M pixels in ~80 KB
    assert len(bomb) < 1 << 20
    assert_error(client.post("/predict/lenet?resize=true", content=bomb, headers={"Content-Type": "image/png"}),
                 413, "input 'Input'", "9000x9000")


# -- limits and the token ------------------------------------------------------------------------------
def test_token_guards_everything_but_health(guarded):
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    digit = (IMAGES / "001.png").read_bytes()
    with httpx.Client(base_url=guarded.url, timeout=30) as c:
        assert c.get("/v2/health/live").status_code == 200
        assert c.get("/v2/health/ready").status_code == 200
        for method, path in [("GET", "/v2"), ("GET", "/v2/models/lenet"), ("GET", "/v2/models/lenet/ready"),
                             ("POST", "/v2/models/lenet/infer"), ("POST", "/predict/lenet"), ("GET", "/metrics"),
                             ("GET", "/models"), ("POST", "/v2/repository/index"), ("GET", "/v2/models/nope")]:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
                response = c.request(method, path, headers=headers)
                assert_error(response, 401, "Authorization: Bearer")
                assert response.headers["www-authenticate"] == "Bearer"
        assert c.get("/v2", headers=bearer).status_code == 200
        assert c.get("/metrics", headers=bearer).status_code == 200
        response = c.post("/predict/lenet", content=digit, headers={**bearer, "Content-Type": "image/png"})
        assert response.status_code == 200
    client = triton.InferenceServerClient(guarded.host_port)
    tensor = triton.InferInput("Input", [1, 1, 28, 28], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 1, 28, 28), np.float32), binary_data=True)
    with pytest.raises(InferenceServerException) as caught:
        client.infer("lenet", [tensor])
    assert caught.value.status() == "401"
    assert client.infer("lenet", [tensor], headers=bearer).as_numpy("Softmax").shape == (1, 10)
    client.close()


def test_body_over_the_limit_gets_413_before_it_is_read(guarded):
    host, port = guarded.host_port.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        # Announces 1 GB but sends a few bytes: the answer must come without waiting for the rest.
        s.sendall(f"POST /predict/lenet HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n"
                  f"Content-Type: image/png\r\nContent-Length: {1 << 30}\r\n\r\n".encode() + b"\x89PNG")
        response = b""
        while b"limit" not in response and (chunk := s.recv(65536)):
            response += chunk
    assert response.startswith(b"HTTP/1.1 413"), response
    assert b"limit is 8192 bytes" in response

    def chunks():
        for _ in range(10):
            yield b"x" * 1000

    with httpx.Client(base_url=guarded.url, timeout=30, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        # No Content-Length (chunked): refused once the body goes over
        assert_error(c.post("/predict/lenet", content=chunks(), headers={"Content-Type": "image/png"}), 413, "8192")
        assert_error(c.post("/v2/models/lenet/infer", content=b"{" + b" " * MAX_BODY + b"}",
                            headers={"Content-Type": "application/json"}), 413, "8192")
        assert c.get("/v2/health/ready").status_code == 200  # still serving


# -- backend failures -------------------------------------------------------------------------------------
FLAKY_SERVER = textwrap.dedent(f"""
    import numpy as np
    import nncbridge
    from nncbridge import BackendError, Predictor
    from nncbridge.cli.serve import serve_app
    from nncbridge.serve import create_app

    class Flaky(Predictor):
        # Fails like a backend would on chosen inputs: 13 -> BackendError, 666 -> an unexpected error.
        def run_batch(self, feeds):
            values = next(iter(feeds.values()))
            if (values == 13).any():
                raise BackendError("onnxruntime failed: injected failure on 13")
            if (values == 666).any():
                raise RuntimeError("something unexpected")
            return super().run_batch(feeds)

    app = create_app({{"sin": Flaky({str(SIN)!r})}}, max_delay_ms=200)
    serve_app(app, "127.0.0.1", 0, lambda url: print("listening on", url, flush=True))
""")


def test_backend_failure_is_500_and_the_server_keeps_serving():
    server = Server([], script=FLAKY_SERVER)
    try:
        predictor = nncbridge.load(SIN)
        with httpx.Client(base_url=server.url, timeout=30) as c:
            assert_error(c.post("/predict/sin", json={"x": [13]}), 500, "injected failure on 13")
            assert_error(c.post("/predict/sin", json={"x": [666]}), 500, "internal error", "something unexpected")
            xs = [0.5, 1.0, 13.0, 2.0, 666.0, 3.0, 4.0, 5.0]

            def one(x):
                return c.post("/v2/models/sin/infer", json={"inputs": [
                    {"name": "Input", "datatype": "FP32", "shape": [1, 1], "data": [x]}]})

            # Batched together with failing requests, the others still get their own answers.
            with ThreadPoolExecutor(len(xs)) as pool:
                responses = list(pool.map(one, xs))
            for x, response in zip(xs, responses):
                if x in (13.0, 666.0):
                    assert response.status_code == 500
                else:
                    assert response.status_code == 200, response.text
                    want = predictor.predict(np.float32([x]))
                    assert np.float32(response.json()["outputs"][0]["data"]) == want
            assert c.get("/v2/health/ready").status_code == 200
            assert c.post("/predict/sin", json={"x": [0.5]}).status_code == 200
            metrics = c.get("/metrics").text
            assert 'nncbridge_request_errors_total{endpoint="predict",model="sin",status="500"} 2.0' in metrics
    finally:
        server.stop()
    assert "something unexpected" in "".join(server.stderr)  # logged with its traceback


def test_compressed_bodies_are_bounded(guarded):
    import gzip
    import zlib

    bearer = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    with httpx.Client(base_url=guarded.url, timeout=30) as c:
        bomb = gzip.compress(b" " * (5 << 20))  # 5 MB of spaces in ~5 KB: over the 8 KB limit unpacked
        assert len(bomb) < MAX_BODY
        assert_error(c.post("/v2/models/lenet/infer", content=bomb, headers={**bearer, "Content-Encoding": "gzip"}),
                     413, "unpacks to more than", "8192")
        assert_error(c.post("/v2/models/lenet/infer", content=b"not gzip", headers={**bearer, "Content-Encoding": "gzip"}),
                     400, "not valid gzip")
        assert_error(c.post("/v2/models/lenet/infer", content=b"{}", headers={**bearer, "Content-Encoding": "br"}),
                     415, "Content-Encoding 'br'")
        body = zlib.compress(json.dumps(lenet_request()).encode())
        assert c.post("/v2/models/lenet/infer", content=body,
                      headers={**bearer, "Content-Encoding": "deflate"}).status_code == 200


def test_resize_flag_must_be_a_flag(client):
    digit = (IMAGES / "001.png").read_bytes()
    assert_error(client.post("/predict/lenet?resize=maybe", content=digit, headers={"Content-Type": "image/png"}),
                 400, "?resize= must be true or false")
    assert client.post("/predict/lenet?resize=false", content=digit, headers={"Content-Type": "image/png"}).status_code == 200
