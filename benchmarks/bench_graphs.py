"""Issue 16: onnxruntime on nncbridge's ONNX vs on nnabla-converter's, every model, both environments.

    python3 benchmarks/bench_graphs.py [--nnabla-venv DIR] [--py310 PYTHON] [--models a,b] [--rounds 30]

Models: the sample projects (``sample_projects/*/*.nnp``), the Console exports of the test data
(``tests/data/console-exports/*/*.nnp``) and the zoo of Console-style networks of ``make_zoo.py``
(one per op family; saved with nnabla on first use into ``.work/zoo``). Each is converted by
``nnabla_cli convert -b B`` (nnabla-converter 1.39 bakes the batch in, so once per batch size) and,
inside each environment, by ``nncbridge.to_onnx`` with its defaults (symbolic batch, the opset
chosen for that environment's onnxruntime). A worker process per environment (this Python = the
modern one, and Python 3.10 with onnxruntime 1.23: ``--py310``, by default the nnabla venv's
python) times both files under onnxruntime, one intra-op thread, batch 1 and 64: median seconds
per call of this thread's CPU time (every call timed by itself; three sessions per side, each
visited for 20 ms in each of 30 rounds, in an order rotated every round; wall times are recorded
too, but on a busy machine they mostly measure the others). The table gives converter time / our
time (> 1: ours is faster); "A/A", our second session's time over our first (what noise alone
does to a ratio in that row); the largest |Δ| between both
outputs; whether onnxruntime's optimized graphs of both files have the same ops; and, per
environment, the geometric mean and the worst ratio. Where the converter fails, the table says so
and ours still runs. Each worker also times ``Predictor.predict`` against ``InferenceSession.run`` on
the very session each Predictor wraps (batch 1): the difference per call in µs, judged on the
models that run in under 0.1 ms (on the others a few per cent of noise is more than the goal). The
difference against separately made raw sessions of the same graph is printed too; it also carries
the ~10 % by which one session differs from another. A ratio's "session pairs" range is
converter time / our time over every pairing of one converter session with one of ours.

Goals (issue 16): ratio >= 1.0 on every model in both environments, geomean >= 1.1; the
Predictor within 5 µs per call of raw onnxruntime. Results go to ``results/graphs.json``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

BATCHES = (1, 64)
PREDICTOR_GOAL_US = 5.0
SESSIONS_PER_SIDE = 3
PREDICTOR_MODEL_MAX_S = 1e-4
ZOO = c.WORK / "zoo"
GRAPHS = c.WORK / "graphs"


# -- the models -------------------------------------------------------------------------------------
def project_models() -> dict[str, Path]:
    found = sorted(c.ROOT.glob("sample_projects/*/*.nnp")) + sorted(c.ROOT.glob("tests/data/console-exports/*/*.nnp"))
    return {f"{p.parent.name}/{p.stem}": p for p in found}


def zoo_models(venv: Path, names: list[str] | None) -> dict[str, Path]:
    sys.path.insert(0, str(c.HERE))
    from make_zoo import ALL  # imports nothing of nnabla at module level

    wanted = [n for n in ALL if names is None or f"zoo/{n}" in names]
    missing = [n for n in wanted if not (ZOO / f"{n}.nnp").exists()]
    if missing:
        c.log(f"saving {', '.join(missing)} with nnabla (benchmarks/make_zoo.py)")
        subprocess.run([str(venv / "bin" / "python"), str(c.HERE / "make_zoo.py"), "--out", str(ZOO),
                        "--only", ",".join(missing)], check=True, env=c.nnabla_env(), cwd=c.ROOT,
                       stdout=subprocess.DEVNULL)
    return {f"zoo/{n}": ZOO / f"{n}.nnp" for n in wanted}


def convert_with_nnabla(venv: Path, name: str, nnp: Path, batch: int) -> tuple[Path | None, str]:
    """``nnabla_cli convert -b batch``; (path, "") or (None, the converter's last error line)."""
    out = GRAPHS / f"{name.replace('/', '__')}.converter-b{batch}.onnx"
    if out.exists() and out.stat().st_mtime >= nnp.stat().st_mtime:
        return out, ""
    out.parent.mkdir(parents=True, exist_ok=True)
    run = subprocess.run([str(venv / "bin" / "nnabla_cli"), "convert", "-b", str(batch), str(nnp), str(out)],
                         env=c.nnabla_env(), capture_output=True, text=True)
    if run.returncode == 0 and out.exists():
        return out, ""
    lines = [line.strip() for line in (run.stderr + run.stdout).splitlines() if line.strip()]
    reason = next((line for line in reversed(lines) if "Error" in line or "error" in line), lines[-1] if lines else "")
    out.unlink(missing_ok=True)
    return None, reason[:300]


# -- the worker (runs inside each environment) -------------------------------------------------------
def _session(model: Any) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def optimized_ops(model: Any) -> dict[str, int]:
    """The ops of onnxruntime's graph after its optimizations ("domain:op" -> count; Flatten counts as
    Reshape, which it is here), to tell a graph difference from noise."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    with tempfile.TemporaryDirectory() as tmp:
        options.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")
        ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        nodes = onnx.load(options.optimized_model_filepath).graph.node
    ops = [("Reshape" if n.op_type == "Flatten" else n.op_type) for n in nodes]
    names = [f"{n.domain.replace('com.microsoft', 'ms')}:{op}" if n.domain else op for n, op in zip(nodes, ops)]
    return {name: names.count(name) for name in sorted(set(names))}


def _feeds(session: Any, batch: int, seed: int = 0) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    feeds = {}
    for i in session.get_inputs():
        shape = [batch if k == 0 and not isinstance(d, int) else d for k, d in enumerate(i.shape)]
        feeds[i.name] = rng.random([int(d) for d in shape], dtype=np.float32)
    return feeds


def time_calls(sides: dict[str, list[Callable[[], Any]]], rounds: int, round_seconds: float) -> dict[str, dict[str, Any]]:
    """Each call timed by itself. A side has one or more callables (sessions); every round visits
    each of them for ``round_seconds``, in an order rotated from round to round. Per side, over
    all its calls: the median CPU time of this thread (with one intra-op thread onnxruntime
    computes in the calling thread, so this is its work, whatever else the machine runs), its
    10th percentile, the median wall time, and the median CPU time of each callable."""
    import numpy as np

    slots = [(side, i, call) for side, calls in sides.items() for i, call in enumerate(calls)]
    cpu: dict[tuple[str, int], list[float]] = {(side, i): [] for side, i, _ in slots}
    wall: dict[tuple[str, int], list[float]] = {(side, i): [] for side, i, _ in slots}
    for _, _, call in slots:
        call()  # warm-up: onnxruntime plans its buffers at the first run of a shape
    for r in range(rounds):
        for side, i, call in slots[r % len(slots):] + slots[:r % len(slots)]:
            end = time.perf_counter() + round_seconds
            while True:
                start, start_cpu = time.perf_counter(), time.thread_time()
                call()
                stop_cpu, stop = time.thread_time(), time.perf_counter()
                cpu[side, i].append(stop_cpu - start_cpu)
                wall[side, i].append(stop - start)
                if stop >= end:
                    break
    result: dict[str, dict[str, Any]] = {}
    for side, calls in sides.items():
        side_cpu = [t for i in range(len(calls)) for t in cpu[side, i]]
        side_wall = [t for i in range(len(calls)) for t in wall[side, i]]
        result[side] = {"cpu": float(np.median(side_cpu)), "cpu_p10": float(np.percentile(side_cpu, 10)),
                        "wall": float(np.median(side_wall)), "calls": len(side_cpu),
                        "cpu_per_session": [float(np.median(cpu[side, i])) for i in range(len(calls))]}
    return result


def worker(job_path: str) -> None:
    import numpy as np
    import onnxruntime as ort

    import nncbridge
    from nncbridge.export.onnx_export import default_opset

    job = json.loads(Path(job_path).read_text())
    rounds = job["rounds"]
    out: dict[str, Any] = {"machine": c.machine(), "opset": default_opset(), "models": {}}
    for m in job["models"]:
        entry: dict[str, Any] = {}
        out["models"][m["name"]] = entry
        try:
            proto = nncbridge.to_onnx(m["nnp"])
        except nncbridge.NncBridgeError as e:
            entry["ours_error"] = str(e).splitlines()[0][:300]
            continue
        serialized = proto.SerializeToString()
        entry["opset"] = proto.opset_import[0].version
        entry["nodes"] = len(proto.graph.node)
        entry["optimized_ops"] = {"ours": optimized_ops(serialized)}
        if m["converter"].get("1"):
            entry["optimized_ops"]["converter"] = optimized_ops(m["converter"]["1"])
        ours: list[Any] = []
        for batch in job["batches"]:
            row: dict[str, Any] = {}
            entry[str(batch)] = row
            theirs_path = m["converter"].get(str(batch))
            # Several sessions per side, created alternately: one session can be up to ~10 % faster or
            # slower than another on the same file (where its buffers landed); ours vs ours again
            # ("A/A", the first two sessions) shows how much.
            ours, theirs = [], []
            for _ in range(SESSIONS_PER_SIDE):
                ours.append(_session(serialized))
                if theirs_path:
                    try:
                        theirs.append(_session(theirs_path))
                    except Exception as e:  # the converter's file fails in onnxruntime
                        row["converter_error"] = f"onnxruntime: {str(e).splitlines()[0][:200]}"
                        theirs_path = None
            feeds = _feeds(ours[0], batch)
            sides: dict[str, list[Callable[[], Any]]] = {"ours": [lambda s=s, f=feeds: s.run(None, f) for s in ours]}
            if theirs:
                their_feeds = {i.name: a.reshape([int(d) for d in i.shape])
                               for i, a in zip(theirs[0].get_inputs(), feeds.values())}
                ref = theirs[0].run(None, their_feeds)[0]
                got = ours[0].run(None, feeds)[0]
                row["max_abs_diff"] = float(np.max(np.abs(got.reshape(-1).astype(np.float64) - ref.reshape(-1)))) \
                    if got.size == ref.size else None
                sides["theirs"] = [lambda s=s, f=their_feeds: s.run(None, f) for s in theirs]
            times = time_calls(sides, rounds, job["round_seconds"])
            for side, t in times.items():
                row.update({f"{side}_s": t["cpu"], f"{side}_p10_s": t["cpu_p10"], f"{side}_wall_s": t["wall"],
                            f"{side}_calls": t["calls"], f"{side}_per_session_s": t["cpu_per_session"]})
        # The Predictor against raw sessions on the same graph, batch 1.
        raw = [_session(serialized) for _ in range(SESSIONS_PER_SIDE)]
        predictors = [nncbridge.load(m["nnp"], intra_op_num_threads=1, inter_op_num_threads=1)
                      for _ in range(SESSIONS_PER_SIDE)]
        feeds = _feeds(raw[0], 1)
        x = next(iter(feeds.values())) if len(feeds) == 1 else feeds
        # "own": InferenceSession.run on the very session each Predictor wraps (the benchmark may
        # reach inside): the Predictor's own cost, without the ~10 % one session differs from another.
        own = [p._backend.session for p in predictors]  # noqa: SLF001
        times = time_calls({"raw": [lambda s=s, f=feeds: s.run(None, f) for s in raw],
                            "own": [lambda s=s, f=feeds: s.run(None, f) for s in own],
                            "predictor": [lambda p=p: p.predict(x) for p in predictors]}, rounds, job["round_seconds"])
        entry["predictor_overhead_us"] = float(np.median(
            [p - o for p, o in zip(times["predictor"]["cpu_per_session"], times["own"]["cpu_per_session"])])) * 1e6
        entry["predictor_vs_separate_sessions_us"] = (times["predictor"]["cpu"] - times["raw"]["cpu"]) * 1e6
        entry["predictor_overhead_wall_us"] = (times["predictor"]["wall"] - times["own"]["wall"]) * 1e6
        entry["raw_b1_s"] = times["raw"]["cpu"]
        c.log(f"  [{ort.__version__}] {m['name']} done")
    print(json.dumps(out))


def run_worker(python: str, job: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(job, f)
    try:
        run = subprocess.run([python, str(Path(__file__).resolve()), "--worker", f.name], env=env,
                             stdout=subprocess.PIPE, text=True, check=True, cwd=c.ROOT)
    finally:
        os.unlink(f.name)
    return dict(json.loads(run.stdout.strip().splitlines()[-1]))


# -- reporting -------------------------------------------------------------------------------------
def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def session_pair_ratios(row: dict[str, Any]) -> list[float]:
    """converter time / our time for every pairing of one converter session with one of ours: how far
    the ratio moves with where each session's buffers landed. All below 1.0 means slower beyond that."""
    return [t / o for t in row["theirs_per_session_s"] for o in row["ours_per_session_s"]]


def graph_note(entry: dict[str, Any]) -> str:
    ops = entry.get("optimized_ops", {})
    if "converter" not in ops:
        return ""
    ours, theirs = ops["ours"], ops["converter"]
    if ours == theirs:
        return "same"
    return f"{sum(ours.values())} vs {sum(theirs.values())} nodes"


def report(env_name: str, result: dict[str, Any], batches: list[int]) -> dict[str, Any]:
    rows, ratios, misses, below = [], [], [], []
    for name, entry in result["models"].items():
        if "ours_error" in entry:
            rows.append([name, "-", "ours fails: " + entry["ours_error"][:60], "", "", "", "", "", ""])
            misses.append(f"{env_name} {name}: nncbridge cannot convert it")
            continue
        note = graph_note(entry)
        for batch in batches:
            row = entry[str(batch)]
            ours, theirs = row["ours_s"], row.get("theirs_s")
            first, second = row["ours_per_session_s"][:2]
            noise = second / first
            row["ratio_ours_again"] = round(noise, 3)
            if theirs is None:
                rows.append([name, batch, c.ms(ours), "converter fails", "ours runs", "", f"{noise:.2f}", "", ""])
                continue
            r = theirs / ours
            ratios.append(r)
            row["ratio"] = round(r, 3)
            pairs = session_pair_ratios(row)
            row["session_pair_ratios"] = [round(min(pairs), 3), round(max(pairs), 3)]
            diff = row.get("max_abs_diff")
            rows.append([name, batch, c.ms(ours), c.ms(theirs), f"{r:.2f}", f"{min(pairs):.2f}-{max(pairs):.2f}",
                         f"{noise:.2f}", "-" if diff is None else f"{diff:.1g}", note])
            if r < 1.0:
                below.append(row)
                verdict = "slower in every pairing of sessions" if max(pairs) < 1.0 else \
                    "a tie: session pairs on both sides of 1.0"
                misses.append(f"{env_name} {name} b{batch}: {r:.2f}, {verdict} (ours vs ours again {noise:.2f}; "
                              f"optimized graphs: {note or 'not compared'})")
    # The Predictor's cost per call does not depend on the model, but a model's own noise does (a few
    # per cent of its time): it is resolved to a microsecond only on models that run in < 0.1 ms.
    overheads = {n: e["predictor_overhead_us"] for n, e in result["models"].items()
                 if "predictor_overhead_us" in e and e["raw_b1_s"] < PREDICTOR_MODEL_MAX_S}
    separate = [e["predictor_vs_separate_sessions_us"] for n, e in result["models"].items()
                if n in overheads and "predictor_vs_separate_sessions_us" in e]
    print(f"\n## {env_name}: Python {result['machine']['python']}, onnxruntime {result['machine']['onnxruntime']}, "
          f"nncbridge default opset {result['opset']}\n")
    print(c.table(rows, ["model", "batch", "ours", "converter", "ratio", "session pairs", "A/A", "max|Δ|",
                         "graph after ort"]))
    slower = [r for r in below if r["session_pair_ratios"][1] < 1.0]
    summary = {"geomean": round(geomean(ratios), 3), "worst": round(min(ratios), 3) if ratios else None,
               "compared": len(ratios), "below_1": len(below), "below_1_in_every_session_pair": len(slower),
               "predictor_overhead_us_median": round(c.median(list(overheads.values())), 2) if overheads else None,
               "predictor_overhead_us_max": round(max(overheads.values()), 2) if overheads else None}
    print(f"\ngeomean converter/ours {summary['geomean']:.2f}, worst {summary['worst']:.2f} over {len(ratios)} "
          f"comparisons; Predictor.predict - raw run at batch 1 (CPU µs per call, {len(overheads)} models under "
          f"0.1 ms, each against the session it wraps): median {summary['predictor_overhead_us_median']}, "
          f"max {summary['predictor_overhead_us_max']}"
          + (f"; against separate raw sessions: median {c.median(separate):.2f}, max {max(separate):.2f}" if separate else ""))
    print(f"{len(below)} of {len(ratios)} ratios below 1.0, {len(slower)} of them in every pairing of one converter "
          "session with one of ours")
    if summary["geomean"] < 1.1:
        misses.append(f"{env_name}: geomean {summary['geomean']:.2f} < 1.1")
    slow = {n: round(v, 1) for n, v in overheads.items() if v > PREDICTOR_GOAL_US}
    if slow:
        misses.append(f"{env_name}: Predictor more than {PREDICTOR_GOAL_US} µs over raw onnxruntime on {slow}")
    return {"summary": summary, "misses": misses}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nnabla-venv", help=f"venv with nnabla + nnabla-converter 1.39 (or ${c.VENV_ENV})")
    parser.add_argument("--py310", help="Python 3.10 with onnxruntime 1.23 and nncbridge's dependencies "
                        "(default: $NNCBRIDGE_BENCH_PY310, else the nnabla venv's python)")
    parser.add_argument("--models", help="comma-separated names as in the table (default: all)")
    parser.add_argument("--rounds", type=int, default=30, help="alternations between the sides")
    parser.add_argument("--round-seconds", type=float, default=0.02, help="time per side and round")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return 0

    venv = c.nnabla_venv(args.nnabla_venv)
    py310 = args.py310 or os.environ.get("NNCBRIDGE_BENCH_PY310") or str(venv / "bin" / "python")
    names = args.models.split(",") if args.models else None
    models = {n: p for n, p in project_models().items() if names is None or n in names}
    models.update(zoo_models(venv, names))
    converter: dict[str, dict[str, str]] = {}
    converter_errors: dict[str, str] = {}
    for name, nnp in models.items():
        converter[name] = {}
        for batch in BATCHES:
            path, error = convert_with_nnabla(venv, name, nnp, batch)
            if path is None:
                converter_errors[f"{name}@{batch}"] = error
                c.log(f"converter fails on {name} (-b {batch}): {error}")
            else:
                converter[name][str(batch)] = str(path)
    job = {"models": [{"name": n, "nnp": str(p), "converter": converter[n]} for n, p in models.items()],
           "batches": list(BATCHES), "rounds": args.rounds, "round_seconds": args.round_seconds}
    envs = {"modern": sys.executable, "python3.10": py310}
    results: dict[str, Any] = {"goals": "converter time / our time >= 1.0 on every model and >= 1.1 geomean in both "
                                        f"environments; Predictor within {PREDICTOR_GOAL_US} µs of raw onnxruntime",
                               "converter_errors": converter_errors, "environments": {}}
    misses: list[str] = []
    for env_name, python in envs.items():
        c.log(f"timing in {env_name} ({python})")
        result = run_worker(python, job, c.modern_env())
        verdict = report(env_name, result, list(BATCHES))
        misses += verdict["misses"]
        results["environments"][env_name] = {**result, "summary": verdict["summary"]}
    for key, error in sorted(converter_errors.items()):
        print(f"converter fails on {key}: {error}")
    c.finish("graphs", results, misses, "ratio >= 1.0 everywhere, geomean >= 1.1, Predictor overhead <= 5 µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
