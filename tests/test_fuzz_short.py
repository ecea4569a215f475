"""A short fuzz run (2,000 mutated real .nnp files) through info/check reports, read -> check -> convert -> predict."""
from __future__ import annotations

import pytest

from tests.fuzz.harness import campaign_seeds, run_campaign

CASES = 2000


@pytest.mark.slow
def test_short_fuzz_run_has_no_failures(tmp_path):
    seeds = campaign_seeds(tmp_path)
    assert seeds, "no seed .nnp files (tests/data/console-exports or sample_projects)"
    outcomes = run_campaign(seeds, range(CASES), workers=2)
    failures = [o for o in outcomes if o.status == "failure"]
    statuses = {o.status for o in outcomes}
    assert len(outcomes) == CASES
    assert {"ok", "rejected"} <= statuses  # the mutations reach both the working and the error paths
    assert not failures, "\n".join(f"case {o.case}: {o.detail}" for o in failures[:10])
