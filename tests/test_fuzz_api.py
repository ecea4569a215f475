"""A short run of the Predictor API fuzz (tests/fuzz/api.py): random Python values as inputs."""
from __future__ import annotations

import collections

from tests.fuzz.api import Fixture, run_case

CASES = 3000


def test_short_api_fuzz_run_has_no_failures(tmp_path):
    fx = Fixture(tmp_path)
    outcomes = collections.Counter(run_case(case, fx) for case in range(CASES))
    assert outcomes["ok"] > CASES // 10 and outcomes["rejected"] > CASES // 10  # both paths are reached
