"""One Predictor shared by 16 threads; convert and predict outputs appear atomically even when killed."""
from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import nncbridge
from tests.models import identity_nntxt, write_nnp

ROOT = Path(__file__).resolve().parent.parent
LENET = "mnist-4or9-and-lenet/lenet-10class-2017.nnp"


def test_sixteen_threads_on_lenet_match_serial_calls(shared_exports):
    p = nncbridge.load(shared_exports / LENET)
    images = sorted((shared_exports / "mnist-4or9-and-lenet" / "images").glob("*.png"))
    rng = np.random.RandomState(1)
    inputs: list = [str(path) for path in images]  # single samples, decoded from PNG on each call
    inputs += [rng.uniform(0, 1, (n, 1, 28, 28)).astype(np.float32) for n in (1, 3, 8, 17, 32) for _ in range(4)]
    inputs += [list(images[: 1 + k % 4]) for k in range(8)]  # lists of paths: a batch
    serial = [p.predict(x) for x in inputs]
    # Console's reference: argmax of the four sample images is 4, 4, 9, 9 (shared exports README)
    assert [int(np.argmax(r)) for r in serial[:4]] == [4, 4, 9, 9]

    barrier = threading.Barrier(16)
    rounds = 6

    def worker(k: int) -> list[tuple[int, np.ndarray]]:
        barrier.wait()
        order = [(k * 7 + j) % len(inputs) for j in range(len(inputs) * rounds // 16 + 1)]
        return [(i, p.predict(inputs[i])) for i in order]

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(worker, range(16)))
    checked = 0
    for per_thread in results:
        for i, got in per_thread:
            assert got.shape == serial[i].shape
            assert np.array_equal(got, serial[i]), f"input {i} differs under concurrency"
            checked += 1
    assert checked >= len(inputs) * rounds


def test_threads_with_different_batch_sizes_and_errors_interleaved(shared_exports):
    p = nncbridge.load(shared_exports / LENET, intra_op_num_threads=2)
    good = np.random.RandomState(2).uniform(0, 1, (5, 1, 28, 28)).astype(np.float32)
    want = {n: p.predict(good[:n]) for n in range(1, 6)}  # kernels (and last bits) may differ by batch size
    barrier = threading.Barrier(16)

    def worker(k: int) -> bool:
        barrier.wait()
        for j in range(10):
            if (k + j) % 3 == 0:
                with pytest.raises(nncbridge.InputError):
                    p.predict(np.zeros((2, 1, 27, 28), np.float32))
            else:
                n = 1 + (k + j) % 5
                assert np.array_equal(p.predict(good[:n]), want[n])
        return True

    with ThreadPoolExecutor(16) as pool:
        assert all(pool.map(worker, range(16)))


# -- atomic outputs -------------------------------------------------------------------------------------------
def _cli(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "nncbridge", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, cwd=ROOT, env=env)


def _kill_while_writing(proc: subprocess.Popen, folder: Path, final: str, timeout: float = 60) -> list[str]:
    """SIGKILL ``proc`` as soon as its temporary output is non-empty; the folder's names afterwards."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        partials = [p for p in folder.iterdir() if p.name.endswith(".partial")]
        if any(p.stat().st_size > 0 for p in partials if p.exists()):
            break
        assert not (folder / final).exists(), "the final file appeared before the temporary one was written"
        if proc.poll() is not None:
            pytest.fail(f"finished before it could be killed: {proc.stderr.read().decode()[-500:]}")
        time.sleep(0.002)
    else:
        proc.kill()
        pytest.fail("no temporary output appeared")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return sorted(p.name for p in folder.iterdir())


def _assert_only_partials(names: list[str], final: str) -> None:
    assert final not in names
    leftovers = [n for n in names if n.startswith(f".{final}")]
    assert leftovers, names
    for n in leftovers:
        assert n.startswith(".") and n.endswith(".partial"), n


def _big_affine_nnp(path: Path, inputs: int = 1000, outputs: int = 8000) -> Path:
    import h5py

    h5 = io.BytesIO()
    rng = np.random.RandomState(0)
    with h5py.File(h5, "w") as f:
        f.create_dataset("Affine/affine/W", data=rng.uniform(-1, 1, (inputs, outputs)).astype(np.float32))
        f.create_dataset("Affine/affine/b", data=np.zeros(outputs, np.float32))
    from tests.models import affine_nntxt

    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("network.nntxt", affine_nntxt(inputs, outputs))
        z.writestr("parameter.h5", h5.getvalue())
    return path


def test_convert_killed_while_writing_leaves_no_final_file(tmp_path):
    model = _big_affine_nnp(tmp_path / "big.nnp")  # a 32 MB ONNX file to write
    out = tmp_path / "out"
    out.mkdir()
    with _cli("convert", str(model), str(out / "model.onnx")) as proc:  # closes its stderr pipe
        names = _kill_while_writing(proc, out, "model.onnx")
    _assert_only_partials(names, "model.onnx")


def test_convert_completes_to_the_final_name_only(tmp_path):
    model = _big_affine_nnp(tmp_path / "big.nnp", 10, 20)
    with _cli("convert", str(model), str(tmp_path / "model.onnx")) as proc:
        assert proc.wait(timeout=60) == 0, proc.stderr.read().decode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.nnp", "model.onnx"]


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("csv")
    rows = np.random.RandomState(3).uniform(-1, 1, (200_000, 3))
    text = "x__0,x__1,x__2\n" + "\n".join(f"{a:.6f},{b:.6f},{c:.6f}" for a, b, c in rows) + "\n"
    path = folder / "data.csv"
    path.write_text(text)
    return path


def _start_big_predict(tmp_path: Path, big_csv: Path) -> tuple[subprocess.Popen, Path]:
    """``nncbridge predict`` over the 200,000 rows with one worker process; the process and its output folder."""
    model = write_nnp(tmp_path / "vec.nnp", identity_nntxt((3,)))
    out = tmp_path / "out"
    out.mkdir()
    return _cli("predict", str(model), str(big_csv), "-o", str(out / "result.csv"), "--quiet", "--batch-size", "16",
                "--processes", "1"), out


def test_predict_killed_while_writing_leaves_no_final_file(tmp_path, big_csv):
    proc, out = _start_big_predict(tmp_path, big_csv)
    with proc:
        names = _kill_while_writing(proc, out, "result.csv")
    _assert_only_partials(names, "result.csv")


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="finds child processes through /proc (Linux)")
def test_worker_processes_end_when_predict_is_killed(tmp_path, big_csv):
    """SIGKILL leaves a predict's worker processes no shutdown; they must not wait for tasks forever."""
    proc, out = _start_big_predict(tmp_path, big_csv)
    with proc:
        deadline = time.monotonic() + 60
        while not (workers := _children(proc.pid)):
            assert proc.poll() is None and time.monotonic() < deadline, "no worker process started"
            time.sleep(0.01)
        _kill_while_writing(proc, out, "result.csv")
    deadline = time.monotonic() + 20
    while (alive := [p for p in workers if _running(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive, f"worker processes {alive} outlived the killed predict by 20 s"


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_predict_error_midway_removes_its_temporary_file(tmp_path, big_csv):
    model = write_nnp(tmp_path / "vec.nnp", identity_nntxt((3,)))
    bad = tmp_path / "bad.csv"
    with open(big_csv) as src, open(bad, "w") as dst:
        for k, line in enumerate(src):
            dst.write("1,2,oops\n" if k == 5000 else line)
            if k > 6000:
                break
    with _cli("predict", str(model), str(bad), "-o", str(tmp_path / "result.csv"), "--quiet") as proc:
        assert proc.wait(timeout=60) == 2
        assert "line 5001" in proc.stderr.read().decode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "vec.nnp"]


def test_outputs_get_the_mode_open_gives_new_files(tmp_path):
    """Atomic outputs start as mkstemp's owner-only files; the finished file must not stay 0600."""
    from nncbridge.util.files import atomic_write_bytes

    with open(tmp_path / "plain.bin", "wb") as f:
        f.write(b"x")
    atomic_write_bytes(tmp_path / "atomic.bin", b"x")
    mode = os.stat(tmp_path / "plain.bin").st_mode & 0o777
    assert os.stat(tmp_path / "atomic.bin").st_mode & 0o777 == mode
