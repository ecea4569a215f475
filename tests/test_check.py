"""``nncbridge check``: each kind of problem is found, named, and sets the exit code."""
from __future__ import annotations

import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import nncbridge
from nncbridge.cli import main
from nncbridge.errors import ModelError
from nncbridge.format.schema import new_nnp_message

VARIABLES = """
  variable { name: "x" type: "Buffer" shape { dim: -1 dim: 3 } }
  variable { name: "h" type: "Buffer" shape { dim: -1 dim: 2 } }
  variable { name: "y" type: "Buffer" shape { dim: -1 dim: 2 } }
  variable { name: "fc/W" type: "Parameter" shape { dim: 3 dim: 2 } }
  variable { name: "fc/b" type: "Parameter" shape { dim: 2 } }
"""
FUNCTIONS = """
  function { name: "fc" type: "Affine" input: "x" input: "fc/W" input: "fc/b" output: "h"
             affine_param { base_axis: 1 } }
  function { name: "act" type: "Sigmoid" input: "h" output: "y" }
"""
EXECUTOR = """
executor {
  name: "runtime"
  network_name: "net"
  data_variable { variable_name: "x" data_name: "x" }
  output_variable { variable_name: "y" data_name: "y'" }
}
"""
PARAMS = {"fc/W": np.arange(6, dtype=np.float32).reshape(3, 2) / 10, "fc/b": np.array([0.5, -0.5], np.float32)}


def build(tmp_path: Path, variables: str = VARIABLES, functions: str = FUNCTIONS, executor: str = EXECUTOR,
          params: dict | None = None, extra: str = "") -> Path:
    text = f'network {{\n  name: "net"\n  batch_size: 4\n{variables}{functions}}}\n{executor}{extra}'
    msg = new_nnp_message()
    for name, value in (PARAMS if params is None else params).items():
        p = msg.parameter.add(variable_name=name, need_grad=True)
        p.shape.dim.extend(value.shape)
        p.data.extend(np.asarray(value, np.float32).ravel().tolist())
    path = tmp_path / "model.nnp"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("nnp_version.txt", "0.1\n")
        z.writestr("network.nntxt", text)
        z.writestr("parameter.protobuf", msg.SerializeToString())
    return path


def errors(path_or_model) -> list[str]:
    return [str(p) for p in nncbridge.check(path_or_model) if p.severity == "error"]


def warnings(path_or_model) -> list[str]:
    return [str(p) for p in nncbridge.check(path_or_model) if p.severity == "warning"]


def only(lines: list[str], *needles: str) -> str:
    assert len(lines) == 1, lines
    for n in needles:
        assert n in lines[0], (n, lines[0])
    assert "\n" not in lines[0]
    return lines[0]


def test_clean_model(tmp_path):
    assert nncbridge.check(build(tmp_path)) == []


def test_problem_is_frozen_and_prints_one_line(tmp_path):
    problems = nncbridge.check(build(tmp_path, params={"fc/W": PARAMS["fc/W"]}))
    p = problems[0]
    assert p.severity == "error" and p.network == "net" and p.variable == "fc/b"
    assert str(p).startswith("error: ") and p.message in str(p)
    with pytest.raises(AttributeError):
        p.severity = "warning"  # type: ignore[misc]


def test_input_produced_by_nothing(tmp_path):
    variables = VARIABLES + '  variable { name: "t" type: "Buffer" shape { dim: -1 dim: 2 } }\n'
    functions = FUNCTIONS.replace('input: "h" output: "y"', 'input: "h" output: "s" }\n'
                                  '  function { name: "add" type: "Add2" input: "s" input: "t" output: "y"')
    variables += '  variable { name: "s" type: "Buffer" shape { dim: -1 dim: 2 } }\n'
    only(errors(build(tmp_path, variables, functions)), "network 'net'", "variable 't'", "layer 'add'",
         "produced by no layer")


def test_generator_variable_is_an_input(tmp_path):
    variables = VARIABLES + '  variable { name: "t" type: "Buffer" shape { dim: -1 dim: 2 } }\n' \
                            '  variable { name: "s" type: "Buffer" shape { dim: -1 dim: 2 } }\n'
    functions = FUNCTIONS.replace('input: "h" output: "y"', 'input: "h" output: "s" }\n'
                                  '  function { name: "add" type: "Add2" input: "s" input: "t" output: "y"')
    executor = EXECUTOR.replace('  output_variable', '  generator_variable { variable_name: "t" type: "Normal" '
                                                     'multiplier: 1.0 }\n  output_variable')
    assert errors(build(tmp_path, variables, functions, executor)) == []


def test_undeclared_input(tmp_path):
    functions = FUNCTIONS.replace('input: "h" output: "y"', 'input: "ghost" output: "y"')
    line = errors(build(tmp_path, functions=functions))
    assert any("'ghost'" in e and "layer 'act'" in e and "not a variable" in e for e in line), line


def test_unknown_function_type(tmp_path):
    functions = FUNCTIONS.replace('type: "Sigmoid"', 'type: "Sigmoidal"')
    only(errors(build(tmp_path, functions=functions)), "layer 'act'", "unknown function type 'Sigmoidal'")


def test_wrong_number_of_inputs(tmp_path):
    functions = FUNCTIONS.replace('input: "h" output: "y"', 'input: "h" input: "x" output: "y"')
    only(errors(build(tmp_path, functions=functions)), "layer 'act' (Sigmoid)", "expected 1 input", "found 2")


def test_wrong_number_of_outputs(tmp_path):
    variables = VARIABLES + '  variable { name: "y2" type: "Buffer" shape { dim: -1 dim: 2 } }\n'
    functions = FUNCTIONS.replace('output: "y"', 'output: "y" output: "y2"')
    only(errors(build(tmp_path, variables, functions)), "layer 'act' (Sigmoid)", "expected 1 output", "found 2")


def test_too_few_inputs(tmp_path):
    functions = FUNCTIONS.replace('input: "x" input: "fc/W" input: "fc/b"', 'input: "x"')
    found = errors(build(tmp_path, functions=functions))
    assert any("layer 'fc' (Affine)" in e and "expected 2 to 3 inputs, found 1" in e for e in found), found


def test_missing_parameter(tmp_path):
    only(errors(build(tmp_path, params={"fc/W": PARAMS["fc/W"]})), "network 'net'", "variable 'fc/b'",
         "not stored", "(2,)")


def test_parameter_with_wrong_shape(tmp_path):
    params = dict(PARAMS, **{"fc/W": np.zeros((2, 3), np.float32)})
    found = errors(build(tmp_path, params=params))
    assert any("'fc/W'" in e and "declared with shape (3, 2)" in e and "stored with shape (2, 3)" in e
               for e in found), found


def test_executor_names_missing_network(tmp_path):
    executor = EXECUTOR.replace('network_name: "net"', 'network_name: "nett"')
    found = errors(build(tmp_path, executor=executor))
    assert any("executor 'runtime'" in e and "network 'nett' does not exist" in e for e in found), found


@pytest.mark.parametrize("role,field", [("data variable", "data_variable"), ("output variable", "output_variable")])
def test_executor_names_missing_variable(tmp_path, role, field):
    executor = EXECUTOR.replace(f'{field} {{ variable_name: "{"x" if field == "data_variable" else "y"}"',
                                f'{field} {{ variable_name: "nope"')
    found = errors(build(tmp_path, executor=executor))
    assert any(f"executor 'runtime': {role} 'nope' is not a variable of network 'net'" in e for e in found), found


def test_cycle_is_reported_not_hung(tmp_path):
    functions = FUNCTIONS.replace('input: "x" input: "fc/W"', 'input: "y" input: "fc/W"')
    start = time.perf_counter()
    found = errors(build(tmp_path, functions=functions))
    assert time.perf_counter() - start < 2
    assert any("cycle" in e and "network 'net'" in e and "fc -> act -> fc" in e for e in found), found


def test_declared_shape_disagrees_with_inference(tmp_path):
    variables = VARIABLES.replace('name: "h" type: "Buffer" shape { dim: -1 dim: 2 }',
                                  'name: "h" type: "Buffer" shape { dim: -1 dim: 5 }')
    found = errors(build(tmp_path, variables))
    assert any("'h'" in e and "(4, 5)" in e and "(4, 2)" in e and "'fc'" in e for e in found), found


def test_nan_and_inf_in_parameters_are_warnings(tmp_path):
    params = dict(PARAMS, **{"fc/b": np.array([np.nan, np.inf], np.float32)})
    path = build(tmp_path, params=params)
    assert errors(path) == []
    only(warnings(path), "'fc/b'", "1 NaN", "1 Inf")
    assert main(["check", str(path)]) == 0


def test_loss_on_runtime_path_is_a_warning(tmp_path):
    variables = VARIABLES + '  variable { name: "t" type: "Buffer" shape { dim: -1 dim: 2 } }\n' \
                            '  variable { name: "loss" type: "Buffer" shape { dim: -1 dim: 2 } }\n'
    functions = FUNCTIONS + '  function { name: "mse" type: "SquaredError" input: "y" input: "t" output: "loss" }\n'
    executor = EXECUTOR.replace('data_name: "x" }', 'data_name: "x" }\n  data_variable { variable_name: "t" '
                                                    'data_name: "t" }').replace('variable_name: "y"',
                                                                                'variable_name: "loss"')
    path = build(tmp_path, variables, functions, executor)
    assert errors(path) == []
    only(warnings(path), "executor 'runtime'", "layer 'mse' (SquaredError)", "training-only")
    # a loss on a network used only for training is normal
    assert warnings(build(tmp_path, variables, functions)) == []


def test_unused_label_input_is_fine_for_runtime(tmp_path):
    """A training label feeding a loss that no runtime output needs is not an error for the executor."""
    variables = VARIABLES + '  variable { name: "t" type: "Buffer" shape { dim: -1 dim: 2 } }\n' \
                            '  variable { name: "loss" type: "Buffer" shape { dim: -1 dim: 2 } }\n'
    functions = FUNCTIONS + '  function { name: "mse" type: "SquaredError" input: "y" input: "t" output: "loss" }\n'
    optimizer = """
optimizer {
  name: "opt"
  network_name: "net"
  data_variable { variable_name: "x" data_name: "x" }
  data_variable { variable_name: "t" data_name: "y" }
  loss_variable { variable_name: "loss" }
}
"""
    assert nncbridge.check(build(tmp_path, variables, functions, extra=optimizer)) == []


def test_expansion_failure_is_reported(tmp_path, monkeypatch):
    import nncbridge.model.validate as validate

    def refuse(model, network, executor=None):
        raise ModelError(f"network {network.name!r}: RepeatStart 'r' has no matching RepeatEnd")

    monkeypatch.setattr(validate, "expand_network", refuse)
    found = errors(build(tmp_path))
    assert any("RepeatStart 'r' has no matching RepeatEnd" in e for e in found), found


def test_reader_warnings_become_warnings(tmp_path):
    path = build(tmp_path, extra='\nsome_future_field: 1\n')
    assert errors(path) == []
    only(warnings(path), "some_future_field")


def test_several_problems_all_listed(tmp_path):
    functions = FUNCTIONS.replace('type: "Sigmoid"', 'type: "Sigmoidal"')
    found = errors(build(tmp_path, functions=functions, params={}))
    assert len(found) == 3, found  # unknown type, two missing parameters


# -- the command line ----------------------------------------------------------------------------

def test_cli_exit_codes(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    clean = build(tmp_path / "a")
    assert main(["check", str(clean)]) == 0
    out = capsys.readouterr().out
    assert "no problems" in out
    bad_dir = tmp_path / "b"
    bad_dir.mkdir()
    bad = build(bad_dir, params={"fc/W": PARAMS["fc/W"]})
    assert main(["check", str(bad)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("error: network 'net' variable 'fc/b'") and "1 error" in out[-1]
    unreadable = tmp_path / "c.nnp"
    unreadable.write_bytes(b"nope")
    assert main(["check", str(unreadable)]) == 2


def test_cli_json(tmp_path, capsys):
    import json

    assert main(["check", "--json", str(build(tmp_path, params={}))]) == 1
    items = json.loads(capsys.readouterr().out)
    assert {i["variable"] for i in items} == {"fc/W", "fc/b"} and {i["severity"] for i in items} == {"error"}


def test_shared_exports_are_clean(shared_exports, capsys):
    for path in sorted(shared_exports.glob("*/*.nnp")):
        assert nncbridge.check(path) == [], path
        assert main(["check", str(path)]) == 0
    assert "no problems" in capsys.readouterr().out


def test_cli_subprocess(shared_exports):
    path = shared_exports / "mnist-4or9-and-lenet" / "binary-4or9-2018.nnp"
    result = subprocess.run([sys.executable, "-m", "nncbridge", "check", str(path)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.strip().endswith("OK, no problems found")


# -- Console's loop constructs are checked after expansion ----------------------------------------

REPEAT = """
network {
  name: "Main"
  batch_size: 2
  repeat_info { id: "RepeatStart" times: 2 }
  variable { name: "Input" type: "Buffer" shape: { dim: -1 dim: 3 } }
  variable { name: "RepeatStart" type: "Buffer" repeat_id: "RepeatStart" shape: { dim: -1 dim: 3 } }
  variable { name: "Affine{RepeatStart}/affine/W" type: "Parameter" repeat_id: "RepeatStart" shape: { dim: 3 dim: 3 } }
  variable { name: "Affine{RepeatStart}/affine/b" type: "Parameter" repeat_id: "RepeatStart" shape: { dim: 3 } }
  variable { name: "Affine" type: "Buffer" repeat_id: "RepeatStart" shape: { dim: -1 dim: 3 } }
  variable { name: "Tanh" type: "Buffer" repeat_id: "RepeatStart" shape: { dim: -1 dim: 3 } }
  variable { name: "RepeatEnd" type: "Buffer" shape: { dim: -1 dim: 3 } }
  function { name: "RepeatStart" type: "RepeatStart" repeat_id: "RepeatStart" input: "Input" input: "Tanh"
             output: "RepeatStart" repeat_param { repeat_id: "RepeatStart" times: 2 } }
  function { name: "Affine" type: "Affine" repeat_id: "RepeatStart" input: "RepeatStart"
             input: "Affine{RepeatStart}/affine/W" input: "Affine{RepeatStart}/affine/b" output: "Affine"
             affine_param { base_axis: 1 } }
  function { name: "Tanh" type: "Tanh" repeat_id: "RepeatStart" input: "Affine" output: "Tanh" }
  function { name: "RepeatEnd" type: "RepeatEnd" input: "Tanh" output: "RepeatEnd"
             repeat_param { repeat_id: "RepeatStart" times: 2 } }
}
executor {
  name: "Runtime"
  network_name: "Main"
  data_variable { variable_name: "Input" data_name: "x" }
  output_variable { variable_name: "RepeatEnd" data_name: "y" }
}
"""
# nnabla stores one parameter per iteration, named with the iteration index
REPEAT_PARAMS = {"Affine[0]/affine/W": np.ones((3, 3), np.float32), "Affine[0]/affine/b": np.ones(3, np.float32),
                 "Affine[1]/affine/W": np.ones((3, 3), np.float32), "Affine[1]/affine/b": np.ones(3, np.float32)}

DELAY = """
network {
  name: "Main"
  batch_size: 2
  repeat_info { id: "RecurrentInput" times: 3 }
  variable { name: "Input" type: "Buffer" shape: { dim: -1 dim: 3 dim: 2 } }
  variable { name: "Delay_Initial" type: "Buffer" shape: { dim: -1 dim: 2 } }
  variable { name: "RecurrentInput" type: "Buffer" repeat_id: "RecurrentInput" shape: { dim: -1 dim: 2 } }
  variable { name: "Delay" type: "Buffer" repeat_id: "RecurrentInput" shape: { dim: -1 dim: 2 } }
  variable { name: "Add2" type: "Buffer" repeat_id: "RecurrentInput" shape: { dim: -1 dim: 2 } }
  variable { name: "RecurrentOutput" type: "Buffer" shape: { dim: -1 dim: 3 dim: 2 } }
  function { name: "RecurrentInput" type: "RecurrentInput" repeat_id: "RecurrentInput" input: "Input"
             output: "RecurrentInput" recurrent_param { repeat_id: "RecurrentInput" axis: 1 } }
  function { name: "Delay" type: "Delay" repeat_id: "RecurrentInput" input: "Add2" input: "Delay_Initial"
             output: "Delay" recurrent_param { repeat_id: "RecurrentInput" } }
  function { name: "Add2" type: "Add2" repeat_id: "RecurrentInput" input: "RecurrentInput" input: "Delay"
             output: "Add2" }
  function { name: "RecurrentOutput" type: "RecurrentOutput" input: "Add2" output: "RecurrentOutput"
             recurrent_param { repeat_id: "RecurrentInput" axis: 1 length: 3 } }
}
executor {
  name: "Runtime"
  network_name: "Main"
  data_variable { variable_name: "Input" data_name: "x" }
  generator_variable { variable_name: "Delay_Initial" type: "Constant" multiplier: 0.5 }
  output_variable { variable_name: "RecurrentOutput" data_name: "y" }
}
"""


def _write(tmp_path: Path, text: str, params: dict) -> Path:
    msg = new_nnp_message()
    for name, value in params.items():
        p = msg.parameter.add(variable_name=name, need_grad=True)
        p.shape.dim.extend(value.shape)
        p.data.extend(value.ravel().tolist())
    path = tmp_path / "loop.nnp"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("network.nntxt", text)
        z.writestr("parameter.protobuf", msg.SerializeToString())
    return path


def test_repeat_network_is_clean(tmp_path):
    assert nncbridge.check(_write(tmp_path, REPEAT, REPEAT_PARAMS)) == []


def test_repeat_network_missing_iteration_parameter(tmp_path):
    params = {k: v for k, v in REPEAT_PARAMS.items() if k != "Affine[1]/affine/W"}
    only(errors(_write(tmp_path, REPEAT, params)), "network 'Main'", "'Affine[1]/affine/W'", "not stored")


def test_delay_feedback_is_not_a_cycle(tmp_path):
    assert nncbridge.check(_write(tmp_path, DELAY, {})) == []
    missing_generator = DELAY.replace(
        '  generator_variable { variable_name: "Delay_Initial" type: "Constant" multiplier: 0.5 }\n', "")
    found = errors(_write(tmp_path, missing_generator, {}))
    assert found and all("'Delay_Initial'" in e for e in found), found


def test_missing_parameter_is_refused_by_convert_and_load(tmp_path):
    path = build(tmp_path, params={"fc/W": PARAMS["fc/W"]})
    for call in (nncbridge.to_onnx, nncbridge.load):
        with pytest.raises(nncbridge.NncBridgeError, match=r"'fc/b' is a parameter missing from the file"):
            call(path)
