"""``nncbridge serve`` against the server a Console user writes today (FastAPI + nnabla NnpLoader behind
a lock), side by side in one run: requests/s and p50/p99 latency for LeNet and ResNet-18 at 1, 8 and
32 concurrent clients, nncbridge with adaptive batching on and off.

    python benchmarks/bench_serve.py [--rounds 3] [--seconds 2] [--clients 1 8 32]

Every side gets the very same request bytes: a multipart upload of an image (the four MNIST digits of
tests/data for LeNet, a 224x224 JPEG for ResNet-18), decoded and divided by 255 by the server. The
sides are measured in alternation, ``--rounds`` times, and medians reported: the machine is shared.
The load comes from this process (asyncio, keep-alive connections to 127.0.0.1), which takes some
CPU from the servers alike.

Goals (reported, not asserted): >= 5x the reference's throughput at 32 clients on ResNet-18; batching
>= 1.5x no batching at 32 clients on ResNet-18; p50 added by HTTP and batching <= 1 ms on LeNet at one
client (nncbridge's p50 minus the in-process p50 of the same decode + Predictor call).
"""
from __future__ import annotations

import argparse
import asyncio
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import (DIGITS, HERE, LENET, ROOT, WORK, _python310, ensure_resnet, finish, log, machine, median,
                     modern_env, nnabla_env, nnabla_venv, table)

REFERENCE_VENV = WORK / "serve-reference-venv"
REFERENCE_PACKAGES = ["nnabla==1.39.0", "fastapi", "uvicorn[standard]", "python-multipart", "pillow"]
SIDES = ("reference", "batching", "no-batching")
BOUNDARY = "nncbridge-bench-boundary"


# -- servers ----------------------------------------------------------------------------------------
class Process:
    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env=env, cwd=ROOT)
        self.lines: list[str] = []
        found = threading.Event()
        self.url = ""

        def read(stream: Any) -> None:
            for line in stream:
                self.lines.append(line)
                match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
                if match and not self.url:
                    self.url = match.group(1)
                    found.set()
            found.set()

        for stream in (self.process.stdout, self.process.stderr):
            threading.Thread(target=read, args=(stream,), daemon=True).start()
        found.wait(300)
        if not self.url:
            self.stop()
            raise SystemExit(f"server did not start: {' '.join(command)}\n{''.join(self.lines)[-3000:]}")
        self.host, port = self.url.removeprefix("http://").split(":")
        self.port = int(port)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server process has used: less disturbed by other load than wall time."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def reference_venv() -> Path:
    """A Python 3.10 venv with nnabla 1.39 and FastAPI (made once; the nnabla venv stays untouched)."""
    if (REFERENCE_VENV / "bin" / "uvicorn").exists():
        return REFERENCE_VENV
    python = working_python310()
    if python is None:
        raise SystemExit("the reference server needs Python 3.10 (nnabla 1.39)")
    log(f"creating {REFERENCE_VENV} ({' '.join(REFERENCE_PACKAGES)}; takes a minute or two)")
    subprocess.run([python, "-m", "venv", str(REFERENCE_VENV)], check=True)
    subprocess.run([str(REFERENCE_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", *REFERENCE_PACKAGES],
                   check=True)
    return REFERENCE_VENV


def working_python310() -> str | None:
    """The first python3.10 that runs (a pyenv shim may exist and refuse)."""
    import glob

    candidates = [_python310(), *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10*/bin/python3.10")))]
    for candidate in candidates:
        if candidate and subprocess.run([candidate, "-c", "import venv"], capture_output=True).returncode == 0:
            return candidate
    return None


# -- requests and load --------------------------------------------------------------------------------
def multipart_request(host: str, path: str, filename: str, data: bytes, content_type: str) -> bytes:
    body = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
            f"Content-Type: {content_type}\r\n\r\n").encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return head + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> bytes:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"server answered {head[:200]!r}: {await reader.read(500)!r}")
    length = int(re.search(rb"\r\ncontent-length: (\d+)", head, re.IGNORECASE).group(1))
    return await reader.readexactly(length)


async def _load(host: str, port: int, requests: list[bytes], clients: int, warmup: float,
                seconds: float) -> dict[str, float]:
    """``clients`` keep-alive connections, each sending its next request as soon as the last is
    answered (closed loop). Counts the answers that arrive in the measured window, whenever they were
    sent, so a server slower than the window still shows its rate; then lets requests in flight finish
    (unmeasured) so that the next cell starts on an idle server."""
    latencies: list[float] = []
    completed = sent = 0
    start = time.perf_counter()
    measure_from, measure_to = start + warmup, start + warmup + seconds

    async def client(k: int) -> None:
        nonlocal completed, sent
        reader, writer = await asyncio.open_connection(host, port)
        n = k
        try:
            while time.perf_counter() < measure_to:
                began = time.perf_counter()
                await _exchange(reader, writer, requests[n % len(requests)])
                ended = time.perf_counter()
                n += clients
                sent += 1
                if measure_from <= ended <= measure_to:
                    completed += 1
                    latencies.append(ended - began)
        finally:
            writer.close()

    await asyncio.gather(*(client(k) for k in range(clients)))
    if not latencies:
        raise RuntimeError(f"no answer within {warmup + seconds:.0f} s at {clients} clients: lengthen --seconds")
    return {"requests_per_s": completed / seconds, "p50_ms": 1e3 * float(np.percentile(latencies, 50)),
            "p99_ms": 1e3 * float(np.percentile(latencies, 99)), "requests": len(latencies), "sent": sent}


def in_process_p50(model: Path, images: list[bytes], seconds: float) -> float:
    """Median seconds of the same work without HTTP: decode the upload, Predictor.predict."""
    from PIL import Image

    import nncbridge

    predictor = nncbridge.load(model)
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < deadline or n < 50:
        began = time.perf_counter()
        image = Image.open(io.BytesIO(images[n % len(images)]))
        image.load()
        predictor.predict(image)
        times.append(time.perf_counter() - began)
        n += 1
    return median(times[10:])


def in_process_batch_gain(model: Path, batch: int, rounds: int = 3, seconds: float = 2.0) -> dict[str, float]:
    """Samples/s of the Predictor alone at batch 1 and at ``batch`` (alternating rounds, medians): the
    most any batching in front of it can gain."""
    import nncbridge

    predictor = nncbridge.load(model, allow_spinning=False)
    rates: dict[int, list[float]] = {1: [], batch: []}
    for _ in range(rounds):
        for size in rates:
            x = np.random.rand(size, *predictor.inputs[0].shape).astype(np.float32)
            predictor.predict(x)
            calls, began = 0, time.perf_counter()
            while time.perf_counter() - began < seconds or calls < 2:
                predictor.predict(x)
                calls += 1
            rates[size].append(size * calls / (time.perf_counter() - began))
    return {"batch_1_samples_per_s": round(median(rates[1]), 2),
            f"batch_{batch}_samples_per_s": round(median(rates[batch]), 2),
            "gain": round(median(rates[batch]) / median(rates[1]), 2)}


def resnet_jpeg() -> bytes:
    """A 224x224 photo-like JPEG (smooth colour regions with a little noise), 90 % quality."""
    from PIL import Image

    rng = np.random.RandomState(0)
    coarse = Image.fromarray(rng.randint(0, 256, (14, 14, 3), dtype=np.uint8)).resize((224, 224), Image.BICUBIC)
    pixels = np.clip(np.asarray(coarse, dtype=np.int16) + rng.randint(-12, 13, (224, 224, 3)), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=90)
    return out.getvalue()


# -- the run --------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per cell (default 3)")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per cell and round, "
                        "after half as long unmeasured (ResNet-18 cells get 3x; default 3)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--nnabla-venv", help="venv with nnabla 1.39 to build ResNet-18 (default: see _common.py)")
    args = parser.parse_args()

    resnet = ensure_resnet(nnabla_venv(args.nnabla_venv))
    models = {"LeNet": (ensure_lenet_path(), [(DIGITS / f"00{k}.png").read_bytes() for k in range(1, 5)], "image/png"),
              "ResNet-18": (resnet, [resnet_jpeg()], "image/jpeg")}
    reference_python = str(reference_venv() / "bin" / "python")
    info = machine()
    log(f"load average at start: {info['load_average_at_start']} (shared machine: medians of {args.rounds} rounds)")

    servers: dict[tuple[str, str], Process] = {}
    try:
        for name, (path, _, _) in models.items():
            servers[(name, "reference")] = Process([reference_python, str(HERE / "_serve_reference.py"), str(path)],
                                                   nnabla_env())
        for side, batch in (("batching", 32), ("no-batching", 1)):
            command = [sys.executable, "-m", "nncbridge", "serve", *[f"{n.lower()}={p}" for n, (p, _, _) in models.items()],
                       "--port", "0", "--max-batch-size", str(batch)]
            server = Process(command, modern_env())
            for name in models:
                servers[(name, side)] = server
        samples: dict[tuple[str, int, str], list[dict[str, float]]] = {}
        for round_ in range(args.rounds):
            for name, (path, images, content_type) in models.items():
                seconds = args.seconds * (3.0 if name == "ResNet-18" else 1.0)
                for clients in args.clients:
                    for side in SIDES:
                        server = servers[(name, side)]
                        route = "/predict" if side == "reference" else f"/predict/{name.lower()}"
                        requests = [multipart_request(server.host, route, f"image{k}", data, content_type)
                                    for k, data in enumerate(images)]
                        cpu_before = server.cpu_seconds()
                        result = asyncio.run(_load(server.host, server.port, requests, clients,
                                                   warmup=seconds / 2, seconds=seconds))
                        result["server_cpu_ms_per_request"] = 1e3 * (server.cpu_seconds() - cpu_before) / result["sent"]
                        samples.setdefault((name, clients, side), []).append(result)
                        log(f"round {round_ + 1}: {name:9} {clients:2} clients {side:11} "
                            f"{result['requests_per_s']:8.1f} req/s  p50 {result['p50_ms']:7.2f} ms  "
                            f"p99 {result['p99_ms']:7.2f} ms  server CPU {result['server_cpu_ms_per_request']:7.2f} ms/req")
        baseline = {name: in_process_p50(path, images, 3.0) for name, (path, images, _) in models.items()}
        batch_gain = in_process_batch_gain(resnet, 32)
        log(f"ResNet-18 in process: {batch_gain}")
    finally:
        for server in set(servers.values()):
            server.stop()

    cells: dict[str, Any] = {}
    rows = []
    for (name, clients, side), results in samples.items():
        cell = {key: round(median([r[key] for r in results]), 3)
                for key in ("requests_per_s", "p50_ms", "p99_ms", "server_cpu_ms_per_request")}
        cell["rounds"] = [{k: round(v, 3) for k, v in r.items()} for r in results]
        cells.setdefault(name, {}).setdefault(str(clients), {})[side] = cell
    for name, by_clients in cells.items():
        for clients, sides in by_clients.items():
            ref = sides["reference"]["requests_per_s"]
            for side in SIDES:
                c = sides[side]
                rows.append([name, clients, side, f"{c['requests_per_s']:.1f}", f"{c['p50_ms']:.2f}", f"{c['p99_ms']:.2f}",
                             "1.00" if side == "reference" else f"{c['requests_per_s'] / ref:.2f}",
                             f"{c['server_cpu_ms_per_request']:.2f}"])
    print(table(rows, ["model", "clients", "server", "req/s", "p50 ms", "p99 ms", "x reference", "server CPU ms/req"]))

    misses = []
    resnet32 = cells["ResNet-18"].get("32")
    lenet1 = cells["LeNet"].get("1")
    goals: dict[str, Any] = {}
    if resnet32:
        speedup = resnet32["batching"]["requests_per_s"] / resnet32["reference"]["requests_per_s"]
        gain = resnet32["batching"]["requests_per_s"] / resnet32["no-batching"]["requests_per_s"]
        goals["resnet18_32_clients_vs_reference"] = round(speedup, 2)
        goals["resnet18_32_clients_batching_vs_none"] = round(gain, 2)
        goals["resnet18_in_process_batch_32_vs_1"] = batch_gain["gain"]
        if speedup < 5:
            misses.append(f"ResNet-18 at 32 clients: {speedup:.2f}x the reference's throughput (goal 5x)")
        if gain < 1.5:
            misses.append(f"ResNet-18 at 32 clients: batching {gain:.2f}x no batching (goal 1.5x); the "
                          f"Predictor alone runs batches of 32 at {batch_gain['gain']:.2f}x the rate of single samples")
    if lenet1:
        added = lenet1["batching"]["p50_ms"] - 1e3 * baseline["LeNet"]
        goals["lenet_1_client_added_p50_ms"] = round(added, 3)
        goals["lenet_in_process_p50_ms"] = round(1e3 * baseline["LeNet"], 3)
        if added > 1.0:
            misses.append(f"LeNet at 1 client: HTTP and batching add {added:.2f} ms to the p50 (goal <= 1 ms)")
    print("goals:", goals)
    finish("serve" if sys.version_info >= (3, 11) else "serve-py310", {"machine": info, "rounds": args.rounds, "seconds_per_cell": args.seconds,
                     "in_process_p50_ms": {k: round(1e3 * v, 3) for k, v in baseline.items()},
                     "in_process_resnet18_batching": batch_gain,
                     "cells": cells, "goals": goals},
           misses, ">= 5x reference at 32 clients on ResNet-18, batching >= 1.5x, LeNet added p50 <= 1 ms")


def ensure_lenet_path() -> Path:
    if not LENET.exists():
        raise SystemExit(f"{LENET} is missing")
    return LENET


def stop_on_sigterm(*_: Any) -> None:
    raise SystemExit(143)  # so that main's finally stops the servers


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    main()
