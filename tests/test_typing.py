"""The package type-checks (it ships py.typed): mypy over nncbridge/ with pyproject's settings.

Runs where mypy is installed (the modern test environment); numpy 1.26's stubs differ, so the
Python 3.10 environment does not install it.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytest.importorskip("mypy", reason="mypy runs in the modern environment only (numpy 1.26's stubs differ)")


@pytest.mark.slow
def test_mypy_finds_no_errors(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
