"""nnabla's side of bench_predict.py, run in the nnabla venv (Python 3.10) as a subprocess.

    serve  MODEL --batches 1,64 --outputs OUT.npz   reads "BATCH N" lines on stdin, runs N forwards,
                                                    answers {"wall": s, "cpu": s} per forward
    memory MODEL --batch 16                         loads, runs one forward, prints nothing

The parent interleaves these timing rounds with its own (onnxruntime) rounds, so both sides see the
same machine load. Inputs are uniform [0, 1) from RandomState(batch), the arrays bench_predict.py
feeds to nncbridge; the first outputs go to OUT.npz for comparison. This is the code users write
today: NnpLoader -> get_network(batch_size=B) -> set x.d -> y.forward(clear_buffer=True).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time


def network(path: str, batch: int):
    from nnabla.utils.nnp_graph import NnpLoader

    nnp = NnpLoader(path)
    names = nnp.get_network_names()
    name = next((n for n in names if n.endswith("Runtime")), names[-1])
    net = nnp.get_network(name, batch_size=batch)
    return list(net.inputs.values())[0], list(net.outputs.values())[0]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["serve", "memory"])
    parser.add_argument("model")
    parser.add_argument("--batches", default="1,64")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--outputs")
    args = parser.parse_args()

    import logging

    logging.disable(logging.WARNING)
    import numpy as np

    if args.mode == "memory":
        x, y = network(args.model, args.batch)
        x.d = np.random.RandomState(args.batch).uniform(0, 1, size=x.shape).astype(np.float32)
        y.forward(clear_buffer=True)
        return 0

    nets = {}
    outputs = {}
    for batch in (int(b) for b in args.batches.split(",")):
        x, y = network(args.model, batch)
        x.d = np.random.RandomState(batch).uniform(0, 1, size=x.shape).astype(np.float32)
        y.forward(clear_buffer=True)
        outputs[f"b{batch}"] = np.array(y.d, copy=True)
        nets[batch] = y
    if args.outputs:
        np.savez(args.outputs, **outputs)
    print("ready", flush=True)
    for line in sys.stdin:
        batch, n = (int(v) for v in line.split())
        y = nets[batch]
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            y.forward(clear_buffer=True)
        print(json.dumps({"wall": (time.perf_counter() - start) / n, "cpu": (time.process_time() - start_cpu) / n}),
              flush=True)
    return 0


if __name__ == "__main__":
    # One thread unless the caller's environment says otherwise (bench_predict.py's "defaults"
    # comparison passes NNCBRIDGE_BENCH_NNABLA_DEFAULT_THREADS=1 and leaves OMP_NUM_THREADS unset).
    if not os.environ.get("NNCBRIDGE_BENCH_NNABLA_DEFAULT_THREADS"):
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
