"""Issue 17 start-up: whole-process ``nncbridge convert`` vs ``nnabla_cli convert``, and
``import nncbridge`` + ``load`` + first ``predict`` vs the same with nnabla, on LeNet, in each
given Python environment (the modern one and the Python 3.10 nnabla one).

    python benchmarks/bench_startup.py [--python .venvs/dev310/bin/python ...] [--repeats 7]

1. ``nncbridge convert LENET out.onnx`` (each environment's Python, this checkout, bytecode cached
   as a pip install has it) against ``nnabla_cli convert LENET out.onnx -b 1`` (nnabla-converter
   1.39 in $NNCBRIDGE_BENCH_NNABLA_VENV): wall time of the whole process, runs alternating between
   all sides after one warm-up each, medians. Target ≥ 20×.
2. A process that imports nncbridge, loads LeNet and predicts one PNG digit (the README's first
   example): the time from before ``import nncbridge`` to after the first ``predict``, measured inside
   the process (interpreter start-up excluded; its whole wall time is recorded too), against nnabla
   doing the same (``NnpLoader`` -> ``get_network`` -> image read, /255 -> ``forward``) in its venv.
   Target ≤ 0.3 s; the ratio to nnabla is for reference. Medians of alternating runs.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

IMAGE = sorted(c.DIGITS.glob("*.png"))[0]

OURS = """
import json, sys, time
t0, c0 = time.perf_counter(), time.process_time()
import nncbridge
t1 = time.perf_counter()
predictor = nncbridge.load(sys.argv[1])
t2 = time.perf_counter()
scores = predictor.predict(sys.argv[2])
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "predict": t3 - t2, "total": t3 - t0,
                  "total_cpu": time.process_time() - c0, "argmax": int(scores.argmax())}))
"""

NNABLA = """
import json, logging, sys, time
t0, c0 = time.perf_counter(), time.process_time()
logging.disable(logging.WARNING)
import numpy as np
import nnabla
from nnabla.utils.image_utils import imread
from nnabla.utils.nnp_graph import NnpLoader
t1 = time.perf_counter()
net = NnpLoader(sys.argv[1]).get_network("MainRuntime", batch_size=1)
t2 = time.perf_counter()
x, y = list(net.inputs.values())[0], list(net.outputs.values())[0]
x.d = imread(sys.argv[2], grayscale=True).reshape(x.shape) / 255.0
y.forward(clear_buffer=True)
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "predict": t3 - t2, "total": t3 - t0,
                  "total_cpu": time.process_time() - c0, "argmax": int(y.d.argmax())}))
"""


def env_label(python: str) -> str:
    done = c.run_measured([python, "-c", "import platform, numpy, google.protobuf as p; "
                           "print(f'Python {platform.python_version()}, numpy {numpy.__version__}, protobuf {p.__version__}')"],
                          c.modern_env())
    return done.stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", action="append", default=[],
                        help="another environment's Python to measure nncbridge in (repeatable); this one is always measured")
    parser.add_argument("--nnabla-venv", help=f"venv with nnabla + nnabla-converter 1.39 (or ${c.VENV_ENV})")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    venv = c.nnabla_venv(args.nnabla_venv)
    pythons = [sys.executable] + [os.path.abspath(p) for p in args.python]  # not resolved: a venv's python is a symlink
    labels = {p: env_label(p) for p in pythons}
    out = c.WORK / "startup"
    out.mkdir(parents=True, exist_ok=True)
    lenet = c.ensure_lenet()
    results: dict = {"machine": c.machine(), "model": str(lenet.relative_to(c.ROOT)), "image": IMAGE.name,
                     "environments": labels, "convert": {}, "first_predict": {}}

    commands: dict[str, c.Command] = {}
    for i, python in enumerate(pythons):
        commands[f"convert/{labels[python]}"] = (
            [python, "-m", "nncbridge", "convert", lenet, out / f"lenet{i}.onnx"], c.modern_env())
        commands[f"predict/{labels[python]}"] = ([python, "-c", OURS, lenet, IMAGE], c.modern_env())
    commands["convert/nnabla_cli"] = ([venv / "bin" / "nnabla_cli", "convert", lenet, out / "lenet.converter.onnx",
                                       "-b", "1"], c.nnabla_env())
    commands["predict/nnabla"] = ([venv / "bin" / "python", "-c", NNABLA, lenet, IMAGE], c.nnabla_env())
    c.log(f"{len(commands)} commands, alternating, 1 warm-up + {args.repeats} runs each")
    runs = c.time_alternating(commands, args.repeats)

    theirs = c.summary(runs["convert/nnabla_cli"])
    for python in pythons:
        ours = c.summary(runs[f"convert/{labels[python]}"])
        results["convert"][labels[python]] = {"nncbridge": ours, "nnabla_cli": theirs, "target": 20.0,
                                              "speedup": c.ratio(theirs["wall_s"], ours["wall_s"]),
                                              "speedup_cpu_time": c.ratio(theirs["cpu_s"], ours["cpu_s"])}

    def inside(key: str) -> dict:
        parts = [json.loads(r.stdout) for r in runs[key]]
        return {**{k: round(c.median([p[k] for p in parts]), 4) for k in ("import", "load", "predict", "total", "total_cpu")},
                "argmax": sorted({p["argmax"] for p in parts}),
                "process_wall_s": round(c.median([r.seconds for r in runs[key]]), 3),
                "runs_total_s": [round(p["total"], 4) for p in parts]}

    reference = inside("predict/nnabla")
    for python in pythons:
        ours = inside(f"predict/{labels[python]}")
        assert ours["argmax"] == reference["argmax"], (ours["argmax"], reference["argmax"])
        results["first_predict"][labels[python]] = {"nncbridge": ours, "nnabla": reference, "target_s": 0.3,
                                                    "ratio": c.ratio(reference["total"], ours["total"])}

    print("\nWhole-process LeNet conversion (median wall time)")
    print(c.table([[env, c.ms(r["nncbridge"]["wall_s"]), c.ms(r["nnabla_cli"]["wall_s"]), f"{r['speedup']}x",
                    f"{r['speedup_cpu_time']}x"] for env, r in results["convert"].items()],
                  ["nncbridge in", "nncbridge convert", "nnabla_cli convert", "speed-up", "(CPU time)"]))
    print("\nimport + load + first predict of one PNG digit, LeNet (median, inside the process)")
    parts = ("import", "load", "predict", "total", "total_cpu")
    rows = [[f"nncbridge, {env}", *(c.ms(r["nncbridge"][k]) for k in parts), c.ms(r["nncbridge"]["process_wall_s"]),
             f"{r['ratio']}x"] for env, r in results["first_predict"].items()]
    rows.append(["nnabla 1.39", *(c.ms(reference[k]) for k in parts), c.ms(reference["process_wall_s"]), "1x"])
    print(c.table(rows, ["", "import", "load", "first predict", "total", "(CPU time)", "whole process", "vs nnabla"]))
    misses = [f"convert ({env}): {r['speedup']}x < 20x" for env, r in results["convert"].items() if r["speedup"] < 20]
    misses += [f"import+load+predict ({env}): {r['nncbridge']['total']:.3f} s > 0.3 s"
               for env, r in results["first_predict"].items() if r["nncbridge"]["total"] > 0.3]
    c.finish("startup", results, misses, "convert >= 20x nnabla_cli, import+load+first predict <= 0.3 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
