"""A real ``nncbridge serve`` process on a free port of 127.0.0.1, for the server tests."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXPORTS = ROOT / "tests" / "data" / "console-exports"
LENET = EXPORTS / "mnist-4or9-and-lenet" / "lenet-10class-2017.nnp"
BINARY = EXPORTS / "mnist-4or9-and-lenet" / "binary-4or9-2018.nnp"
SIN = EXPORTS / "sin-regression" / "result.nnp"
IMAGES = EXPORTS / "mnist-4or9-and-lenet" / "images"
STARTUP_SECONDS = 120


class Server:
    """``nncbridge serve ARGS --port 0`` (or ``python SCRIPT``, which must print "listening on URL");
    ``url`` is where it listens. Stop it with ``stop()`` (SIGTERM, then SIGKILL after a while)."""

    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None, script: str | None = None) -> None:
        command = [sys.executable, "-c", script] if script else [sys.executable, "-m", "nncbridge", "serve", *args,
                                                                 "--host", "127.0.0.1", "--port", "0"]
        full_env = dict(os.environ)
        full_env.pop("NNCBRIDGE_TOKEN", None)
        full_env.update(env or {})
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env=full_env)
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        found = threading.Event()
        url: list[str] = []

        def read_stdout() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.stdout.append(line)
                match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
                if match and not url:
                    url.append(match.group(1))
                    found.set()
            found.set()

        def read_stderr() -> None:
            assert self.process.stderr is not None
            for line in self.process.stderr:
                self.stderr.append(line)

        self._threads = [threading.Thread(target=read_stdout, daemon=True),
                         threading.Thread(target=read_stderr, daemon=True)]
        for t in self._threads:
            t.start()
        found.wait(STARTUP_SECONDS)
        if not url:
            self.stop()
            raise RuntimeError(f"server did not start: {''.join(self.stdout)}{''.join(self.stderr)}")
        self.url = url[0]
        self.host_port = self.url.removeprefix("http://")

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._finish_reading()
        return self.process.returncode

    def _finish_reading(self) -> None:
        """Join the reader threads (the process has exited) and close its pipes."""
        for t in self._threads:
            t.join(5)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None and not any(t.is_alive() for t in self._threads):
                pipe.close()

    def resident_kib(self) -> int:
        """Resident memory of the server process (Linux /proc)."""
        with open(f"/proc/{self.process.pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def wait_exit(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.process.poll() is None:
            return self.stop()
        self._finish_reading()
        return self.process.returncode


def server_fixture(*args: str):
    """A module-scoped fixture: ``nncbridge serve ARGS`` running for the module's tests."""
    import pytest

    @pytest.fixture(scope="module")
    def server():
        running = Server(list(args))
        yield running
        running.stop()

    return server


def client_fixture():
    """A module-scoped fixture: an httpx client for the module's ``server``."""
    import httpx
    import pytest

    @pytest.fixture(scope="module")
    def client(server):
        with httpx.Client(base_url=server.url, timeout=30) as c:
            yield c

    return client


def png_bytes(image) -> bytes:
    """A PIL image (or a uint8 array) as PNG file bytes."""
    import io

    from PIL import Image

    if not isinstance(image, Image.Image):
        image = Image.fromarray(image)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def batch_invariant(predictor) -> bool:
    """Whether the backend gives every sample the same bits alone and in a batch (onnxruntime 1.32
    does for LeNet; 1.23 differs in the last bit or two). Where it does not, batched answers can
    only be expected to agree to float32 rounding, as Predictor's own batches do."""
    import numpy as np

    x = np.random.RandomState(0).uniform(0, 1, (9, *predictor.inputs[0].shape)).astype(np.float32)
    return bool(np.array_equal(predictor.predict(x), np.stack([predictor.predict(s) for s in x])))


def assert_same_values(got, want, exact: bool) -> None:
    import numpy as np

    assert np.shape(got) == np.shape(want)
    if exact:
        assert np.array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
