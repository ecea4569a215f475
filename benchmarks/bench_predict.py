"""Issue 4 speed: Predictor vs nnabla, ``nncbridge predict`` vs ``nnabla_cli forward``, peak memory.

    /work/venvs/modern/bin/python benchmarks/bench_predict.py [--nnabla-venv DIR] [--parts speed,cli,memory]

1. speed: one thread each, batch 1 and 64, LeNet (shared export) and ResNet-18: ``Predictor.predict``
   (onnxruntime backend, ``intra_op_num_threads=1``) against nnabla ``NnpLoader`` → ``forward``
   (nnabla venv, OMP_NUM_THREADS=1, ``benchmarks/_nnabla_runner.py`` serving timing rounds) and
   a raw onnxruntime session (default options, 1 thread) on the same ONNX graph. Also each at its
   default settings: ``nncbridge.load(model)`` (onnxruntime picks one thread per core) against
   nnabla with OMP_NUM_THREADS unset (its CPU code runs on one thread either way). All five run in
   alternating rounds (so load from elsewhere hits all alike); median per call, wall and CPU time.
   Targets: nnabla time / Predictor time ≥ 6; Predictor no slower than raw onnxruntime.
2. cli: whole process, ``nncbridge predict LENET DATA.csv -o OUT.csv --batch-size 64`` against
   ``nnabla_cli forward -c LENET -d DATA.csv -o DIR -b 64`` on 2,000 rows (2,000 distinct 28×28
   PNG digits; median of ``--repeats``, alternating) and 100,000 rows (the same files repeated;
   median of ``--big-repeats``, alternating). Default settings for both (nncbridge picks threads or worker processes by row
   count). Targets ≥ 3× and ≥ 10×. Both outputs are compared.
3. memory: peak RSS of a whole process that loads ResNet-18 and runs one batch of 16:
   Predictor (default options) vs nnabla (``forward(clear_buffer=True)``); raw onnxruntime with
   its default arena for reference. Target: Predictor ≤ nnabla.
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

RUNNER = c.HERE / "_nnabla_runner.py"
DIGITS_DIR = c.WORK / "digits"
N_DISTINCT = 2000

PREDICTOR_MEMORY = """
import sys, numpy as np, nncbridge
p = nncbridge.load(sys.argv[1], backend="onnxruntime")
x = np.random.RandomState(16).uniform(0, 1, size=(16,) + p.inputs[0].shape).astype(np.float32)
p.predict(x)
"""
RAW_ORT_MEMORY = """
import sys, numpy as np, onnxruntime as ort
s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
i = s.get_inputs()[0]
x = np.random.RandomState(16).uniform(0, 1, size=[16] + list(i.shape[1:])).astype(np.float32)
s.run(None, {i.name: x})
"""


# -- 1. speed ---------------------------------------------------------------------------------------
def _nnabla_server(venv: Path, path: Path, npz: Path, default_threads: bool) -> subprocess.Popen:
    env = c.nnabla_env(threads=None if default_threads else 1)
    if default_threads:
        env.pop("OMP_NUM_THREADS", None)
        env["NNCBRIDGE_BENCH_NNABLA_DEFAULT_THREADS"] = "1"
    server = subprocess.Popen([str(venv / "bin" / "python"), str(RUNNER), "serve", str(path), "--batches", "1,64",
                               "--outputs", str(npz)], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if server.stdout.readline().strip() != "ready":
        raise RuntimeError(f"{RUNNER} failed on {path}")
    return server


def speed(venv: Path, models: dict[str, Path], rounds: int) -> dict:
    import onnxruntime as ort

    import nncbridge

    results = {}
    for name, path in models.items():
        try:
            predictor = nncbridge.load(path, backend="onnxruntime", intra_op_num_threads=1)
            predictor_default = nncbridge.load(path, backend="onnxruntime")
        except nncbridge.NncBridgeError as e:
            c.log(f"[speed {name}] skipped: {e}")
            results[f"{name}/skipped"] = str(e).splitlines()[:3]
            continue
        c.log(f"[speed {name}] nnabla NnpLoader (subprocesses: 1 thread, default threads) / Predictor (1 thread, "
              "default threads) / raw onnxruntime (1 thread), interleaved")
        npz = c.WORK / f"nnabla-{name}-outputs.npz"
        servers = {"nnabla": _nnabla_server(venv, path, npz, False),
                   "nnabla_default": _nnabla_server(venv, path, c.WORK / f"nnabla-{name}-outputs-default.npz", True)}
        reference = np.load(npz)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        raw = ort.InferenceSession(nncbridge.to_onnx(path).SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
        in_name = raw.get_inputs()[0].name
        for batch in (1, 64):
            x = np.random.RandomState(batch).uniform(0, 1, size=(batch,) + predictor.inputs[0].shape).astype(np.float32)
            got = predictor.predict(x)
            diff = float(np.max(np.abs(got.astype(np.float64) - reference[f"b{batch}"].reshape(got.shape))))
            n_rounds = rounds if batch == 1 or name == "lenet" else max(3, rounds // 3)

            def nnabla_timer(server: subprocess.Popen, batch: int = batch) -> c.Timer:
                def timer(n: int) -> tuple[float, float]:
                    server.stdin.write(f"{batch} {n}\n")
                    server.stdin.flush()
                    answer = json.loads(server.stdout.readline())
                    return answer["wall"], answer["cpu"]
                return timer

            times = c.interleaved({"nnabla": nnabla_timer(servers["nnabla"]),
                                   "predictor": c.local_timer(lambda: predictor.predict(x)),
                                   "raw_onnxruntime": c.local_timer(lambda: raw.run(None, {in_name: x})),
                                   "nnabla_default": nnabla_timer(servers["nnabla_default"]),
                                   "predictor_default": c.local_timer(lambda: predictor_default.predict(x))},
                                  n_rounds, min_round_seconds=0.3, warmup=0 if n_rounds < rounds else 1)
            nn_t, ours, raw_t = times["nnabla"], times["predictor"], times["raw_onnxruntime"]
            nn_d, ours_d = times["nnabla_default"], times["predictor_default"]
            results[f"{name}/b{batch}"] = {
                "nnabla_ms": round(nn_t["wall"] * 1e3, 4), "predictor_ms": round(ours["wall"] * 1e3, 4),
                "raw_onnxruntime_ms": round(raw_t["wall"] * 1e3, 4),
                "predictor_images_per_s": round(batch / ours["wall"], 1),
                "nnabla_images_per_s": round(batch / nn_t["wall"], 1),
                "speedup_vs_nnabla": c.ratio(nn_t["wall"], ours["wall"]), "target_vs_nnabla": 6.0,
                "speedup_vs_nnabla_cpu_time": c.ratio(nn_t["cpu"], ours["cpu"]),
                "raw_onnxruntime_over_predictor": c.ratio(raw_t["wall"], ours["wall"]),
                "raw_onnxruntime_over_predictor_cpu_time": c.ratio(raw_t["cpu"], ours["cpu"]),
                "target_vs_raw": 1.0, "max_abs_diff_vs_nnabla": diff,
                "max_abs_output": float(np.max(np.abs(reference[f"b{batch}"]))),
                "defaults": {"nnabla_ms": round(nn_d["wall"] * 1e3, 4), "nnabla_cpu_ms": round(nn_d["cpu"] * 1e3, 4),
                             "predictor_ms": round(ours_d["wall"] * 1e3, 4),
                             "predictor_cpu_ms": round(ours_d["cpu"] * 1e3, 4),
                             "speedup_vs_nnabla": c.ratio(nn_d["wall"], ours_d["wall"])}}
        for server in servers.values():
            server.stdin.close()
            server.wait()
        del predictor, predictor_default, raw
    return results


# -- 2. cli -----------------------------------------------------------------------------------------
def make_digits() -> list[str]:
    """2,000 distinct 28x28 grayscale PNGs: the shared MNIST digits shifted, rotated and noised."""
    from PIL import Image

    names = [f"digits/{i:04d}.png" for i in range(N_DISTINCT)]
    if (DIGITS_DIR / f"{N_DISTINCT - 1:04d}.png").exists():
        return names
    DIGITS_DIR.mkdir(parents=True, exist_ok=True)
    sources = [Image.open(p).convert("L") for p in sorted(c.DIGITS.glob("*.png"))]
    rng = np.random.RandomState(4)
    for i, name in enumerate(names):
        image = sources[i % len(sources)].rotate(float(rng.uniform(-15, 15)), resample=Image.BILINEAR,
                                                 translate=tuple(int(t) for t in rng.randint(-3, 4, size=2)))
        pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, 12, size=(28, 28))
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L").save(c.WORK / name)
    return names


def make_csv(rows: int, names: list[str]) -> Path:
    path = c.WORK / f"digits-{rows}.csv"
    if not path.exists():
        with open(path, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["x:image", "y:label"])
            for i in range(rows):
                w.writerow([names[i % len(names)], i % 10])
    return path


def read_values(path: Path) -> tuple[list[str], np.ndarray, list[str]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader)
        first = [c for c, h in enumerate(header) if h.startswith("y'")][0]
        carried, values = [], []
        for row in reader:
            carried.append(row[0])
            values.append([float(v) for v in row[first:]])
    return header, np.asarray(values), carried


def compare_outputs(ours: Path, theirs: Path) -> dict:
    h1, v1, p1 = read_values(ours)
    h2, v2, p2 = read_values(theirs)
    same_shape = v1.shape == v2.shape
    return {"same_header": h1 == h2, "same_rows": same_shape, "same_paths": p1 == p2,
            "max_abs_diff": float(np.max(np.abs(v1 - v2))) if same_shape else None}


def cli(venv: Path, repeats: int, big_rows: int, big_repeats: int) -> dict:
    names = make_digits()
    lenet = c.ensure_lenet()
    nnabla_cli = venv / "bin" / "nnabla_cli"
    out = c.WORK / "cli-out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    results = {}
    for rows, reps in ((2000, repeats), (big_rows, big_repeats)):  # nnabla_cli takes ~50 s per 100k
        data = make_csv(rows, names)
        ours_csv = out / f"nncbridge-{rows}.csv"
        (out / f"nnabla-{rows}").mkdir()  # nnabla_cli forward fails on a missing output folder
        commands = {
            "nncbridge": (c.nncbridge_command() + ["predict", lenet, data, "-o", ours_csv, "--batch-size", "64",
                                                   "--json"], c.modern_env()),
            "nnabla_cli": ([nnabla_cli, "forward", "-c", lenet, "-d", data, "-o", out / f"nnabla-{rows}", "-b", "64"],
                           c.nnabla_env()),
        }
        c.log(f"[cli {rows} rows] nncbridge predict / nnabla_cli forward, x{reps}")
        # The big CSV reuses the small one's files, already read once by then: no warm-up run for it.
        runs = c.time_alternating(commands, reps, warmup=1 if rows == 2000 and reps > 1 else 0, cwd=c.WORK)
        ours, ref = c.summary(runs["nncbridge"]), c.summary(runs["nnabla_cli"])
        ours["json_summary"] = json.loads(runs["nncbridge"][-1].stdout)
        results[f"{rows}_rows"] = {
            "nncbridge": ours, "nnabla_cli": ref,
            "speedup": c.ratio(ref["wall_s"], ours["wall_s"]),
            "speedup_cpu_time": c.ratio(ref["cpu_s"], ours["cpu_s"]),
            "nncbridge_rows_per_s": round(rows / ours["wall_s"], 1),
            "nnabla_cli_rows_per_s": round(rows / ref["wall_s"], 1),
            "target": 3.0 if rows == 2000 else 10.0,
            "outputs": compare_outputs(ours_csv, out / f"nnabla-{rows}" / "output_result.csv")}
    one = make_csv(1, names)
    (out / "nnabla-1").mkdir()
    startup = c.time_alternating({
        "nncbridge": (c.nncbridge_command() + ["predict", lenet, one, "-o", out / "nncbridge-1.csv"], c.modern_env()),
        "nnabla_cli": ([nnabla_cli, "forward", "-c", lenet, "-d", one, "-o", out / "nnabla-1"], c.nnabla_env())},
        3, cwd=c.WORK)
    results["startup_s"] = {k: round(c.median([r.seconds for r in v]), 3) for k, v in startup.items()}
    return results


# -- 3. memory --------------------------------------------------------------------------------------
def memory(venv: Path, resnet: Path, repeats: int) -> dict:
    import nncbridge

    onnx_path = c.WORK / "resnet18.nncbridge.onnx"
    try:
        onnx_path.write_bytes(nncbridge.to_onnx(resnet).SerializeToString())
    except nncbridge.NncBridgeError as e:
        c.log(f"[memory] skipped: {e}")
        return {"skipped": str(e).splitlines()[:3]}
    c.log("[memory] ResNet-18 batch 16: Predictor / nnabla / raw onnxruntime")
    runs = c.time_alternating({
        "predictor": ([sys.executable, "-c", PREDICTOR_MEMORY, resnet], c.modern_env()),
        "nnabla": ([venv / "bin" / "python", RUNNER, "memory", resnet, "--batch", "16"], c.nnabla_env()),
        "raw_onnxruntime_default": ([sys.executable, "-c", RAW_ORT_MEMORY, onnx_path], c.modern_env()),
    }, repeats, warmup=0)
    peak = {k: round(min(r.max_rss_mib for r in v), 1) for k, v in runs.items()}
    return {"peak_rss_mib": peak, "nnabla_over_predictor": c.ratio(peak["nnabla"], peak["predictor"]),
            "target": 1.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nnabla-venv", help=f"venv with nnabla 1.39 (or ${c.VENV_ENV})")
    parser.add_argument("--parts", default="speed,cli,memory")
    parser.add_argument("--models", default="lenet,resnet18")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved timing rounds (fewer for ResNet b64)")
    parser.add_argument("--repeats", type=int, default=3, help="whole-process runs on 2,000 rows")
    parser.add_argument("--big-rows", type=int, default=100_000)
    parser.add_argument("--big-repeats", type=int, default=3, help="whole-process runs on --big-rows rows")
    parser.add_argument("--resnet-head", choices=["global", "average", "mean"], default="global",
                        help="ResNet-18 pooling head (make_models.py --head)")
    args = parser.parse_args()

    venv = c.nnabla_venv(args.nnabla_venv)
    parts = args.parts.split(",")
    results: dict = {"resnet_head": args.resnet_head, "machine": c.machine()}
    previous = c.RESULTS / "predict.json"
    if previous.exists() and set(parts) != {"speed", "cli", "memory"}:
        results = json.loads(previous.read_text()) | results  # parts not run keep their last numbers
    paths = {"lenet": c.ensure_lenet, "resnet18": lambda: c.ensure_resnet(venv, args.resnet_head)}
    if "speed" in parts:
        results["speed"] = speed(venv, {m: paths[m]() for m in args.models.split(",")}, args.rounds)
    if "cli" in parts:
        results["cli"] = cli(venv, args.repeats, args.big_rows, args.big_repeats)
    if "memory" in parts:
        results["memory"] = memory(venv, paths["resnet18"](), 3)  # peak RSS varies by ~10 MiB run to run

    misses = []
    if "speed" in results:
        print("\nInference, one thread (median per call): Predictor vs nnabla NnpLoader vs raw onnxruntime")
        print(c.table([[k, f"{r['nnabla_ms']:.4g} ms", f"{r['predictor_ms']:.4g} ms", f"{r['raw_onnxruntime_ms']:.4g} ms",
                        f"{r['speedup_vs_nnabla']}x", f"{r['speedup_vs_nnabla_cpu_time']}x",
                        f"{r['raw_onnxruntime_over_predictor']}x", f"{r['raw_onnxruntime_over_predictor_cpu_time']}x",
                        f"{r['max_abs_diff_vs_nnabla']:.2g}"] for k, r in results["speed"].items()
                       if not k.endswith("skipped")],
                      ["model/batch", "nnabla", "Predictor", "raw ort", "vs nnabla", "(CPU)", "raw/Predictor", "(CPU)",
                       "max|Δ|"]))
        print("\nInference, default settings of each (nnabla: its own threading; Predictor: onnxruntime's "
              "default thread count)")
        print(c.table([[k, f"{r['defaults']['nnabla_ms']:.4g} ms", f"{r['defaults']['predictor_ms']:.4g} ms",
                        f"{r['defaults']['speedup_vs_nnabla']}x"] for k, r in results["speed"].items()
                       if not k.endswith("skipped") and "defaults" in r],
                      ["model/batch", "nnabla", "Predictor", "vs nnabla"]))
        for k, r in results["speed"].items():
            if k.endswith("skipped"):
                misses.append(f"{k}: {r[0] if r else ''}")
                continue
            if r["speedup_vs_nnabla"] < 6:
                misses.append(f"{k}: Predictor {r['speedup_vs_nnabla']}x nnabla < 6x")
            if r["raw_onnxruntime_over_predictor"] < 1.0:
                misses.append(f"{k}: Predictor slower than raw onnxruntime ({r['raw_onnxruntime_over_predictor']}x)")
    if "cli" in results:
        print("\nWhole process on LeNet: nncbridge predict vs nnabla_cli forward (batch 64, default threads)")
        print(c.table([[k.replace("_", " "), c.ms(r["nncbridge"]["wall_s"]), c.ms(r["nnabla_cli"]["wall_s"]),
                        f"{r['speedup']}x", f"{r['speedup_cpu_time']}x", f"{r['nncbridge_rows_per_s']:.0f}",
                        f"{r['nnabla_cli_rows_per_s']:.0f}", f"{r['outputs']['max_abs_diff']:.2g}"]
                       for k, r in results["cli"].items() if k.endswith("rows")],
                      ["dataset", "nncbridge", "nnabla_cli", "speed-up", "(CPU time)", "rows/s ours", "rows/s theirs",
                       "max|Δ|"]))
        print(f"fixed cost (a 1-row CSV, whole process): {results['cli']['startup_s']}")
        for k, r in results["cli"].items():
            if k.endswith("rows") and r["speedup"] < r["target"]:
                misses.append(f"predict {k}: {r['speedup']}x < {r['target']}x")
    if "memory" in results and "skipped" in results["memory"]:
        misses.append("memory: skipped, ResNet-18 does not convert")
    elif "memory" in results:
        m = results["memory"]
        print("\nPeak RSS, ResNet-18, one batch of 16 (whole process, MiB)")
        print(c.table([[k, f"{v:.0f}"] for k, v in m["peak_rss_mib"].items()], ["process", "MiB"]))
        if m["nnabla_over_predictor"] < 1.0:
            misses.append(f"memory: Predictor {m['peak_rss_mib']['predictor']:.0f} MiB > nnabla "
                          f"{m['peak_rss_mib']['nnabla']:.0f} MiB")
    c.finish("predict", results, misses)
    return 0


if __name__ == "__main__":
    sys.exit(main())
