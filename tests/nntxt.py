"""Console-style nntxt builders (text format, ``repeat_id`` on variables and layers,
``repeat_param``/``recurrent_param``), used by tests/test_expand.py, tests/parity/test_parity_expand.py
and benchmarks/make_zoo.py. Plain Python: importing this needs neither pytest nor nncbridge."""
from __future__ import annotations

from typing import Iterable, Sequence


def var(name: str, shape: Sequence[int], ids: Iterable[str] = (), kind: str = "Buffer") -> str:
    rids = "".join(f'    repeat_id: "{r}"\n' for r in ids)
    dims = " ".join(f"dim: {d}" for d in shape)
    return f'  variable {{\n    name: "{name}"\n    type: "{kind}"\n{rids}    shape: {{ {dims} }}\n  }}\n'


def param(name: str, shape: Sequence[int], ids: Iterable[str] = ()) -> str:
    return var(name, shape, ids, "Parameter")


def fn(name: str, type_: str, inputs: Sequence[str], outputs: Sequence[str], ids: Iterable[str] = (),
       extra: str = "") -> str:
    body = f'    name: "{name}"\n    type: "{type_}"\n'
    body += "".join(f'    repeat_id: "{r}"\n' for r in ids)
    body += "".join(f'    input: "{i}"\n' for i in inputs)
    body += "".join(f'    output: "{o}"\n' for o in outputs)
    return f"  function {{\n{body}{('    ' + extra + chr(10)) if extra else ''}  }}\n"


def repeat_param(rid: str, times: int) -> str:
    return f'repeat_param {{ repeat_id: "{rid}" times: {times} }}'


def recurrent_param(rid: str, axis: int, length: int = 0) -> str:
    return f'recurrent_param {{ repeat_id: "{rid}" axis: {axis}' + (f" length: {length}" if length else "") + " }"


AFFINE = "affine_param { base_axis: 1 }"


def network(name: str, repeat_info: dict[str, int], body: str, batch_size: int = 2) -> str:
    infos = "".join(f'  repeat_info {{\n    id: "{k}"\n    times: {v}\n  }}\n' for k, v in repeat_info.items())
    return f'network {{\n  name: "{name}"\n  batch_size: {batch_size}\n{infos}{body}}}\n'


def executor(network_name: str, data: Sequence[str], outputs: Sequence[str],
             generators: Sequence[tuple[str, str, float]] = ()) -> str:
    text = f'executor {{\n  name: "Runtime"\n  network_name: "{network_name}"\n'
    text += "".join(f'  data_variable {{\n    variable_name: "{d}"\n    data_name: "{d}"\n  }}\n' for d in data)
    text += "".join(f'  generator_variable {{\n    variable_name: "{g}"\n    type: "{t}"\n    multiplier: {m}\n  }}\n'
                    for g, t, m in generators)
    text += "".join(f'  output_variable {{\n    variable_name: "{o}"\n    data_name: "{o}"\n  }}\n' for o in outputs)
    return text + "}\n"


def repeat_affine_tanh(times: int = 3, n: int = 4) -> tuple[str, dict[str, tuple[int, ...]]]:
    """Input -> RepeatStart -> [Affine -> Tanh] x times -> RepeatEnd -> Sigmoid.

    Affine's parameters are declared with ``{RepeatStart}`` in their names (one per iteration).
    """
    r = "RepeatStart"
    body = (var("Input", (-1, n)) + var("RepeatStart", (-1, n), [r])
            + param("Affine{RepeatStart}/affine/W", (n, n), [r]) + param("Affine{RepeatStart}/affine/b", (n,), [r])
            + var("Affine", (-1, n), [r]) + var("Tanh", (-1, n), [r]) + var("RepeatEnd", (-1, n))
            + var("Sigmoid", (-1, n))
            + fn("RepeatStart", "RepeatStart", ["Input", "Tanh"], ["RepeatStart"], [r], repeat_param(r, times))
            + fn("Affine", "Affine", ["RepeatStart", "Affine{RepeatStart}/affine/W", "Affine{RepeatStart}/affine/b"],
                 ["Affine"], [r], AFFINE)
            + fn("Tanh", "Tanh", ["Affine"], ["Tanh"], [r])
            + fn("RepeatEnd", "RepeatEnd", ["Tanh"], ["RepeatEnd"], [], repeat_param(r, times))
            + fn("Sigmoid", "Sigmoid", ["RepeatEnd"], ["Sigmoid"]))
    text = network("Main", {r: times}, body) + executor("Main", ["Input"], ["Sigmoid"])
    params = {}
    for i in range(times):
        params[f"Affine[{i}]/affine/W"] = (n, n)
        params[f"Affine[{i}]/affine/b"] = (n,)
    return text, params


def nested_repeats(outer: int = 2, inner: int = 3, n: int = 4) -> tuple[str, dict[str, tuple[int, ...]]]:
    """RepeatStart_1 x outer [ Affine_1 -> RepeatStart_2 x inner [ Affine_2 -> Tanh_2 ] -> RepeatEnd_2
    -> Add2(RepeatEnd_2, RepeatStart_1) ] -> RepeatEnd_1 (the executor's output).

    Affine_1/affine/W has the old-style name (``_RepeatStart_1[i]`` appended), Affine_1/affine/b has
    no repeat id (shared by every iteration), Affine_2's parameters mix both styles.
    """
    r1, r2 = "RepeatStart_1", "RepeatStart_2"
    body = (var("Input", (-1, n)) + var("RepeatStart_1", (-1, n), [r1])
            + param("Affine_1/affine/W", (n, n), [r1]) + param("Affine_1/affine/b", (n,))
            + var("Affine_1", (-1, n), [r1]) + var("RepeatStart_2", (-1, n), [r1, r2])
            + param("Affine_2{RepeatStart_2}/affine/W", (n, n), [r1, r2])
            + param("Affine_2{RepeatStart_2}/affine/b", (n,), [r1, r2])
            + var("Affine_2", (-1, n), [r1, r2]) + var("Tanh_2", (-1, n), [r1, r2])
            + var("RepeatEnd_2", (-1, n), [r1]) + var("Add2", (-1, n), [r1]) + var("RepeatEnd_1", (-1, n))
            + fn("RepeatStart_1", "RepeatStart", ["Input", "Add2"], ["RepeatStart_1"], [r1], repeat_param(r1, outer))
            + fn("Affine_1", "Affine", ["RepeatStart_1", "Affine_1/affine/W", "Affine_1/affine/b"], ["Affine_1"],
                 [r1], AFFINE)
            + fn("RepeatStart_2", "RepeatStart", ["Affine_1", "Tanh_2"], ["RepeatStart_2"], [r1, r2],
                 repeat_param(r2, inner))
            + fn("Affine_2", "Affine", ["RepeatStart_2", "Affine_2{RepeatStart_2}/affine/W",
                                        "Affine_2{RepeatStart_2}/affine/b"], ["Affine_2"], [r1, r2], AFFINE)
            + fn("Tanh_2", "Tanh", ["Affine_2"], ["Tanh_2"], [r1, r2])
            + fn("RepeatEnd_2", "RepeatEnd", ["Tanh_2"], ["RepeatEnd_2"], [r1], repeat_param(r2, inner))
            + fn("Add2", "Add2", ["RepeatEnd_2", "RepeatStart_1"], ["Add2"], [r1])
            + fn("RepeatEnd_1", "RepeatEnd", ["Add2"], ["RepeatEnd_1"], [], repeat_param(r1, outer)))
    text = network("Main", {r1: outer, r2: inner}, body) + executor("Main", ["Input"], ["RepeatEnd_1"])
    params: dict[str, tuple[int, ...]] = {"Affine_1/affine/b": (n,)}
    for i in range(outer):
        params[f"Affine_1/affine/W_RepeatStart_1[{i}]"] = (n, n)
        for j in range(inner):
            params[f"Affine_2[{j}]/affine/W_RepeatStart_1[{i}]"] = (n, n)
            params[f"Affine_2[{j}]/affine/b_RepeatStart_1[{i}]"] = (n,)
    return text, params


def elman(steps: int = 5, n_in: int = 3, n_hidden: int = 4, initial: float = 0.5,
          generator: str = "Constant") -> tuple[str, dict[str, tuple[int, ...]]]:
    """Elman cell over ``Input`` (batch, steps, n_in) split along axis 1, as Console's tutorial
    network: h_t = tanh(Affine(concat(x_t, h_{t-1}))), h_{-1} = Delay_Initial (a generator
    variable), output RecurrentOutput (batch, steps, n_hidden). Affine's parameters are shared.
    """
    r = "RecurrentInput"
    body = (var("Input", (-1, steps, n_in)) + var("Delay_Initial", (-1, n_hidden))
            + param("Affine/affine/W", (n_in + n_hidden, n_hidden)) + param("Affine/affine/b", (n_hidden,))
            + var("RecurrentInput", (-1, n_in), [r]) + var("Delay", (-1, n_hidden), [r])
            + var("Concatenate", (-1, n_in + n_hidden), [r]) + var("Affine", (-1, n_hidden), [r])
            + var("Tanh", (-1, n_hidden), [r]) + var("RecurrentOutput", (-1, steps, n_hidden))
            + fn("RecurrentInput", "RecurrentInput", ["Input"], ["RecurrentInput"], [r], recurrent_param(r, 1))
            + fn("Delay", "Delay", ["Tanh", "Delay_Initial"], ["Delay"], [r], f'recurrent_param {{ repeat_id: "{r}" }}')
            + fn("Concatenate", "Concatenate", ["RecurrentInput", "Delay"], ["Concatenate"], [r],
                 "concatenate_param { axis: 1 }")
            + fn("Affine", "Affine", ["Concatenate", "Affine/affine/W", "Affine/affine/b"], ["Affine"], [r], AFFINE)
            + fn("Tanh", "Tanh", ["Affine"], ["Tanh"], [r])
            + fn("RecurrentOutput", "RecurrentOutput", ["Tanh"], ["RecurrentOutput"], [],
                 recurrent_param(r, 1, steps)))
    text = (network("Main", {r: steps}, body)
            + executor("Main", ["Input"], ["RecurrentOutput"], [("Delay_Initial", generator, initial)]))
    return text, {"Affine/affine/W": (n_in + n_hidden, n_hidden), "Affine/affine/b": (n_hidden,)}


def affine_gate(name: str, source: str, activation: str, features: int, n_hidden: int, rid: str,
                params: dict[str, tuple[int, ...]]) -> str:
    """A gate of a recurrent cell inside block ``rid``: ``Gate{name}`` = Affine(``source``) with its
    own parameters (their shapes recorded in ``params``), ``Act{name}`` = ``activation`` of it."""
    w, b = f"Gate{name}/affine/W", f"Gate{name}/affine/b"
    params[w], params[b] = (features, n_hidden), (n_hidden,)
    h = (-1, n_hidden)
    return (param(w, params[w]) + param(b, params[b]) + var(f"Gate{name}", h, [rid]) + var(f"Act{name}", h, [rid])
            + fn(f"Gate{name}", "Affine", [source, w, b], [f"Gate{name}"], [rid], AFFINE)
            + fn(f"Act{name}", activation, [f"Gate{name}"], [f"Act{name}"], [rid]))


def gru(steps: int = 5, n_in: int = 3, n_hidden: int = 4, initial: float = 0.0) -> tuple[str, dict[str, tuple[int, ...]]]:
    """GRU cell over ``Input`` (batch, steps, n_in) built from Console layers, as Console users draw
    it: r, z = sigmoid(Affine(concat(x_t, h))), n = tanh(Affine(concat(x_t, r * h))),
    h_t = (1 - z) * n + z * h (``RSubScalar``), h_{-1} = ``H_Initial`` (a Constant generator).
    Output ``RecurrentOutput`` (batch, steps, n_hidden)."""
    r = "RecurrentInput"
    h = (-1, n_hidden)
    xh = (-1, n_in + n_hidden)
    body = (var("Input", (-1, steps, n_in)) + var("H_Initial", h)
            + var("RecurrentInput", (-1, n_in), [r]) + var("H", h, [r])
            + fn("RecurrentInput", "RecurrentInput", ["Input"], ["RecurrentInput"], [r], recurrent_param(r, 1))
            + fn("H", "Delay", ["HNew", "H_Initial"], ["H"], [r], f'recurrent_param {{ repeat_id: "{r}" }}'))
    params: dict[str, tuple[int, ...]] = {}

    def gate(name: str, source: str, activation: str) -> str:
        return affine_gate(name, source, activation, n_in + n_hidden, n_hidden, r, params)

    concat = "concatenate_param { axis: 1 }"
    body += (var("XH", xh, [r]) + fn("XH", "Concatenate", ["RecurrentInput", "H"], ["XH"], [r], concat)
             + gate("R", "XH", "Sigmoid") + gate("Z", "XH", "Sigmoid")
             + var("RH", h, [r]) + fn("RH", "Mul2", ["ActR", "H"], ["RH"], [r])
             + var("XRH", xh, [r]) + fn("XRH", "Concatenate", ["RecurrentInput", "RH"], ["XRH"], [r], concat)
             + gate("N", "XRH", "Tanh")
             + var("Keep", h, [r]) + fn("Keep", "RSubScalar", ["ActZ"], ["Keep"], [r], "r_sub_scalar_param { val: 1 }")
             + var("New", h, [r]) + fn("New", "Mul2", ["Keep", "ActN"], ["New"], [r])
             + var("Old", h, [r]) + fn("Old", "Mul2", ["ActZ", "H"], ["Old"], [r])
             + var("HNew", h, [r]) + fn("HNew", "Add2", ["New", "Old"], ["HNew"], [r])
             + var("RecurrentOutput", (-1, steps, n_hidden))
             + fn("RecurrentOutput", "RecurrentOutput", ["HNew"], ["RecurrentOutput"], [], recurrent_param(r, 1, steps)))
    text = (network("Main", {r: steps}, body)
            + executor("Main", ["Input"], ["RecurrentOutput"], [("H_Initial", "Constant", initial)]))
    return text, params


def generator_concat(kind: str = "Constant", multiplier: float = 2.5, n: int = 3) -> tuple[str, dict]:
    """y = Concatenate(Input, Noise) along axis 1 with Noise a generator variable (batch, n)."""
    body = (var("Input", (-1, n)) + var("Noise", (-1, n)) + var("Concatenate", (-1, 2 * n))
            + fn("Concatenate", "Concatenate", ["Input", "Noise"], ["Concatenate"], [],
                 "concatenate_param { axis: 1 }"))
    text = network("Main", {}, body) + executor("Main", ["Input"], ["Concatenate"], [("Noise", kind, multiplier)])
    return text, {}
