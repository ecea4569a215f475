"""Unrolling Console's Repeat/Recurrent/Delay layers and generator variables (no nnabla needed).

The networks are written as Console writes them (text format, ``repeat_id`` on variables and
layers, ``repeat_param``/``recurrent_param``). Expected names follow nnabla's unrolling rule;
expected values come from plain numpy loops written from the layers' definitions.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

import nncbridge
from nncbridge.errors import ModelError, UnsupportedFunctionError
from nncbridge.model.expand import (
    Generator,
    expand_network,
    executor_generators,
    expanded_name,
    stored_parameter_names,
)
from nncbridge.model.graph import Model, Network, Parameter

from tests.nntxt import (
    elman,
    executor,
    fn,
    generator_concat,
    nested_repeats,
    network,
    recurrent_param,
    repeat_affine_tanh,
    repeat_param,
    var,
)


def read_text(tmp_path: Path, text: str, params: dict[str, tuple[int, ...]] | None = None, seed: int = 0) -> Model:
    path = tmp_path / "net.nntxt"
    path.write_text(text)
    model = nncbridge.read(path)
    rng = np.random.RandomState(seed)
    for name, shape in (params or {}).items():
        model.parameters[name] = Parameter(name, rng.uniform(-1, 1, size=shape).astype(np.float32))
    return model


# -- a tiny numpy interpreter for the layers used here ------------------------------------------------


def _affine(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1) @ w.reshape(w.shape[0], -1) + b.reshape(-1)


_NUMPY: dict[str, Callable] = {
    "Affine": lambda f, x, w, b: [_affine(x, w, b)],
    "Tanh": lambda f, x: [np.tanh(x)],
    "Sigmoid": lambda f, x: [1 / (1 + np.exp(-x))],
    "Identity": lambda f, x: [x],
    "Add2": lambda f, a, b: [a + b],
    "Concatenate": lambda f, *xs: [np.concatenate(xs, axis=f.params["axis"])],
    "Split": lambda f, x: [np.take(x, i, axis=f.params["axis"]) for i in range(x.shape[f.params["axis"]])],
    "Stack": lambda f, *xs: [np.stack(xs, axis=f.params["axis"])],
}


def run_numpy(model: Model, net: Network, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from nncbridge.model.shapes import topological_order

    values = dict(feeds)
    values.update({k: p.data.astype(np.float64) for k, p in model.parameters.items()})
    for f in topological_order(net):
        outs = _NUMPY[f.type](f, *[values[i] for i in f.inputs])
        assert len(outs) == len(f.outputs), f.name
        values.update(zip(f.outputs, outs))
    return values


def _p(model: Model, name: str) -> np.ndarray:
    return model.parameters[name].data.astype(np.float64)


# -- Repeat ---------------------------------------------------------------------------------------------


def test_repeat_unrolls_with_per_iteration_parameters(tmp_path):
    model = read_text(tmp_path, *repeat_affine_tanh(3))
    before = copy.deepcopy(model.networks["Main"])
    net = expand_network(model, model.networks["Main"], model.executors["Runtime"])
    assert model.networks["Main"] == before, "the model's network must not change"
    assert net is not model.networks["Main"] and net.repeat_info == {}

    affines = [f for f in net.functions if f.type == "Affine"]
    assert [f.name for f in affines] == [f"Affine_RepeatStart[{i}]" for i in range(3)]
    assert [f.inputs[1:] for f in affines] == [[f"Affine[{i}]/affine/W", f"Affine[{i}]/affine/b"] for i in range(3)]
    assert affines[0].inputs[0] == "Input"
    assert [f.inputs[0] for f in affines[1:]] == ["Tanh_RepeatStart[0]", "Tanh_RepeatStart[1]"]
    (sigmoid,) = [f for f in net.functions if f.type == "Sigmoid"]
    assert sigmoid.inputs == ["Tanh_RepeatStart[2]"]
    assert not any(f.repeat_ids for f in net.functions) and not any(v.repeat_ids for v in net.variables.values())
    assert {"RepeatStart", "RepeatEnd", "Affine", "Tanh"}.isdisjoint(net.variables)
    assert all(net.variables[p].is_parameter for p in model.parameters)

    x = np.random.RandomState(1).uniform(-2, 2, (2, 4))
    h = x
    for i in range(3):
        h = np.tanh(h @ _p(model, f"Affine[{i}]/affine/W") + _p(model, f"Affine[{i}]/affine/b"))
    got = run_numpy(model, net, {"Input": x})["Sigmoid"]
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-h)), rtol=1e-12)


def test_repeat_end_as_executor_output_keeps_its_name(tmp_path):
    text, params = repeat_affine_tanh(2)
    text = text.replace('variable_name: "Sigmoid"', 'variable_name: "RepeatEnd"')
    model = read_text(tmp_path, text, params)
    net = expand_network(model, model.networks["Main"], model.executors["Runtime"])
    (identity,) = [f for f in net.functions if f.outputs == ["RepeatEnd"]]
    assert identity.type == "Identity" and identity.inputs == ["Tanh_RepeatStart[1]"]


def test_nested_repeats(tmp_path):
    model = read_text(tmp_path, *nested_repeats(2, 3))
    net = expand_network(model, model.networks["Main"], model.executors["Runtime"])
    assert sum(f.type == "Affine" for f in net.functions) == 2 + 2 * 3
    used = {i for f in net.functions for i in f.inputs}
    assert set(model.parameters) <= used
    assert "Affine_1/affine/b" in used  # shared, not renamed
    assert all(net.variables[n].is_parameter for n in model.parameters)

    x = np.random.RandomState(2).uniform(-2, 2, (3, 4))
    h = x
    for i in range(2):
        a = h @ _p(model, f"Affine_1/affine/W_RepeatStart_1[{i}]") + _p(model, "Affine_1/affine/b")
        g = a
        for j in range(3):
            g = np.tanh(g @ _p(model, f"Affine_2[{j}]/affine/W_RepeatStart_1[{i}]")
                        + _p(model, f"Affine_2[{j}]/affine/b_RepeatStart_1[{i}]"))
        h = g + h
    got = run_numpy(model, net, {"Input": x})["RepeatEnd_1"]
    np.testing.assert_allclose(got, h, rtol=1e-12)


def test_stored_parameter_names(tmp_path):
    text, params = nested_repeats(2, 3)
    model = read_text(tmp_path, text)
    names = stored_parameter_names(model.networks["Main"])
    assert names["Affine_1/affine/b"] == ["Affine_1/affine/b"]
    assert names["Affine_1/affine/W"] == ["Affine_1/affine/W_RepeatStart_1[0]", "Affine_1/affine/W_RepeatStart_1[1]"]
    assert len(names["Affine_2{RepeatStart_2}/affine/W"]) == 6
    assert sorted(n for group in names.values() for n in group) == sorted(params)


def test_expanded_name_rule():
    assert expanded_name("Affine{R}/affine/W", ["R"], {"R": 2}) == "Affine[2]/affine/W"
    assert expanded_name("Affine/affine/W", ["R"], {"R": 2}) == "Affine/affine/W_R[2]"
    assert expanded_name("A{S}/W", ["R", "S"], {"R": 1, "S": 0}) == "A[0]/W_R[1]"


# -- Recurrent / Delay ----------------------------------------------------------------------------------


def test_elman_recurrence_with_delay(tmp_path):
    model = read_text(tmp_path, *elman(steps=5, n_in=3, n_hidden=4))
    net = expand_network(model, model.networks["Main"], model.executors["Runtime"])
    (split,) = [f for f in net.functions if f.type == "Split"]
    assert split.inputs == ["Input"] and split.params == {"axis": 1}
    assert split.outputs == [f"RecurrentInput_RecurrentInput[{k}]" for k in range(5)]
    (stack,) = [f for f in net.functions if f.type == "Stack"]
    assert stack.inputs == [f"Tanh_RecurrentInput[{k}]" for k in range(5)] and stack.outputs == ["RecurrentOutput"]
    concats = [f for f in net.functions if f.type == "Concatenate"]
    assert [c.inputs[1] for c in concats] == ["Delay_Initial"] + [f"Tanh_RecurrentInput[{k}]" for k in range(4)]
    assert all(f.inputs[1] == "Affine/affine/W" for f in net.functions if f.type == "Affine")

    rng = np.random.RandomState(3)
    x = rng.uniform(-1, 1, (2, 5, 3))
    h0 = np.full((2, 4), 0.5)
    w, b = _p(model, "Affine/affine/W"), _p(model, "Affine/affine/b")
    h, seq = h0, []
    for t in range(5):
        h = np.tanh(np.concatenate([x[:, t], h], axis=1) @ w + b)
        seq.append(h)
    got = run_numpy(model, net, {"Input": x, "Delay_Initial": h0})["RecurrentOutput"]
    np.testing.assert_allclose(got, np.stack(seq, axis=1), rtol=1e-12)


def test_recurrent_output_length_shorter_than_times(tmp_path):
    text, params = elman(steps=4)
    text = text.replace("length: 4", "length: 2").replace("dim: -1 dim: 4 dim: 4", "dim: -1 dim: 2 dim: 4")
    model = read_text(tmp_path, text, params)
    net = expand_network(model, model.networks["Main"], model.executors["Runtime"])
    (stack,) = [f for f in net.functions if f.type == "Stack"]
    assert stack.inputs == ["Tanh_RecurrentInput[0]", "Tanh_RecurrentInput[1]"]


def test_plain_network_is_copied_not_shared(tmp_path):
    model = read_text(tmp_path, *generator_concat())
    original = model.networks["Main"]
    net = expand_network(model, original, model.executors["Runtime"])
    assert net == original and net is not original and net.functions[0] is not original.functions[0]


# -- errors ---------------------------------------------------------------------------------------------


def _expect_error(tmp_path: Path, text: str, *fragments: str, params: dict | None = None) -> str:
    model = read_text(tmp_path, text, params)
    with pytest.raises(ModelError) as info:
        expand_network(model, model.networks["Main"], model.executors.get("Runtime"))
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_unknown_repeat_id(tmp_path):
    text, _ = repeat_affine_tanh(3)
    text = text.replace('repeat_param { repeat_id: "RepeatStart" times: 3 }\n  }\n  function {\n    name: "Sigmoid"',
                        'repeat_param { repeat_id: "Nope" times: 3 }\n  }\n  function {\n    name: "Sigmoid"')
    _expect_error(tmp_path, text, "'RepeatEnd'", "'Nope'", "repeat_info")


def test_variable_with_undeclared_repeat_id(tmp_path):
    text, _ = repeat_affine_tanh(3)
    text = text.replace('repeat_info {\n    id: "RepeatStart"', 'repeat_info {\n    id: "Other"')
    _expect_error(tmp_path, text, "'RepeatStart'", "does not declare")


@pytest.mark.parametrize("drop", ["RepeatStart", "RepeatEnd"])
def test_unmatched_repeat_start_end(tmp_path, drop):
    text, _ = repeat_affine_tanh(3)
    start = text.index(f'  function {{\n    name: "{drop}"')
    end = text.index("  }\n", text.index("repeat_param", start)) + 4
    text = text[:start] + text[end:]
    other = "RepeatEnd" if drop == "RepeatStart" else "RepeatStart"
    _expect_error(tmp_path, text, f"has a {other} but no {drop}")


def test_recurrent_input_without_output(tmp_path):
    text, _ = elman()
    start = text.index('  function {\n    name: "RecurrentOutput"')
    text = text[:start] + text[text.index("  }\n", start) + 4:]
    _expect_error(tmp_path, text, "'RecurrentInput'", "no RecurrentOutput")


def test_delay_outside_recurrent_block(tmp_path):
    text, _ = elman()
    text = text.replace('    name: "Delay"\n    type: "Delay"\n    repeat_id: "RecurrentInput"\n',
                        '    name: "Delay"\n    type: "Delay"\n')
    _expect_error(tmp_path, text, "'Delay'", "Delay outside its recurrent block")


def test_delay_initial_state_from_inside_the_block(tmp_path):
    text, _ = elman()
    text = text.replace('input: "Tanh"\n    input: "Delay_Initial"', 'input: "Tanh"\n    input: "Affine"')
    _expect_error(tmp_path, text, "'Delay'", "takes as initial state 'Affine'", "inside block 'RecurrentInput'")


def test_repeat_start_loop_input_from_outside_the_block(tmp_path):
    text, _ = repeat_affine_tanh(3)
    text = text.replace('input: "Input"\n    input: "Tanh"', 'input: "Input"\n    input: "Input"')
    _expect_error(tmp_path, text, "'RepeatStart'", "loops back 'Input'", "inside block 'RepeatStart'")


@pytest.mark.parametrize("times", [0, -3, 10**9])
def test_times_not_positive_or_absurd(tmp_path, times):
    text, _ = repeat_affine_tanh(3)
    text = text.replace("times: 3\n", f"times: {times}\n", 1)
    _expect_error(tmp_path, text, "'RepeatStart'", "times")


def test_recurrent_length_not_positive(tmp_path):
    text, _ = elman(steps=5)
    text = text.replace(" length: 5", "")
    _expect_error(tmp_path, text, "'RecurrentOutput'", "length")


def test_recurrent_steps_disagree_with_times(tmp_path):
    text, _ = elman(steps=5)
    text = text.replace('times: 5', 'times: 6')
    _expect_error(tmp_path, text, "'RecurrentInput'", "5 steps", "6")


def nested_chain(depth: int, times: int) -> str:
    """``depth`` nested repeat blocks around one Tanh; every RepeatStart loops back to itself."""
    ids = [f"R{k}" for k in range(depth)]
    body = var("Input", (-1, 2))
    prev = "Input"
    for k in range(depth):
        body += var(f"S{k}", (-1, 2), ids[:k + 1])
        body += fn(f"S{k}", "RepeatStart", [prev, f"S{k}"], [f"S{k}"], ids[:k + 1], repeat_param(ids[k], times))
        prev = f"S{k}"
    body += var("T", (-1, 2), ids) + fn("T", "Tanh", [prev], ["T"], ids)
    prev = "T"
    for k in reversed(range(depth)):
        body += var(f"E{k}", (-1, 2), ids[:k]) + fn(f"E{k}", "RepeatEnd", [prev], [f"E{k}"], ids[:k],
                                                   repeat_param(ids[k], times))
        prev = f"E{k}"
    return network("Main", {r: times for r in ids}, body) + executor("Main", ["Input"], ["E0"])


def test_expanded_size_is_capped(tmp_path):
    start = time.perf_counter()
    _expect_error(tmp_path, nested_chain(4, 50), "more than 100000 layers")
    _expect_error(tmp_path, nested_chain(40, 2), "more than 100000 layers")
    assert time.perf_counter() - start < 3


def test_small_nested_chain_runs(tmp_path):
    model = read_text(tmp_path, nested_chain(3, 2))
    net = expand_network(model, model.networks["Main"], model.executors["Runtime"])
    assert sum(f.type == "Tanh" for f in net.functions) == 8
    values = run_numpy(model, net, {"Input": np.ones((1, 2))})
    np.testing.assert_allclose(values["E0"], np.tanh(np.ones((1, 2))))


@pytest.mark.parametrize("depth", [64, 1000])
def test_deep_nesting_does_not_recurse(depth):
    from nncbridge.model.graph import Executor, Function, OutputVariable, Variable

    ids = tuple(f"R{k}" for k in range(depth))
    net = Network("Main", repeat_info={r: 1 for r in ids}, variables={"Input": Variable("Input", shape=(-1, 2))})
    prev = "Input"
    for k in range(depth):
        net.variables[f"S{k}"] = Variable(f"S{k}", shape=(-1, 2), repeat_ids=ids[:k + 1])
        net.functions.append(Function(f"S{k}", "RepeatStart", [prev, f"S{k}"], [f"S{k}"], {}, ids[:k + 1],
                                      {"repeat_id": ids[k], "times": 1}))
        prev = f"S{k}"
    net.variables["T"] = Variable("T", shape=(-1, 2), repeat_ids=ids)
    net.functions.append(Function("T", "Tanh", [prev], ["T"], {}, ids))
    prev = "T"
    for k in reversed(range(depth)):
        net.variables[f"E{k}"] = Variable(f"E{k}", shape=(-1, 2), repeat_ids=ids[:k])
        net.functions.append(Function(f"E{k}", "RepeatEnd", [prev], [f"E{k}"], {}, ids[:k],
                                      {"repeat_id": ids[k], "times": 1}))
        prev = f"E{k}"
    model = Model(networks={"Main": net})
    exe = Executor("Runtime", "Main", outputs=[OutputVariable("E0", "E0")])
    start = time.perf_counter()
    try:
        expanded = expand_network(model, net, exe)
    except ModelError as e:
        assert depth > 64 and "unrolls at most" in str(e)
    else:
        values = run_numpy(model, expanded, {"Input": np.ones((1, 2))})
        np.testing.assert_allclose(values["E0"], np.tanh(np.ones((1, 2))))
    assert time.perf_counter() - start < 2


def test_loop_of_aliases_is_an_error(tmp_path):
    # RepeatStart(x=RepeatEnd, loop=RepeatStart) and RepeatEnd(RepeatStart): only pass-throughs, no computation
    body = (var("S", (-1, 2), ["R"]) + var("E", (-1, 2)) + var("Y", (-1, 2))
            + fn("S", "RepeatStart", ["E", "S"], ["S"], ["R"], repeat_param("R", 3))
            + fn("E", "RepeatEnd", ["S"], ["E"], [], repeat_param("R", 3)) + fn("Y", "Tanh", ["E"], ["Y"]))
    _expect_error(tmp_path, network("Main", {"R": 3}, body), "in a loop")


def test_layer_reading_inside_a_block_from_outside(tmp_path):
    text, params = repeat_affine_tanh(3)
    text = text.replace('input: "RepeatEnd"\n    output: "Sigmoid"', 'input: "Tanh"\n    output: "Sigmoid"')
    _expect_error(tmp_path, text, "'Sigmoid'", "'Tanh'", "inside block 'RepeatStart'")


def test_executor_cannot_read_a_variable_inside_a_block(tmp_path):
    text, params = repeat_affine_tanh(3)
    text = text.replace('variable_name: "Sigmoid"', 'variable_name: "Tanh"')
    _expect_error(tmp_path, text, "'Tanh'", "inside block")


# -- generator variables -------------------------------------------------------------------------------


def test_generators_constant_and_range_values(tmp_path):
    model = read_text(tmp_path, *generator_concat("Constant", 2.5))
    net = expand_network(model, model.networks["Main"], model.executors["Runtime"])
    (gen,) = executor_generators(net, model.executors["Runtime"].generators)
    assert gen == Generator("Noise", "Constant", 2.5, (-1, 3)) and gen.batched and gen.deterministic
    np.testing.assert_array_equal(gen.value(4), np.full((4, 3), 2.5, np.float32))
    ramp = Generator("R", "Range", 0.5, (-1, 2, 3)).value(2)
    np.testing.assert_array_equal(ramp[1, 1], [0.0, 0.5, 1.0])
    assert ramp.shape == (2, 2, 3)


def test_random_generators_need_an_rng(tmp_path):
    gen = Generator("z", "Normal", 0.1, (-1, 1000))
    assert not gen.deterministic
    with pytest.raises(UnsupportedFunctionError, match="'z'"):
        gen.value(2)
    z = gen.value(2, np.random.RandomState(0))
    assert z.shape == (2, 1000) and 0.08 < z.std() < 0.12
    u = Generator("u", "Uniform", 3.0, (-1, 1000)).value(3, np.random.RandomState(0))
    assert u.min() >= -3 and u.max() <= 3 and u.max() > 2.9


def test_unknown_generator_type(tmp_path):
    model = read_text(tmp_path, *generator_concat("Poisson", 1.0))
    with pytest.raises(ModelError, match="'Noise'.*Poisson"):
        executor_generators(model.networks["Main"], model.executors["Runtime"].generators)


# -- through ONNX (onnxruntime) --------------------------------------------------------------------------


def _run_onnx(proto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {k: v.astype(np.float32) for k, v in feeds.items()})


def test_repeat_through_onnx(tmp_path):
    pytest.importorskip("onnx")
    model = read_text(tmp_path, *repeat_affine_tanh(3))
    proto = nncbridge.to_onnx(model)
    x = np.random.RandomState(4).uniform(-2, 2, (3, 4))
    h = x
    for i in range(3):
        h = np.tanh(h @ _p(model, f"Affine[{i}]/affine/W") + _p(model, f"Affine[{i}]/affine/b"))
    for b in (3, 1):
        (got,) = _run_onnx(proto, {"Input": x[:b]})
        np.testing.assert_allclose(got, 1 / (1 + np.exp(-h[:b])), atol=1e-5)


@pytest.mark.parametrize("kind, multiplier", [("Constant", -1.5), ("Range", 0.25)])
def test_generator_through_onnx_follows_the_batch(tmp_path, kind, multiplier):
    pytest.importorskip("onnx")
    body = (var("Input", (-1, 2)) + var("Noise", (-1, 2, 3)) + var("Tanh", (-1, 2)) + var("Sigmoid", (-1, 2, 3))
            + fn("Tanh", "Tanh", ["Input"], ["Tanh"]) + fn("Sigmoid", "Sigmoid", ["Noise"], ["Sigmoid"]))
    text = network("Main", {}, body) + executor("Main", ["Input"], ["Tanh", "Sigmoid"], [("Noise", kind, multiplier)])
    proto = nncbridge.to_onnx(read_text(tmp_path, text))
    noise = np.full((2, 3), multiplier) if kind == "Constant" else np.tile(np.arange(3) * multiplier, (2, 1))
    for b in (4, 1):
        _, got = _run_onnx(proto, {"Input": np.zeros((b, 2))})
        np.testing.assert_allclose(got, np.broadcast_to(1 / (1 + np.exp(-noise)), (b, 2, 3)), atol=1e-6)


def test_random_generator_export_is_refused_clearly(tmp_path):
    pytest.importorskip("onnx")
    body = var("Input", (-1, 2)) + var("Noise", (-1, 2)) + var("Tanh", (-1, 2)) + fn("Tanh", "Tanh", ["Noise"], ["Tanh"])
    text = network("Main", {}, body) + executor("Main", ["Input"], ["Tanh"], [("Noise", "Normal", 1.0)])
    with pytest.raises(UnsupportedFunctionError, match="'Noise'.*Normal"):
        nncbridge.to_onnx(read_text(tmp_path, text))
