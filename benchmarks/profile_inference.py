"""Where onnxruntime's time goes on one thread, and how close its convolutions are to the core's peak.

    /work/venvs/modern/bin/python benchmarks/profile_inference.py [--models lenet,resnet18] [--batches 1,64]

For each model and batch: the Predictor's graph (``nncbridge.to_onnx``, onnxruntime's default
optimizations, one intra-op thread) runs under onnxruntime's profiler. The table lists every node
after onnxruntime's fusions, its mean time per call and, for Conv / Gemm / MatMul, the arithmetic
rate (2 × multiply-adds, from the shapes the profiler records). The reference rate is one core's
float32 matrix multiply (numpy's BLAS, one thread, 1024×1024 and 2048×2048; the best of several),
measured in the same run. No nnabla needed; the ResNet-18 model comes from ``make_models.py``
(``bench_predict.py`` makes it on first use).
"""
from __future__ import annotations

import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"  # before numpy loads its BLAS

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

MODELS = {"lenet": c.LENET, "resnet18": c.RESNET}


def one_core_sgemm_gflops(seconds: float = 1.5) -> float:
    best = 0.0
    for n in (1024, 2048):
        a = np.random.default_rng(0).random((n, n), dtype=np.float32)
        b = np.random.default_rng(1).random((n, n), dtype=np.float32)
        a @ b
        deadline = time.perf_counter() + seconds / 2
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            a @ b
            best = max(best, 2 * n ** 3 / (time.perf_counter() - start) / 1e9)
    return best


def multiply_adds(op: str, args: dict) -> int:
    shapes = [next(iter(s.values())) for s in args.get("input_type_shape", [])]
    out = [next(iter(s.values())) for s in args.get("output_type_shape", [])]
    if not shapes or not out:
        return 0
    if op == "Conv" and len(shapes) > 1:
        return int(np.prod(out[0])) * int(np.prod(shapes[1][1:]))
    if op in ("Gemm", "FusedGemm", "MatMul", "FusedMatMul") and len(shapes) > 1:
        return int(np.prod(out[0])) * int(shapes[0][-1])
    return 0


def profile(model: Path, batch: int, calls: int) -> list[dict]:
    import onnxruntime as ort

    import nncbridge

    proto = nncbridge.to_onnx(str(model))
    graph_input = proto.graph.input[0]
    shape = [batch] + [d.dim_value for d in graph_input.type.tensor_type.shape.dim[1:]]
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(tmp, "profile")
        session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
        for _ in range(3):
            session.run(None, {graph_input.name: x})
        for _ in range(calls):
            session.run(None, {graph_input.name: x})
        with open(session.end_profiling()) as f:
            events = json.load(f)
    nodes: dict[str, dict] = {}
    runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    per_node: dict[str, list[float]] = defaultdict(list)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            name = e["name"][: -len("_kernel_time")]
            per_node[name].append(e["dur"])
            nodes.setdefault(name, {"node": name, "op": e["args"].get("op_name", "?"),
                                    "multiply_adds": multiply_adds(e["args"].get("op_name", ""), e["args"])})
    for name, durations in per_node.items():
        measured = durations[3:] or durations  # the first calls are the warm-up
        nodes[name]["us"] = float(np.median(measured))
    run_us = float(np.median([e["dur"] for e in runs[3:]])) if len(runs) > 3 else float("nan")
    result = sorted(nodes.values(), key=lambda n: -n["us"])
    for n in result:
        n["run_us"] = run_us
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="lenet,resnet18")
    parser.add_argument("--batches", default="1,64")
    parser.add_argument("--top", type=int, default=8, help="nodes listed per model and batch")
    args = parser.parse_args()
    peak = one_core_sgemm_gflops()
    print(f"one core, float32 matrix multiply (numpy BLAS): {peak:.1f} GFLOP/s\n")
    for model_name in args.models.split(","):
        model = MODELS[model_name]
        if not model.exists():
            print(f"{model_name}: {model} not found (bench_predict.py or make_models.py makes it); skipped\n")
            continue
        for batch in (int(b) for b in args.batches.split(",")):
            calls = max(3, min(200, int(2e5 // max(1, batch * (50 if model_name == "lenet" else 5000)))))
            nodes = profile(model, batch, calls)
            kernels = sum(n["us"] for n in nodes)
            dense = [n for n in nodes if n["multiply_adds"]]
            dense_us = sum(n["us"] for n in dense)
            dense_rate = 2 * sum(n["multiply_adds"] for n in dense) / dense_us / 1e3 if dense_us else 0.0
            run_us = nodes[0]["run_us"] if nodes else float("nan")
            print(f"{model_name} batch {batch}: {run_us:,.0f} µs per call, kernels {kernels:,.0f} µs "
                  f"({len(nodes)} nodes after onnxruntime's fusions)")
            print(f"  Conv/Gemm: {dense_us / kernels:.0%} of kernel time, {dense_rate:.1f} GFLOP/s "
                  f"= {dense_rate / peak:.0%} of the one-core matrix multiply")
            rows = []
            for n in nodes[: args.top]:
                rate = 2 * n["multiply_adds"] / n["us"] / 1e3 if n["multiply_adds"] else None
                rows.append([re.sub(r"^@[^/]*/", "", n["node"])[-40:], n["op"], f"{n['us']:,.1f}", f"{n['us'] / kernels:.1%}",
                             f"{rate:.1f}" if rate else "", f"{rate / peak:.0%}" if rate else ""])
            print("  " + c.table(rows, ["node", "op", "µs", "share", "GFLOP/s", "of peak"]).replace("\n", "\n  "))
            print()


if __name__ == "__main__":
    main()
