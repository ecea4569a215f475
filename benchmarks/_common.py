"""Shared helpers of the benchmark scripts: the nnabla venv, the models, timing, results."""
from __future__ import annotations

import glob
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work"
RESULTS = HERE / "results"
LENET = ROOT / "tests" / "data" / "console-exports" / "mnist-4or9-and-lenet" / "lenet-10class-2017.nnp"
DIGITS = LENET.parent / "images"
RESNET = WORK / "resnet18.nnp"
NNABLA_VERSION = "1.39.0"
VENV_ENV = "NNCBRIDGE_BENCH_NNABLA_VENV"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- environments -----------------------------------------------------------------------------------
def _python310() -> str | None:
    found = shutil.which("python3.10")
    if found:
        return found
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10*/bin/python3.10")))
    return candidates[-1] if candidates else None


def nnabla_venv(explicit: str | None = None) -> Path:
    """The Python 3.10 venv with nnabla and nnabla-converter 1.39: ``--nnabla-venv``, $NNCBRIDGE_BENCH_NNABLA_VENV,
    or benchmarks/.work/nnabla-venv (created on first use: ~2 GB, several minutes)."""
    venv = Path(explicit or os.environ.get(VENV_ENV) or WORK / "nnabla-venv")
    if (venv / "bin" / "nnabla_cli").exists():
        return venv
    if explicit or os.environ.get(VENV_ENV):
        raise SystemExit(f"{venv} has no bin/nnabla_cli; give a venv with nnabla and nnabla-converter {NNABLA_VERSION}")
    python = _python310()
    if python is None:
        raise SystemExit("nnabla-converter needs Python 3.10: put python3.10 on PATH or install it with pyenv")
    log(f"creating {venv} with {python} (nnabla {NNABLA_VERSION} + nnabla-converter, TensorFlow inside; takes minutes)")
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run(pip + ["--upgrade", "pip"], check=True)
    subprocess.run(pip + [f"nnabla=={NNABLA_VERSION}", f"nnabla-converter=={NNABLA_VERSION}"], check=True)
    return venv


def ensure_resnet(venv: Path, head: str = "global") -> Path:
    """The ResNet-18 model (made by make_models.py on first use); ``head``: global, average or mean."""
    path = RESNET if head == "global" else RESNET.with_name(f"resnet18-{head}.nnp")
    if not path.exists():
        log(f"saving {path} with nnabla (benchmarks/make_models.py --head {head})")
        subprocess.run([str(venv / "bin" / "python"), str(HERE / "make_models.py"), "--out", str(path),
                        "--head", head], check=True, env=nnabla_env(), stdout=subprocess.DEVNULL)
    return path


def ensure_lenet() -> Path:
    if not LENET.exists():
        raise SystemExit(f"{LENET} is missing (the Console exports the tests use live in tests/data/console-exports)")
    return LENET


def modern_env(bytecode_cache: bool = True) -> dict[str, str]:
    """Environment for nncbridge subprocesses. A pip-installed package has compiled bytecode; this
    editable checkout only gets it if Python may write it, so it is cached under .work/pycache
    (PYTHONDONTWRITEBYTECODE, if set, would make every start-up recompile nncbridge)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "") if env.get("PYTHONPATH") else str(ROOT)
    if bytecode_cache:
        env["PYTHONPYCACHEPREFIX"] = str(WORK / "pycache")
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
    return env


def nnabla_env(threads: int | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONPYCACHEPREFIX", None)
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def nncbridge_command() -> list[str]:
    script = Path(sys.executable).parent / "nncbridge"
    return [str(script)] if script.exists() else [sys.executable, "-m", "nncbridge"]


# -- measuring ------------------------------------------------------------------------------------
@dataclass
class Run:
    seconds: float
    cpu_seconds: float
    max_rss_mib: float
    stdout: str


# The command is started by a small helper process: a child's ru_maxrss starts at its parent's RSS at
# fork time (the high-water mark survives exec), so forking from this big process would hide it.
_SPAWNER = (
    "import json, os, subprocess, sys, time\n"
    "t = time.perf_counter(); p = subprocess.Popen(sys.argv[1:]); _, st, ru = os.wait4(p.pid, 0)\n"
    "sys.stderr.write('\\n@@rusage ' + json.dumps([time.perf_counter() - t, ru.ru_utime + ru.ru_stime,"
    " ru.ru_maxrss, os.waitstatus_to_exitcode(st)]) + '\\n')\n")


def run_measured(cmd: Sequence[Any], env: dict[str, str] | None = None, cwd: str | Path | None = None,
                 check: bool = True) -> Run:
    """Run a command: wall time, CPU time (user+sys) and peak RSS of that process alone (wait4)."""
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        subprocess.run([sys.executable, "-S", "-c", _SPAWNER] + [str(c) for c in cmd], env=env, cwd=cwd,
                       stdout=out, stderr=err, check=False)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    stderr, _, usage = stderr.rpartition("@@rusage ")
    seconds, cpu, max_rss_kib, code = json.loads(usage)
    if check and code != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({code}):\n{stderr[-3000:]}")
    return Run(seconds, cpu, max_rss_kib / 1024.0, stdout)


Command = tuple[Sequence[Any], "dict[str, str] | None"]


def time_alternating(commands: dict[str, Command], repeats: int, warmup: int = 1,
                     cwd: str | Path | None = None) -> dict[str, list[Run]]:
    """Run each command ``warmup`` times untimed, then ``repeats`` times in alternation, so a
    machine busy with other work slows both sides alike."""
    for cmd, env in commands.values():
        for _ in range(warmup):
            run_measured(cmd, env, cwd)
    runs: dict[str, list[Run]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, (cmd, env) in commands.items():
            runs[name].append(run_measured(cmd, env, cwd))
    return runs


def summary(runs: list[Run]) -> dict[str, Any]:
    return {"wall_s": round(median([r.seconds for r in runs]), 3),
            "cpu_s": round(median([r.cpu_seconds for r in runs]), 3),
            "max_rss_mib": round(max(r.max_rss_mib for r in runs), 1),
            "runs_wall_s": [round(r.seconds, 3) for r in runs]}


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


Timer = Callable[[int], "tuple[float, float]"]


def local_timer(call: Callable[[], Any]) -> Timer:
    """A timer for a callable of this process: ``n`` calls -> (wall, CPU) seconds per call."""
    def timer(n: int) -> tuple[float, float]:
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            call()
        return (time.perf_counter() - start) / n, (time.process_time() - start_cpu) / n
    return timer


def interleaved(timers: dict[str, Timer], rounds: int, min_round_seconds: float = 0.2,
                warmup: int = 2) -> dict[str, dict[str, float]]:
    """Median seconds per call of each timer (wall and CPU time), measured in alternating rounds
    so that load from elsewhere on the machine hits all of them alike."""
    per_round: dict[str, int] = {}
    for name, timer in timers.items():
        for _ in range(warmup):
            timer(1)
        once = max(timer(1)[0], 1e-6)
        per_round[name] = max(1, int(min_round_seconds / once))
    wall: dict[str, list[float]] = {name: [] for name in timers}
    cpu: dict[str, list[float]] = {name: [] for name in timers}
    for _ in range(rounds):
        for name, timer in timers.items():
            w, c = timer(per_round[name])
            wall[name].append(w)
            cpu[name].append(c)
    return {name: {"wall": median(wall[name]), "cpu": median(cpu[name]), "rounds": len(wall[name]),
                   "calls_per_round": per_round[name]} for name in timers}


# -- reporting ------------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    import numpy
    import onnxruntime

    cpu = platform.processor()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
            "python": platform.python_version(),
            "numpy": numpy.__version__, "onnxruntime": onnxruntime.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def table(rows: list[Sequence[Any]], header: Sequence[str]) -> str:
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.2f} s"


def ratio(reference: float, ours: float) -> float:
    return round(reference / ours, 2) if ours > 0 else float("inf")


def write_results(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    return path


def finish(name: str, results: dict[str, Any], misses: list[str], targets: str = "") -> None:
    """Record the missed targets, print them, and write ``results/<name>.json``."""
    results["missed_targets"] = misses
    print(f"\nTargets: {targets + ': ' if targets else ''}" + ("all met" if not misses else "MISSED: " + "; ".join(misses)))
    print(f"results: {write_results(name, results)}")
