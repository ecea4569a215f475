from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_EXPORTS = ROOT / "tests" / "data" / "console-exports"  # copied from ../shared, with their LICENSEs
HAVE_NNABLA = importlib.util.find_spec("nnabla") is not None
NNABLA_SKIP_REASON = "needs nnabla (runs in the Python 3.10 environment)"


def pytest_collection_modifyitems(config, items):
    if HAVE_NNABLA:
        return
    skip = pytest.mark.skip(reason=NNABLA_SKIP_REASON)
    for item in items:
        if "nnabla" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say how many tests skipped and why: only the nnabla oracle may be missing (no test skips for data)."""
    reasons: Counter[str] = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reasons[reason.removeprefix("Skipped: ")] += 1
    nnabla_skips = reasons.pop(NNABLA_SKIP_REASON, 0)
    if nnabla_skips:
        terminalreporter.write_line(f"{nnabla_skips} nnabla test{'s' if nnabla_skips > 1 else ''} (the nnabla oracle, "
                                    "installing beside nnabla) skipped: nnabla is not installed "
                                    "(the Python 3.10 environment of tests/run_all_envs.sh runs them)")
    for reason, count in sorted(reasons.items()):
        terminalreporter.write_line(f"{count} other test{'s' if count > 1 else ''} skipped: {reason}")


@pytest.fixture(scope="session")
def shared_exports() -> Path:
    """The real Console exports the tests use (tests/data/console-exports, MIT, see each LICENSE)."""
    return SHARED_EXPORTS
