"""Executors that ask Console for several evaluations (num_evaluations, repeat_evaluation_type):
nncbridge evaluates once, so it says so wherever that can change the results."""
from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

import nncbridge
from nncbridge.errors import NncBridgeWarning
from tests.models import identity_nntxt, write_nnp

DROPOUT = '''function { name: "Identity" type: "Identity" input: "Input" output: "Identity" }'''


def _model(tmp_path, evaluations: int, kind: str, dropout: bool):
    text = identity_nntxt((3,)).replace(
        'network_name: "MainRuntime"',
        f'network_name: "MainRuntime"\n  num_evaluations: {evaluations}\n  repeat_evaluation_type: "{kind}"')
    if dropout:
        text = text.replace(DROPOUT, 'function { name: "Identity" type: "Dropout" input: "Input" output: "Identity" '
                                     'dropout_param { p: 0.5 seed: -1 } }')
    return write_nnp(tmp_path / "m.nnp", text)


@pytest.mark.parametrize("evaluations, kind, dropout, words", [
    (10, "std", False, "standard deviation of 10 evaluations"),
    (10, "std", True, "standard deviation of 10 evaluations"),
    (5, "mean", True, "mean of 5 evaluations through Dropout"),
    (5, "last", True, "last of 5 evaluations through Dropout"),
    (5, "mean", False, None),  # deterministic: the mean is the value
    (1, "std", True, None),  # Console's exports say num_evaluations 1, repeat_evaluation_type "mean"
])
def test_check_load_and_predict_say_when_results_differ_from_console(tmp_path, evaluations, kind, dropout, words):
    model = _model(tmp_path, evaluations, kind, dropout)
    found = [p.message for p in nncbridge.check(model) if "evaluations" in p.message]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nncbridge.load(model)
    said = [str(w.message) for w in caught if issubclass(w.category, NncBridgeWarning)]
    if words is None:
        assert found == [] and said == []
        return
    assert len(found) == 1 and words in found[0] and "evaluates once" in found[0]
    assert len(said) == 1 and words in said[0] and str(model) in said[0]


def test_predict_cli_prints_the_warning_once_even_with_worker_processes(tmp_path):
    model = _model(tmp_path, 10, "std", False)
    (tmp_path / "data.csv").write_text("x__0,x__1,x__2\n1,2,3\n4,5,6\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "nncbridge", "predict", str(model), str(tmp_path / "data.csv"),
                           "-o", str(tmp_path / "out.csv"), "--processes", "1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "standard deviation" in line]
    assert len(lines) == 1 and lines[0].startswith("nncbridge predict: warning: "), done.stderr
    assert "Traceback" not in done.stderr and "UserWarning" not in done.stderr
