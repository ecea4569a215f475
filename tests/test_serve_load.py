"""``nncbridge serve`` under load: 64 concurrent clients get what serial calls give, a bounded soak
keeps memory flat, SIGTERM lets in-flight requests finish. Bounded in count and time; 127.0.0.1 only;
no timing assertions."""
from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import tritonclient.http as triton

import nncbridge
from tests.serve_helpers import IMAGES, LENET, Server, assert_same_values, batch_invariant, png_bytes

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CLIENTS = 64
SOAK_REQUESTS = 20_000


@pytest.fixture(scope="module")
def predictor():
    return nncbridge.load(LENET)


def batch_sizes(metrics: str, model: str) -> tuple[float, float]:
    """(number of model calls, samples in them) from /metrics."""
    count = float(re.search(rf'nncbridge_batch_size_count{{model="{model}"}} (\S+)', metrics).group(1))
    total = float(re.search(rf'nncbridge_batch_size_sum{{model="{model}"}} (\S+)', metrics).group(1))
    return count, total


@pytest.mark.slow
def test_64_concurrent_clients_get_what_serial_calls_give(predictor):
    server = Server([f"lenet={LENET}", "--max-delay-ms", "5"])
    try:
        rng = np.random.RandomState(7)
        # Per client: two random 28x28 PNGs for /predict, a JSON and a binary v2 batch of 1-5 samples.
        work = []
        for k in range(CLIENTS):
            images = [rng.randint(0, 256, (28, 28), dtype=np.uint8) for _ in range(2)]
            batches = [rng.uniform(0, 1, (1 + (k + j) % 5, 1, 28, 28)).astype(np.float32) for j in range(2)]
            work.append((images, batches))
        # Serial: the same requests, one at a time, through Predictor (the server's own code path)
        serial = [([predictor.predict(img) for img in images], [predictor.predict(b) for b in batches])
                  for images, batches in work]
        with httpx.Client(base_url=server.url) as c:
            calls_before, _ = batch_sizes(c.get("/metrics").text, "lenet")
        barrier = threading.Barrier(CLIENTS)

        def client(k: int):
            images, batches = work[k]
            got_images, got_batches = [], []
            tc = triton.InferenceServerClient(server.host_port, connection_timeout=60, network_timeout=60)
            with httpx.Client(base_url=server.url, timeout=60) as c:
                barrier.wait(60)
                for round_ in range(2):
                    r = c.post("/predict/lenet", content=png_bytes(images[round_]), headers={"Content-Type": "image/png"})
                    assert r.status_code == 200, r.text
                    got_images.append(np.float32(r.json()["outputs"]["y'"]))
                    tensor = triton.InferInput("Input", list(batches[round_].shape), "FP32")
                    tensor.set_data_from_numpy(batches[round_], binary_data=(k + round_) % 2 == 0)
                    result = tc.infer("lenet", [tensor], outputs=[
                        triton.InferRequestedOutput("Softmax", binary_data=(k + round_) % 3 == 0)])
                    got_batches.append(result.as_numpy("Softmax"))
            tc.close()
            return got_images, got_batches

        with ThreadPoolExecutor(CLIENTS) as pool:
            results = list(pool.map(client, range(CLIENTS)))
        exact = batch_invariant(predictor)  # bit for bit where the backend itself is
        for (got_images, got_batches), (want_images, want_batches) in zip(results, serial):
            for got, want in zip(got_images + got_batches, want_images + want_batches):
                assert_same_values(got, want, exact)
        with httpx.Client(base_url=server.url) as c:
            calls, samples = batch_sizes(c.get("/metrics").text, "lenet")
        requests = CLIENTS * 4
        assert calls - calls_before < requests  # requests were gathered into shared model calls
    finally:
        server.stop()


# -- a small asyncio HTTP/1.1 keep-alive client: cheap enough to load the server, not itself -----------
async def _exchange(reader, writer, request: bytes) -> tuple[int, bytes, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = int(re.search(rb"\r\ncontent-length: (\d+)", head, re.IGNORECASE).group(1))
    return status, head, await reader.readexactly(length)


async def _hammer(host: str, port: int, requests: list[bytes], total: int, connections: int,
                  on_response) -> None:
    counter = iter(range(total))

    async def connection():
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for n in counter:
                k = n % len(requests)
                on_response(n, k, *await _exchange(reader, writer, requests[k]))
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))


def http_request(host: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def v2_binary(batch: np.ndarray) -> tuple[bytes, dict[str, str]]:
    header = json.dumps({"inputs": [{"name": "Input", "datatype": "FP32", "shape": list(batch.shape),
                                     "parameters": {"binary_data_size": batch.nbytes}}],
                         "outputs": [{"name": "Softmax", "parameters": {"binary_data": True}}]}).encode()
    return header + batch.tobytes(), {"Inference-Header-Content-Length": str(len(header)),
                                      "Content-Type": "application/octet-stream"}


@pytest.mark.slow
def test_soak_memory_stays_flat(predictor):
    server = Server([f"lenet={LENET}"])
    try:
        host, port = server.host_port.split(":")
        digits = [(IMAGES / f"00{k}.png").read_bytes() for k in range(1, 5)]
        batch = np.random.RandomState(3).uniform(0, 1, (3, 1, 28, 28)).astype(np.float32)
        body, headers = v2_binary(batch)
        requests = [http_request(host, "/predict/lenet", d, {"Content-Type": "image/png"}) for d in digits]
        requests.append(http_request(host, "/v2/models/lenet/infer", body, headers))
        wanted_images = [predictor.predict(str(IMAGES / f"00{k}.png")) for k in range(1, 5)]
        wanted_batch = predictor.predict(batch)
        exact = batch_invariant(predictor)
        problems: list[str] = []

        def check(n: int, k: int, status: int, head: bytes, content: bytes) -> None:
            if status != 200:
                problems.append(f"request {n}: status {status}: {content[:200]!r}")
                return
            if k < 4:
                got, want = np.float32(json.loads(content)["outputs"]["y'"]), wanted_images[k]
            else:
                header_length = re.search(rb"inference-header-content-length: (\d+)", head, re.IGNORECASE)
                result = triton.InferResult.from_response_body(content, header_length=int(header_length.group(1)))
                got, want = result.as_numpy("Softmax"), wanted_batch
            try:
                assert_same_values(got, want, exact)
            except AssertionError as e:
                problems.append(f"request {n}: wrong values: {e}")

        warm_up = 2_000
        asyncio.run(_hammer(host, int(port), requests, warm_up, 16, check))
        before = server.resident_kib()
        started = time.monotonic()
        asyncio.run(_hammer(host, int(port), requests, SOAK_REQUESTS, 16, check))
        seconds = time.monotonic() - started
        after = server.resident_kib()
        assert not problems, problems[:5]
        growth = (after - before) / before
        print(f"soak: {SOAK_REQUESTS} requests in {seconds:.1f} s; resident {before} -> {after} KiB ({growth:+.1%})")
        assert growth < 0.10, (before, after)
        with httpx.Client(base_url=server.url) as c:
            metrics = c.get("/metrics").text
        served = sum(float(v) for v in re.findall(r'nncbridge_requests_total{endpoint="(?:predict|infer)",'
                                                  r'model="lenet",status="200"} (\S+)', metrics))
        assert served == warm_up + SOAK_REQUESTS
    finally:
        server.stop()


@pytest.mark.slow
def test_sigterm_lets_in_flight_requests_finish(predictor):
    server = Server([f"lenet={LENET}"])
    host, port = server.host_port.split(":")
    digit = (IMAGES / "004.png").read_bytes()
    want = predictor.predict(str(IMAGES / "004.png"))
    exact = batch_invariant(predictor)
    stop = threading.Event()
    outcomes: list[str] = []

    def load() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            while not stop.is_set():
                try:
                    r = c.post("/predict/lenet", content=digit, headers={"Content-Type": "image/png"})
                except httpx.TransportError:  # refused or closed once the server stops accepting
                    outcomes.append("closed")
                    time.sleep(0.01)
                    continue
                try:
                    assert r.status_code == 200
                    assert_same_values(np.float32(r.json()["outputs"]["y'"]), want, exact)
                    outcomes.append("ok")
                except AssertionError:
                    outcomes.append(f"bad {r.status_code} {r.text[:100]}")

    # One request is in flight when SIGTERM comes: its headers and half its body have arrived.
    with socket.create_connection((host, int(port)), timeout=30) as slow:
        slow.sendall(http_request(host, "/predict/lenet", digit, {"Content-Type": "image/png"})[:-len(digit) // 2])
        threads = [threading.Thread(target=load) for _ in range(8)]
        for t in threads:
            t.start()
        while len(outcomes) < 200:
            time.sleep(0.01)
        server.process.send_signal(15)
        time.sleep(1.0)
        assert server.process.poll() is None  # still waiting for the slow request
        slow.sendall(digit[-len(digit) // 2:])
        response = b""
        while chunk := slow.recv(65536):
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), response
    assert_same_values(np.float32(json.loads(body)["outputs"]["y'"]), want, exact)
    code = server.wait_exit(30)
    stop.set()
    for t in threads:
        t.join(30)
    assert code in (0, -15), "".join(server.stderr)
    assert not [o for o in outcomes if o.startswith("bad")], outcomes[-5:]
    assert outcomes.count("ok") >= 200
    assert "Traceback" not in "".join(server.stderr)
