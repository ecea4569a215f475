"""A short run of the dataset fuzz (tests/fuzz/datasets.py): random Console CSVs through predict_csv."""
from __future__ import annotations

import collections

import pytest

from tests.fuzz.datasets import Fixture, run_case

CASES = 400


@pytest.mark.slow
def test_short_dataset_fuzz_run_has_no_failures(tmp_path):
    fx = Fixture(tmp_path / "fixture")
    outcomes = collections.Counter(run_case(case, fx, tmp_path) for case in range(CASES))
    assert outcomes["ok"] > CASES // 4 and outcomes["rejected"] > CASES // 10  # both paths are reached
