"""docs/functions.md is generated: it must match what tools/gen_function_docs.py produces now."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location("gen_function_docs", ROOT / "tools" / "gen_function_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_functions_md_is_up_to_date(gen):
    expected = gen.render(gen.load_cases())
    current = (ROOT / "docs" / "functions.md").read_text(encoding="utf-8")
    assert current == expected, "docs/functions.md is stale: run python tools/gen_function_docs.py"


def test_parity_cases_name_real_functions(gen):
    from nncbridge.functions.registry import function_spec

    unknown = [name for name in gen.load_cases() if function_spec(name) is None]
    assert not unknown


def test_converter_table_reproduces_its_documented_counts():
    data = json.loads((ROOT / "tools" / "nnabla_converter_export_support.json").read_text(encoding="utf-8"))
    for category, count in data["category_counts"].items():
        rows = [f for f in data["functions"].values() if f["category"] == category]
        assert len(rows) == count["total"], category
        assert sum(f["exported"] for f in rows) == count["exported"], category
    assert sum(f["exported"] for f in data["functions"].values()) == 125


def test_case_labels_and_report_parsing(gen):
    report = {"tests": {
        "tests/parity/test_parity_recurrent.py::test_lstm[2-bidir]": {"outcome": "passed", "functions": ["LSTM"]},
        "tests/parity/test_parity_misc.py::test_loss[HuberLoss]": {"outcome": "failed", "functions": ["HuberLoss"]},
        "tests/parity/test_parity_smoke.py::test_lenet": {"outcome": "passed", "functions": ["Affine", "LSTM"]},
    }}
    assert gen.cases_from_report(report) == {"Affine": ["lenet"], "LSTM": ["lstm[2-bidir]", "lenet"]}
