"""Replay fuzz cases in this process: ``python -m tests.fuzz.replay CASE [CASE...] [--save DIR]``."""
from __future__ import annotations

import argparse
import random
import tempfile
import traceback
from pathlib import Path

from tests.fuzz.harness import campaign_seeds, exercise
from tests.fuzz.mutate import mutate_nnp


def case_bytes(seeds: list[bytes], case: int) -> bytes:
    """The exact file the campaign's worker builds for ``case``."""
    rng = random.Random(case)
    data = seeds[case % len(seeds)]
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        data = mutate_nnp(rng, data)
    return data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("cases", type=int, nargs="+")
    parser.add_argument("--save", help="also write each case's file as DIR/case-N.nnp")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        seeds = [p.read_bytes() for p in campaign_seeds(Path(tmp))]
        for case in args.cases:
            data = case_bytes(seeds, case)
            if args.save:
                Path(args.save).mkdir(parents=True, exist_ok=True)
                (Path(args.save) / f"case-{case}.nnp").write_bytes(data)
            path = Path(tmp) / "model.nnp"
            path.write_bytes(data)
            try:
                print(f"case {case}: {exercise(path, Path(tmp))}")
            except Exception:
                print(f"case {case}: FAILURE\n{traceback.format_exc()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
