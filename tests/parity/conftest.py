"""Parity report for docs/functions.md.

With ``NNCBRIDGE_PARITY_REPORT=path`` set, every test records the nnabla function types of each
network it converted successfully to ONNX, and its outcome; the JSON written to ``path`` at the
end of the session is what ``tools/gen_function_docs.py`` turns into the "parity cases" column.
No naming convention is needed: a function counts as tested by a test when the test passed and
converted a network containing it.
"""
from __future__ import annotations

import json
import os
from typing import Any

import pytest

_REPORT_ENV = "NNCBRIDGE_PARITY_REPORT"
_state: dict[str, Any] = {"current": None, "pending": None, "tests": {}}


def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get(_REPORT_ENV):
        return
    from nncbridge.export import onnx_export

    original_needed = onnx_export.needed_functions
    original_to_onnx = onnx_export.to_onnx

    def needed_functions(network, outputs):  # type: ignore[no-untyped-def]
        functions = original_needed(network, outputs)
        _state["pending"] = sorted({f.type for f in functions})
        return functions

    def to_onnx(*args, **kwargs):  # type: ignore[no-untyped-def]
        _state["pending"] = None
        proto = original_to_onnx(*args, **kwargs)
        test = _state["tests"].get(_state["current"])
        if test is not None and _state["pending"]:
            test["functions"] = sorted(set(test["functions"]) | set(_state["pending"]))
        return proto

    onnx_export.needed_functions = needed_functions
    onnx_export.to_onnx = to_onnx


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if os.environ.get(_REPORT_ENV):
        _state["current"] = item.nodeid
        _state["tests"][item.nodeid] = {"outcome": "unknown", "functions": []}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    outcome = yield
    report = outcome.get_result()
    test = _state["tests"].get(item.nodeid)
    if test is None:
        return
    if report.failed:
        test["outcome"] = "failed"
    elif report.when == "call" and test["outcome"] != "failed":
        test["outcome"] = "skipped" if report.skipped else "passed"
    elif report.skipped and test["outcome"] == "unknown":
        test["outcome"] = "skipped"


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get(_REPORT_ENV)
    if path and _state["tests"]:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"tests": _state["tests"]}, f, indent=1, sort_keys=True)
