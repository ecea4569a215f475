"""Long fuzz campaign: ``python -m tests.fuzz.campaign --cases 200000 [--start 0] [--workers 2] [--minutes M]``.

Seeds: the shared Console exports and sample_projects/*/*.nnp, plus each rewritten with h5 parameters
and with a binary network. Failures are printed as they happen (case number, reason); replay one with
``--start N --cases 1``. ``--minutes`` stops the run early and reports the cases actually run.
"""
from __future__ import annotations

import argparse
import collections
import tempfile
import time
from pathlib import Path

from tests.fuzz.harness import Outcome, campaign_seeds, run_campaign


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=200_000)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--minutes", type=float, help="stop after this long")
    parser.add_argument("--verbose", action="store_true", help="print each failure's whole traceback")
    args = parser.parse_args()
    began = time.time()
    deadline = began + args.minutes * 60 if args.minutes else None

    def report(o: Outcome) -> None:
        lines = o.detail.strip().splitlines()
        print(f"FAILURE case {o.case}: " + (o.detail if args.verbose else (lines[-1] if lines else "")), flush=True)

    with tempfile.TemporaryDirectory(prefix="nncbridge-fuzz-seeds-") as tmp:
        seeds = campaign_seeds(Path(tmp))
        print(f"seeds: {', '.join(p.name for p in seeds)}", flush=True)
        outcomes = run_campaign(seeds, range(args.start, args.start + args.cases), args.workers, progress=True,
                                deadline=deadline, on_failure=report)
    counts = collections.Counter(o.status for o in outcomes)
    failures = [o for o in outcomes if o.status == "failure"]
    print(f"{len(outcomes)} cases (of {args.cases} asked) in {time.time() - began:.0f} s: {dict(counts)}; "
          f"failures: {len(failures)}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
