"""Issue 3 speed: ``nncbridge convert`` vs ``nnabla_cli convert``, and onnxruntime on both ONNX files.

    /work/venvs/modern/bin/python benchmarks/bench_convert.py [--nnabla-venv DIR] [--repeats 5] [--models lenet,resnet18]

1. Whole-process conversion time (wall clock, median of ``--repeats`` after one warm-up run) of the
   shared LeNet export and the ResNet-18-style model: ``nncbridge convert M out.onnx`` (this
   Python) against ``nnabla_cli convert M out.onnx`` (nnabla-converter 1.39, Python 3.10).
   Target: nncbridge ≥ 20× faster.
   Runs alternate (warm-up first), so other load on the machine hits both sides alike; CPU time
   (user+sys of the process) is reported beside wall time. "no .pyc" is nncbridge started with
   PYTHONDONTWRITEBYTECODE=1 from this editable checkout (its modules recompiled at every start).
2. onnxruntime inference, one intra-op thread, batch 1 and 64: our ONNX (one file, symbolic batch)
   against the converter's (which bakes the batch, so it is converted with ``-b 1`` and ``-b 64``).
   Same onnxruntime, same session options; median per-call time over interleaved rounds.
   Target: converter time / our time ≥ 1.0. The largest |Δ| between both files' outputs is printed.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402


def session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nnabla-venv", help=f"venv with nnabla + nnabla-converter 1.39 (or ${c.VENV_ENV})")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per conversion (after 1 warm-up)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds for inference")
    parser.add_argument("--models", default="lenet,resnet18")
    parser.add_argument("--resnet-head", choices=["global", "average", "mean"], default="global",
                        help="ResNet-18 pooling head (make_models.py --head)")
    args = parser.parse_args()

    venv = c.nnabla_venv(args.nnabla_venv)
    nnabla_cli = venv / "bin" / "nnabla_cli"
    models = {"lenet": c.ensure_lenet}
    models["resnet18"] = lambda: c.ensure_resnet(venv, args.resnet_head)
    out_dir = c.WORK / "convert"
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict = {"resnet_head": args.resnet_head, "machine": c.machine(), "convert": {}, "inference": {}}
    previous = c.RESULTS / "convert.json"
    if previous.exists() and set(args.models.split(",")) != {"lenet", "resnet18"}:
        kept = json.loads(previous.read_text())  # models not run this time keep their last numbers
        for part in ("convert", "inference"):
            results[part] = {k: v for k, v in kept.get(part, {}).items() if k.split("/")[0] not in args.models}
        results["machine_earlier_runs"] = kept.get("machine")
    ours_cmd = c.nncbridge_command()

    for name in args.models.split(","):
        model = models[name]()
        ours_onnx = out_dir / f"{name}.nncbridge.onnx"
        theirs = {b: out_dir / f"{name}.converter.b{b}.onnx" for b in (1, 64)}
        try:
            c.run_measured(ours_cmd + ["convert", model, ours_onnx], c.modern_env())
        except RuntimeError as e:
            c.log(f"[{name}] skipped: nncbridge cannot convert it:\n{e}")
            results.setdefault("skipped", {})[name] = " / ".join(str(e).splitlines()[1:4])
            continue
        c.log(f"[{name}] nncbridge convert / nnabla_cli convert, alternating, x{args.repeats}")
        runs = c.time_alternating({
            "nncbridge": (ours_cmd + ["convert", model, ours_onnx], c.modern_env()),
            "nncbridge_no_pyc": (ours_cmd + ["convert", model, ours_onnx], c.modern_env(bytecode_cache=False)),
            "nnabla_cli": ([nnabla_cli, "convert", model, theirs[1], "-b", "1"], c.nnabla_env()),
        }, args.repeats)
        c.run_measured([nnabla_cli, "convert", model, theirs[64], "-b", "64"], c.nnabla_env())
        ours, cold, ref = (c.summary(runs[k]) for k in ("nncbridge", "nncbridge_no_pyc", "nnabla_cli"))
        results["convert"][name] = {
            "nncbridge": ours, "nncbridge_no_bytecode_cache": cold, "nnabla_cli": ref,
            "speedup": c.ratio(ref["wall_s"], ours["wall_s"]),
            "speedup_cpu_time": c.ratio(ref["cpu_s"], ours["cpu_s"]),
            "speedup_no_bytecode_cache": c.ratio(ref["wall_s"], cold["wall_s"]), "target": 20.0}

        import onnx

        opsets = {"nncbridge": onnx.load(str(ours_onnx), load_external_data=False).opset_import[0].version,
                  "converter": onnx.load(str(theirs[1]), load_external_data=False).opset_import[0].version}
        mine = session(ours_onnx)
        in_name = mine.get_inputs()[0].name
        sample_shape = [int(d) for d in mine.get_inputs()[0].shape[1:]]
        for batch in (1, 64):
            other = session(theirs[batch])
            x = np.random.RandomState(batch).uniform(0, 1, size=[batch] + sample_shape).astype(np.float32)
            a = mine.run(None, {in_name: x})[0]
            b = other.run(None, {other.get_inputs()[0].name: x})[0]
            diff = float(np.max(np.abs(a.astype(np.float64) - b)))
            scale = float(np.max(np.abs(b)))
            c.log(f"[{name}] onnxruntime batch {batch}: timing")
            rounds = args.rounds if batch == 1 or name == "lenet" else max(3, args.rounds // 2)
            other_name = other.get_inputs()[0].name
            times = c.interleaved({
                "nncbridge": c.local_timer(lambda: mine.run(None, {in_name: x})),
                "converter": c.local_timer(lambda: other.run(None, {other_name: x})),
            }, rounds, min_round_seconds=0.3, warmup=2)
            ours_t, theirs_t = times["nncbridge"], times["converter"]
            results["inference"][f"{name}/b{batch}"] = {
                "nncbridge_ms": round(ours_t["wall"] * 1e3, 4), "converter_ms": round(theirs_t["wall"] * 1e3, 4),
                "ratio": c.ratio(theirs_t["wall"], ours_t["wall"]), "target": 1.0,
                "ratio_cpu_time": c.ratio(theirs_t["cpu"], ours_t["cpu"]),
                "max_abs_diff": diff, "max_abs_output": scale, "opsets": opsets}
            del other

    print("\nWhole-process conversion (median wall time; nncbridge with a bytecode cache, as installed)")
    print(c.table([[m, c.ms(r["nncbridge"]["wall_s"]), c.ms(r["nnabla_cli"]["wall_s"]), f"{r['speedup']}x",
                    f"{r['speedup_cpu_time']}x", c.ms(r["nncbridge_no_bytecode_cache"]["wall_s"]),
                    f"{r['speedup_no_bytecode_cache']}x",
                    f"{r['nncbridge']['max_rss_mib']:.0f} / {r['nnabla_cli']['max_rss_mib']:.0f}"]
                   for m, r in results["convert"].items()],
                  ["model", "nncbridge", "nnabla_cli", "speed-up", "(CPU time)", "no .pyc", "speed-up",
                   "peak MiB ours/theirs"]))
    print("\nonnxruntime, 1 thread: our ONNX vs nnabla-converter's ONNX of the same model (median per call)")
    print(c.table([[k, f"{r['nncbridge_ms']:.4g} ms", f"{r['converter_ms']:.4g} ms", f"{r['ratio']}x",
                    f"{r['ratio_cpu_time']}x",
                    f"{r['max_abs_diff']:.3g}", f"{r['opsets']['nncbridge']} / {r['opsets']['converter']}"]
                   for k, r in results["inference"].items()],
                  ["model/batch", "ours", "converter", "ratio", "(CPU time)", "max|Δ|", "opset ours/conv"]))
    misses = [f"convert {m}: {r['speedup']}x < 20x" for m, r in results["convert"].items() if r["speedup"] < 20]
    misses += [f"inference {k}: {r['ratio']}x < 1.0x" for k, r in results["inference"].items() if r["ratio"] < 1.0]
    c.finish("convert", results, misses, "convert >= 20x, inference ratio >= 1.0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
