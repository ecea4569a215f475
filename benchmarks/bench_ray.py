"""Issue 15: ``nncbridge predict`` on this machine against ``nncbridge predict --ray`` on a Ray cluster.

    python benchmarks/bench_ray.py [--rows 100000] [--repeats 3]

A two-node Ray cluster on loopback (Ray's ``cluster_utils.Cluster``, one CPU per node; this machine
has two cores) is started once. Whole ``nncbridge predict`` processes on LeNet (the shared export),
``--rows`` rows of 2,000 distinct 28x28 PNG digits (bench_predict's files), ``--batch-size 64``,
run in alternation, median of ``--repeats``:

  local   no Ray: its default for this many rows (worker processes, one fewer than CPUs, and itself)
  ray-1   ``--ray ADDRESS --processes 1``: one Ray worker (one CPU)
  ray-2   ``--ray ADDRESS --processes 2``: two Ray workers, one per node

ray-2 / local is Ray's overhead on one machine; (ray-2 − ray-1) rows/s is what one more CPU added.
Separately, ``--ray`` with no address on 100 rows (a local Ray started and stopped by the command)
against the local run on the same rows gives the start-up cost. All outputs are compared byte for byte.
Writes results/ray.json.
"""
from __future__ import annotations

import argparse
import filecmp
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402
from bench_predict import make_csv, make_digits  # noqa: E402

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # keep Ray on 127.0.0.1 (read when Ray is imported)


def predict_command(data: Path, output: Path, *extra: str) -> list[str]:
    return [*c.nncbridge_command(), "predict", str(c.LENET), str(data), "-o", str(output), "--batch-size", "64",
            "--json", *extra]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from ray.cluster_utils import Cluster

    c.ensure_lenet()
    data = make_csv(args.rows, make_digits())
    small = make_csv(100, make_digits())
    env = c.modern_env()
    out = c.WORK / "ray-out"
    out.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        address = cluster.address
        c.log(f"cluster at {address}; {args.rows:,} rows, {args.repeats} alternating repeats")
        sides = {
            "local": (predict_command(data, out / "local.csv"), env),
            "ray-1": (predict_command(data, out / "ray-1.csv", "--ray", address, "--processes", "1"), env),
            "ray-2": (predict_command(data, out / "ray-2.csv", "--ray", address, "--processes", "2"), env),
        }
        runs = c.time_alternating(sides, args.repeats, warmup=0, cwd=c.WORK)
    finally:
        cluster.shutdown()
    start_up = c.time_alternating({
        "local": (predict_command(small, out / "small-local.csv"), env),
        "ray-local-start": (predict_command(small, out / "small-ray.csv", "--ray"), env),
    }, args.repeats, warmup=0, cwd=c.WORK)

    same = {name: filecmp.cmp(out / "local.csv", out / f"{name}.csv", shallow=False) for name in ("ray-1", "ray-2")}
    same["ray-local-start"] = filecmp.cmp(out / "small-local.csv", out / "small-ray.csv", shallow=False)
    results: dict = {"machine": c.machine(), "rows": args.rows, "cluster": "2 nodes x 1 CPU on 127.0.0.1",
                     "outputs_identical": same}
    for name, side_runs in runs.items():
        summary = c.summary(side_runs)
        summary["rows_per_s"] = round(args.rows / summary["wall_s"], 1)
        summary["nodes"] = json.loads(side_runs[-1].stdout).get("nodes", {})
        results[name] = summary
    results["ray_2_over_local_wall"] = round(results["ray-2"]["wall_s"] / results["local"]["wall_s"], 2)
    results["rows_per_s_added_by_the_second_cpu"] = round(results["ray-2"]["rows_per_s"] - results["ray-1"]["rows_per_s"], 1)
    results["ray_2_over_ray_1_rows_per_s"] = round(results["ray-2"]["rows_per_s"] / results["ray-1"]["rows_per_s"], 2)
    results["start_up"] = {name: c.summary(r) for name, r in start_up.items()}
    results["start_up"]["ray_local_start_extra_s"] = round(
        results["start_up"]["ray-local-start"]["wall_s"] - results["start_up"]["local"]["wall_s"], 2)

    print(c.table([[name, f"{results[name]['wall_s']:.2f} s", f"{results[name]['rows_per_s']:,.0f}",
                    f"{results[name]['cpu_s']:.1f} s", len(results[name]["nodes"]) or "-"]
                   for name in ("local", "ray-1", "ray-2")],
                  ["side", "wall (median)", "rows/s", "CPU of the command", "nodes"]))
    print(f"ray-2 / local wall time: {results['ray_2_over_local_wall']}x; second CPU added "
          f"{results['rows_per_s_added_by_the_second_cpu']:,.0f} rows/s (ray-2 / ray-1 = {results['ray_2_over_ray_1_rows_per_s']}x)")
    print(f"--ray starting its own local Ray: +{results['start_up']['ray_local_start_extra_s']} s on 100 rows")
    print(f"outputs identical to the local run: {same}")
    path = c.write_results("ray", results)
    print(f"wrote {path}")
    return 0 if all(same.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
