from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_EXPORTS = ROOT / "tests" / "data" / "console-exports"  # copied from ../shared, with their LICENSEs
HAVE_NNABLA = importlib.util.find_spec("nnabla") is not None


def pytest_collection_modifyitems(config, items):
    if HAVE_NNABLA:
        return
    skip = pytest.mark.skip(reason="needs nnabla (runs in the Python 3.10 environment)")
    for item in items:
        if "nnabla" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_exports() -> Path:
    """The real Console exports the tests use (tests/data/console-exports, MIT, see each LICENSE)."""
    return SHARED_EXPORTS
