"""Run one fuzz case end to end (``nncbridge info``/``check`` reports, read -> check -> convert ->
predict) in a worker process.

A failure is: an exception that is not an NncBridgeError, a command that exits with another code
than 0, 1 or 2 or prints a traceback, a case over the CPU time limit or hung (no result after four
times the limit by the clock), a worker whose peak memory passed the limit, or a file written anywhere
but the requested outputs.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import random
import resource
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

TIME_LIMIT = 5.0
# Each case writes its model and ONNX output; on tmpfs the atomic writer's fsync costs nothing.
_SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
MEMORY_LIMIT = 1 << 30


@dataclass
class Outcome:
    case: int
    status: str  # "ok", "rejected" (clean NncBridgeError), "failure"
    detail: str = ""
    seconds: float = 0.0


def exercise(path: Path, workdir: Path) -> str:
    """Everything a user would do with a file; returns 'ok' or 'rejected'; other exceptions escape."""
    import contextlib
    import io

    import numpy as np

    import nncbridge
    from nncbridge.cli import main
    from nncbridge.export.onnx_export import save_onnx

    for command in (["info"], ["info", "--json"], ["check"]):  # their reports, as a user sees them
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
            code = main(command + [str(path)])
        assert code in (0, 1, 2), f"nncbridge {command[0]} exited with {code}"
        assert "Traceback" not in err.getvalue()
    try:
        model = nncbridge.read(path)
        nncbridge.check(model)
        proto = nncbridge.to_onnx(model)
        save_onnx(proto, workdir / "out.onnx")
        predictor = nncbridge.load(path, intra_op_num_threads=1)
        feeds = {i.name: np.zeros((2,) + i.shape, np.float32) for i in predictor.inputs}
        predictor.predict(feeds if len(feeds) > 1 else next(iter(feeds.values())))
        return "ok"
    except nncbridge.NncBridgeError:
        return "rejected"


def _snapshot(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _worker(tasks: mp.Queue, results: mp.Queue, seeds: list[bytes]) -> None:
    soft = 4 << 30
    resource.setrlimit(resource.RLIMIT_AS, (soft, soft))
    from tests.fuzz.mutate import mutate_nnp

    try:
        import onnxruntime

        onnxruntime.set_default_logger_severity(3)
    except ImportError:
        pass
    pid = os.getpid()
    parent = os.getppid()
    home = os.getcwd()
    while True:
        try:
            case = tasks.get(timeout=2.0)
        except queue.Empty:
            if os.getppid() != parent:
                return  # the campaign is gone
            continue
        if case is None:
            return
        results.put(("start", pid, case))
        rng = random.Random(case)
        data = seeds[case % len(seeds)]
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            data = mutate_nnp(rng, data)
        with tempfile.TemporaryDirectory(prefix="nncbridge-fuzz-", dir=_SCRATCH) as tmp:
            root = Path(tmp)
            (root / "in").mkdir()
            (root / "out").mkdir()
            model = root / "in" / "model.nnp"
            model.write_bytes(data)
            before = _snapshot(root)
            os.chdir(root)  # relative paths a hostile file might smuggle in land here, where they are seen
            start, start_cpu = time.perf_counter(), time.process_time()
            try:
                status, detail = exercise(model, root / "out"), ""
            except MemoryError:
                status, detail = "failure", "MemoryError"
            except Exception:
                status, detail = "failure", traceback.format_exc(limit=6)
            seconds = time.perf_counter() - start
            # CPU time (all threads), so that a machine busy with other work fails no case; a case that
            # blocks without computing is caught by the campaign's wall-clock "hung" check
            cpu_seconds = time.process_time() - start_cpu
            os.chdir(home)
            stray = _snapshot(root) - before - {"out/out.onnx"}
            if stray:
                status, detail = "failure", f"wrote unexpected files: {sorted(stray)}"
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            if peak > MEMORY_LIMIT:
                status, detail = "failure", f"peak memory {peak >> 20} MiB"
            if cpu_seconds > TIME_LIMIT and status != "failure":
                status, detail = "failure", f"took {cpu_seconds:.1f} s of CPU time ({seconds:.1f} s)"
        results.put(("done", pid, Outcome(case, status, detail, seconds)))
        if peak > MEMORY_LIMIT:
            return  # the parent starts a fresh worker


def run_campaign(seed_files: list[Path], cases: range, workers: int = 2, progress: bool = False,
                 deadline: float | None = None, on_failure: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Run ``cases`` (each an integer seed) over mutations of ``seed_files``; returns the outcomes.

    With ``deadline`` (a ``time.time()`` value) the run stops then and returns the cases finished so far.
    """
    seeds = [p.read_bytes() for p in seed_files]
    ctx = mp.get_context("spawn")
    tasks: mp.Queue = ctx.Queue()
    results: mp.Queue = ctx.Queue()
    for case in cases:
        tasks.put(case)
    procs: dict[int, mp.Process] = {}
    running: dict[int, tuple[int, float]] = {}  # pid -> (case, start time)
    outcomes: dict[int, Outcome] = {}

    def start_worker() -> None:
        proc = ctx.Process(target=_worker, args=(tasks, results, seeds), daemon=True)
        proc.start()
        procs[proc.pid] = proc

    for _ in range(workers):
        start_worker()
    while len(outcomes) < len(cases):
        if deadline is not None and time.time() > deadline:
            for proc in procs.values():
                proc.kill()
            for proc in procs.values():
                proc.join()
            procs.clear()
            break
        try:
            kind, pid, payload = results.get(timeout=1.0)
            if kind == "start":
                running[pid] = (payload, time.monotonic())
            else:
                running.pop(pid, None)
                outcomes[payload.case] = payload
                if on_failure is not None and payload.status == "failure":
                    on_failure(payload)
                if progress and len(outcomes) % 5000 == 0:
                    failures = sum(o.status == "failure" for o in outcomes.values())
                    print(f"{len(outcomes)} cases, {failures} failures", flush=True)
        except queue.Empty:
            pass
        now = time.monotonic()
        for pid, proc in list(procs.items()):
            case_started = running.get(pid)
            hung = case_started is not None and now - case_started[1] > TIME_LIMIT * 4
            if hung:
                proc.kill()
                proc.join()
            if hung or not proc.is_alive():
                if case_started is not None:
                    reason = "hung (killed)" if hung else f"worker died (exit code {proc.exitcode})"
                    outcomes[case_started[0]] = Outcome(case_started[0], "failure", reason, now - case_started[1])
                    if on_failure is not None:
                        on_failure(outcomes[case_started[0]])
                    running.pop(pid, None)
                del procs[pid]
                if len(outcomes) < len(cases):
                    start_worker()
    tasks.cancel_join_thread()  # cases left unread after a deadline must not block this process's exit
    for _ in procs:
        tasks.put(None)
    for proc in procs.values():
        proc.join(timeout=5)
        if proc.is_alive():
            proc.kill()
    return [outcomes[c] for c in cases if c in outcomes]


def derived_seeds(seed_files: list[Path], folder: Path) -> list[Path]:
    """Each seed rewritten with h5 parameters, and with a binary-protobuf network, into ``folder``."""
    import zipfile

    import nncbridge
    from nncbridge.format.schema import new_nnp_message

    made = []
    for path in seed_files:
        try:
            model = nncbridge.read(path)
            h5 = folder / f"{path.stem}-h5.nnp"
            nncbridge.write(model, h5, parameter_format="h5")
            made.append(h5)
            text_copy = folder / f"{path.stem}-text.nnp"
            nncbridge.write(model, text_copy)
            from google.protobuf import text_format

            with zipfile.ZipFile(text_copy) as z:
                msg = new_nnp_message()
                text_format.Merge(z.read("network.nntxt").decode(), msg)
                params = z.read("parameter.protobuf")
            binary = folder / f"{path.stem}-binary.nnp"
            with zipfile.ZipFile(binary, "w", zipfile.ZIP_DEFLATED) as z:
                z.writestr("nnp_version.txt", "0.1\n")
                z.writestr("network.protobuf", msg.SerializeToString())
                z.writestr("parameter.protobuf", params)
            made.append(binary)
        except nncbridge.NncBridgeError:
            continue
    return made


def default_seed_files() -> list[Path]:
    root = Path(__file__).resolve().parents[2]
    candidates = sorted((root / "tests" / "data" / "console-exports").glob("*/*.nnp"))
    candidates += sorted((root / "sample_projects").glob("*/*.nnp"))
    return candidates


def campaign_seeds(folder: Path) -> list[Path]:
    """The real seed files plus their h5 / binary-network rewrites (written into ``folder``)."""
    seeds = default_seed_files()
    return seeds + derived_seeds(seeds, folder)
