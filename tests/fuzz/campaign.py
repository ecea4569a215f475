"""Long fuzz campaign: ``python -m tests.fuzz.campaign --cases 200000 [--start 0] [--workers 2]``.

Prints progress every 1,000 cases and, at the end, the failures (case number, reason) so each can be
replayed with ``--start N --cases 1``.
"""
from __future__ import annotations

import argparse
import collections
import time

from tests.fuzz.harness import default_seed_files, run_campaign


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=200_000)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    seeds = default_seed_files()
    print(f"seeds: {', '.join(p.name for p in seeds)}")
    began = time.time()
    outcomes = run_campaign(seeds, range(args.start, args.start + args.cases), args.workers, progress=True)
    counts = collections.Counter(o.status for o in outcomes)
    failures = [o for o in outcomes if o.status == "failure"]
    for o in failures[:50]:
        print(f"--- case {o.case}: {o.detail.strip().splitlines()[-1] if o.detail.strip() else ''}")
    print(f"{len(outcomes)} cases in {time.time() - began:.0f} s: {dict(counts)}; failures: {len(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
