"""Expansion of Console's loop constructs (Repeat, Recurrent, Delay) into a plain graph.

The result follows what nnabla 1.39 does when it loads such a network
(``nnabla.core.graph_def.ProtoNetwork.expand_loop_control``):

* Every variable and function carrying ``repeat_id``\\ s is copied once per combination of
  iteration indices. A copy's name is the original with, for each of its repeat ids ``R`` at
  index ``i``, ``{R}`` replaced by ``[i]`` when the name contains ``{R}`` and ``_R[i]``
  appended otherwise. Parameters follow the same rule, so each iteration has its own
  parameter, stored under that expanded name (``Affine{R}/affine/W`` -> ``Affine[0]/affine/W``,
  ``Affine/affine/W`` -> ``Affine/affine/W_R[0]``); a parameter without repeat ids is shared.
  Stored parameter names therefore map one to one onto the expanded network: no renaming table.
* ``RepeatStart(x, loop)`` passes ``x`` at iteration 0 and ``loop`` of iteration ``i-1`` after;
  ``RepeatEnd(y)`` passes ``y`` of the last iteration; ``Delay(h, initial)`` passes ``initial``
  at step 0 and ``h`` of step ``i-1`` after. These become aliases (an ``Identity`` only where
  the executor needs the name).
* ``RecurrentInput`` becomes ``Split`` along ``recurrent_param.axis``; ``RecurrentOutput``
  becomes ``Stack`` of the first ``length`` steps along that axis.
"""
from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from typing import Any, Iterable, Optional

import numpy as np

from ..errors import ModelError, UnsupportedFunctionError
from .graph import Executor, Function, GeneratorVariable, Model, Network, Shape, Variable

LOOP_FUNCTIONS = {"RepeatStart", "RepeatEnd", "RecurrentInput", "RecurrentOutput", "Delay"}
MAX_TIMES = 100_000
MAX_EXPANDED_FUNCTIONS = 100_000
MAX_EXPANDED_VARIABLES = 300_000
MAX_NESTING = 64

_INPUT_COUNTS = {"RepeatStart": 2, "RepeatEnd": 1, "RecurrentInput": 1, "RecurrentOutput": 1, "Delay": 2}
_ENTERS_BLOCK = {"RepeatStart", "RecurrentInput", "Delay"}  # own repeat id is their last repeat_id


def needs_expansion(network: Network) -> bool:
    return (any(f.type in LOOP_FUNCTIONS or f.repeat_ids for f in network.functions)
            or any(v.repeat_ids for v in network.variables.values()))


def expanded_name(name: str, repeat_ids: Iterable[str], index: dict[str, int]) -> str:
    """The name nnabla gives to the copy of ``name`` at iteration ``index`` (repeat id -> index)."""
    for rid in repeat_ids:
        marker = "{" + rid + "}"
        if marker in name:
            name = name.replace(marker, f"[{index[rid]}]")
        else:
            name += f"_{rid}[{index[rid]}]"
    return name


def expand_network(model: Model, network: Network, executor: Executor | None = None) -> Network:
    """A new network equal to ``network`` with Repeat/Recurrent/Delay layers unrolled.

    ``model`` and ``network`` are left untouched. Structural problems (unknown or unmatched
    repeat ids, a Delay outside its block, sizes that are not positive or too large to unroll)
    raise ``ModelError`` naming the network and layer.
    """
    where = f"{model.source.path}: network {network.name!r}"
    if needs_expansion(network):
        expander = _Expander(network, where)
        result = expander.run()
        result = _drop_aliases(where, result, expander.aliases, _names_to_keep(result, executor))
    else:
        result = _copy_network(network)
    if executor is not None:
        _check_executor(where, network, result, executor)
    return result


def stored_parameter_names(network: Network) -> dict[str, list[str]]:
    """Each declared parameter variable -> the names nnabla looks its values up under.

    A parameter inside repeat blocks has one stored value per iteration (see ``expanded_name``);
    any other parameter is stored under its own name. Parameters whose blocks cannot be unrolled
    (unknown ids, bad or huge times) map to their own name; ``expand_network`` reports those.
    """
    out: dict[str, list[str]] = {}
    for var in network.variables.values():
        if not var.is_parameter:
            continue
        times = {r: network.repeat_info.get(r) for r in var.repeat_ids}
        count = 1
        for t in times.values():
            count *= t if isinstance(t, int) and 0 < t <= MAX_TIMES else MAX_EXPANDED_VARIABLES + 1
            if count > MAX_EXPANDED_VARIABLES:
                break
        if not var.repeat_ids or count > MAX_EXPANDED_VARIABLES or len(var.repeat_ids) > MAX_NESTING:
            out[var.name] = [var.name]
            continue
        out[var.name] = [expanded_name(var.name, var.repeat_ids, index)
                         for index in _iterations(var.repeat_ids, times)]  # type: ignore[arg-type]
    return out


def _copy_network(network: Network) -> Network:
    return Network(
        name=network.name,
        variables={k: copy.deepcopy(v) for k, v in network.variables.items()},
        functions=[copy.deepcopy(f) for f in network.functions],
        batch_size=network.batch_size,
        repeat_info=dict(network.repeat_info),
    )


def _own_id(fn: Function) -> Optional[str]:
    """The repeat id a loop layer opens or closes (Delay and Recurrent* keep it in recurrent_param)."""
    first, second = ((fn.repeat_param, fn.recurrent_param) if fn.type in ("RepeatStart", "RepeatEnd")
                     else (fn.recurrent_param, fn.repeat_param))
    for param in (first, second):
        if param and param.get("repeat_id"):
            return str(param["repeat_id"])
    return None


def _iterations(ids: tuple[str, ...], times: dict[str, int]) -> Iterable[dict[str, int]]:
    for combo in itertools.product(*(range(times[r]) for r in ids)):
        yield dict(zip(ids, combo))


class _Expander:
    def __init__(self, network: Network, where: str) -> None:
        self.net = network
        self.where = where
        self.times: dict[str, int] = {}
        self.variables: dict[str, Variable] = {}
        self.functions: list[Function] = []
        self.aliases: set[str] = set()

    def fail(self, message: str) -> ModelError:
        return ModelError(f"{self.where}: {message}")

    def layer(self, fn: Function) -> str:
        return f"layer {fn.name!r} ({fn.type})"

    def run(self) -> Network:
        self.check_ids()
        self.check_loop_functions()
        self.check_sizes()
        self.expand_variables()
        for fn in self.net.functions:
            self.expand_function(fn)
        return Network(name=self.net.name, variables=self.variables, functions=self.functions,
                       batch_size=self.net.batch_size, repeat_info={})

    # -- checks --------------------------------------------------------------------------------
    def check_ids(self) -> None:
        info = self.net.repeat_info

        def known(rid: str, what: str) -> None:
            if rid not in info:
                raise self.fail(f"{what} uses repeat id {rid!r}, which the network's repeat_info does not "
                                f"declare (declared: {', '.join(map(repr, info)) or 'none'})")
            if rid in self.times:
                return
            times = info[rid]
            if not isinstance(times, int) or times < 1:
                raise self.fail(f"repeat id {rid!r}: times must be a positive integer, found {times!r}")
            if times > MAX_TIMES:
                raise self.fail(f"repeat id {rid!r}: times {times} is more than the {MAX_TIMES} nncbridge unrolls")
            self.times[rid] = times

        items: list[Variable | Function] = [*self.net.variables.values(), *self.net.functions]
        for item in items:
            if len(item.repeat_ids) > MAX_NESTING:
                what = f"variable {item.name!r}" if isinstance(item, Variable) else self.layer(item)
                raise self.fail(f"{what} is nested in {len(item.repeat_ids)} repeat/recurrent blocks; "
                                f"nncbridge unrolls at most {MAX_NESTING} levels")
        for var in self.net.variables.values():
            for rid in var.repeat_ids:
                known(rid, f"variable {var.name!r}")
            if len(set(var.repeat_ids)) != len(var.repeat_ids):
                raise self.fail(f"variable {var.name!r} lists a repeat id twice: {list(var.repeat_ids)}")
        for fn in self.net.functions:
            for rid in fn.repeat_ids:
                known(rid, self.layer(fn))
            if len(set(fn.repeat_ids)) != len(fn.repeat_ids):
                raise self.fail(f"{self.layer(fn)} lists a repeat id twice: {list(fn.repeat_ids)}")
            if fn.type in LOOP_FUNCTIONS:
                own = _own_id(fn)
                if own is None:
                    field = "repeat_param" if fn.type in ("RepeatStart", "RepeatEnd") else "recurrent_param"
                    raise self.fail(f"{self.layer(fn)} has no {field}.repeat_id")
                known(own, self.layer(fn))

    def check_loop_functions(self) -> None:
        kinds: dict[str, set[str]] = {}
        for fn in self.net.functions:
            if fn.type not in LOOP_FUNCTIONS:
                continue
            rid = _own_id(fn)
            assert rid is not None
            kinds.setdefault(rid, set()).add(fn.type)
            want = _INPUT_COUNTS[fn.type]
            if len(fn.inputs) != want or len(fn.outputs) != 1:
                raise self.fail(f"{self.layer(fn)}: expected {want} input(s) and 1 output, found "
                                f"{len(fn.inputs)} and {len(fn.outputs)}")
            if fn.type in _ENTERS_BLOCK:
                if not fn.repeat_ids or fn.repeat_ids[-1] != rid:
                    what = "Delay outside its recurrent block" if fn.type == "Delay" else "layer outside its block"
                    raise self.fail(f"{self.layer(fn)}: {what}: its repeat_id list should end with {rid!r}, "
                                    f"found {list(fn.repeat_ids)}")
            elif rid in fn.repeat_ids:
                raise self.fail(f"{self.layer(fn)} closes block {rid!r} but is itself inside it "
                                f"(repeat_id {list(fn.repeat_ids)})")
            if fn.type == "RecurrentInput":
                self.check_recurrent_input(fn, rid)
            if fn.type == "RecurrentOutput":
                length = int((fn.recurrent_param or {}).get("length") or 0)
                if not 1 <= length <= self.times[rid]:
                    raise self.fail(f"{self.layer(fn)}: recurrent length must be 1..{self.times[rid]} "
                                    f"(the times of {rid!r}), found {length}")
        for rid, seen in kinds.items():
            if "RepeatStart" in seen and "RepeatEnd" not in seen:
                raise self.fail(f"repeat block {rid!r} has a RepeatStart but no RepeatEnd")
            if "RepeatEnd" in seen and "RepeatStart" not in seen:
                raise self.fail(f"repeat block {rid!r} has a RepeatEnd but no RepeatStart")
            if "RecurrentInput" in seen and "RecurrentOutput" not in seen:
                raise self.fail(f"recurrent block {rid!r} has a RecurrentInput but no RecurrentOutput")

    def check_recurrent_input(self, fn: Function, rid: str) -> None:
        var = self.net.variables.get(fn.inputs[0])
        if var is None:
            raise self.fail(f"{self.layer(fn)}: input {fn.inputs[0]!r} is not declared, so its length is unknown")
        axis = int((fn.recurrent_param or {}).get("axis") or 0)
        ndim = len(var.shape)
        if not -ndim <= axis < ndim or axis % ndim == 0:
            raise self.fail(f"{self.layer(fn)}: axis {axis} is not a non-batch axis of {fn.inputs[0]!r} "
                            f"with shape {var.shape}")
        steps = var.shape[axis]
        if steps != self.times[rid]:
            raise self.fail(f"{self.layer(fn)}: input {fn.inputs[0]!r} has {steps} steps along axis {axis} "
                            f"but repeat_info gives {rid!r} times {self.times[rid]}")

    def check_sizes(self) -> None:
        def copies(ids: tuple[str, ...], limit: int) -> int:
            n = 1
            for rid in ids:
                n *= self.times[rid]
                if n > limit:
                    break
            return n

        total = 0
        for fn in self.net.functions:
            ids = fn.repeat_ids[:-1] if fn.type == "RecurrentInput" else fn.repeat_ids
            total += copies(ids, MAX_EXPANDED_FUNCTIONS)
            if total > MAX_EXPANDED_FUNCTIONS:
                raise self.fail(f"unrolling the repeat/recurrent blocks would create more than "
                                f"{MAX_EXPANDED_FUNCTIONS} layers (reached at {self.layer(fn)})")
        total = 0
        for var in self.net.variables.values():
            total += copies(var.repeat_ids, MAX_EXPANDED_VARIABLES)
            if total > MAX_EXPANDED_VARIABLES:
                raise self.fail(f"unrolling the repeat/recurrent blocks would create more than "
                                f"{MAX_EXPANDED_VARIABLES} variables (reached at {var.name!r})")

    # -- expansion -----------------------------------------------------------------------------
    def expand_variables(self) -> None:
        for var in self.net.variables.values():
            for index in _iterations(var.repeat_ids, self.times):
                name = expanded_name(var.name, var.repeat_ids, index)
                if name in self.variables:
                    raise self.fail(f"variable {var.name!r} unrolls to {name!r}, which is already a variable")
                self.variables[name] = Variable(name=name, type=var.type, shape=tuple(var.shape),
                                                initializer=copy.deepcopy(var.initializer))

    def name(self, fn: Function, var_name: str, index: dict[str, int], role: str) -> str:
        var = self.net.variables.get(var_name)
        ids = var.repeat_ids if var is not None else ()
        outside = [r for r in ids if r not in index]
        if outside:
            raise self.fail(f"{self.layer(fn)} {role} {var_name!r}, which is inside block {outside[0]!r} while "
                            f"the layer is not (leave a block through RepeatEnd/RecurrentOutput)")
        return expanded_name(var_name, ids, index)

    def output_name(self, fn: Function, var_name: str, index: dict[str, int]) -> str:
        var = self.net.variables.get(var_name)
        ids = var.repeat_ids if var is not None else ()
        if var is not None and set(ids) != set(index):
            raise self.fail(f"{self.layer(fn)} (repeat_id {list(fn.repeat_ids)}) writes {var_name!r}, whose "
                            f"repeat_id is {list(ids)}: a layer's outputs must be in the same blocks as the layer")
        return expanded_name(var_name, ids, index)

    def loop_input(self, fn: Function, var_name: str, index: dict[str, int], rid: str, i: int, role: str) -> str:
        var = self.net.variables.get(var_name)
        if var is None or rid not in var.repeat_ids:
            raise self.fail(f"{self.layer(fn)} {role} {var_name!r}, which should be computed inside block {rid!r} "
                            f"but has repeat_id {list(var.repeat_ids) if var else []}")
        return self.name(fn, var_name, {**index, rid: i}, role)

    def add(self, name: str, type_: str, inputs: list[str], outputs: list[str], params: dict[str, Any]) -> None:
        self.functions.append(Function(name=name, type=type_, inputs=inputs, outputs=outputs, params=params))

    def expand_function(self, fn: Function) -> None:
        rid = _own_id(fn) if fn.type in LOOP_FUNCTIONS else None
        ids = fn.repeat_ids
        if fn.type == "RecurrentInput":
            ids = ids[:-1]
        for index in _iterations(ids, self.times):
            suffix = "".join(f"_{r}[{index[r]}]" for r in ids)
            fname = fn.name + suffix
            if fn.type == "RecurrentInput":
                assert rid is not None
                source = self.name(fn, fn.inputs[0], index, "reads")
                outs = [self.output_name(fn, fn.outputs[0], {**index, rid: k}) for k in range(self.times[rid])]
                axis = int((fn.recurrent_param or {}).get("axis") or 0)
                self.add(fname, "Split", [source], outs, {"axis": axis})
            elif fn.type == "RecurrentOutput":
                assert rid is not None
                length = int((fn.recurrent_param or {}).get("length") or 0)
                steps = [self.loop_input(fn, fn.inputs[0], index, rid, k, "reads") for k in range(length)]
                axis = int((fn.recurrent_param or {}).get("axis") or 0)
                self.add(fname, "Stack", steps, [self.output_name(fn, fn.outputs[0], index)], {"axis": axis})
            elif fn.type in ("RepeatStart", "Delay"):
                assert rid is not None
                i = index[rid]
                outer = {r: k for r, k in index.items() if r != rid}
                first, loop = (0, 1) if fn.type == "RepeatStart" else (1, 0)
                if i == 0:
                    role = "initial input" if fn.type == "RepeatStart" else "initial state"
                    source = self.name(fn, fn.inputs[first], outer, f"takes as {role}")
                else:
                    source = self.loop_input(fn, fn.inputs[loop], outer, rid, i - 1, "loops back")
                self.alias(fname, source, self.output_name(fn, fn.outputs[0], index))
            elif fn.type == "RepeatEnd":
                assert rid is not None
                source = self.loop_input(fn, fn.inputs[0], index, rid, self.times[rid] - 1, "reads")
                self.alias(fname, source, self.output_name(fn, fn.outputs[0], index))
            else:
                inputs = [self.name(fn, v, index, "reads") if v else v for v in fn.inputs]
                outputs = [self.output_name(fn, v, index) for v in fn.outputs]
                self.add(fname, fn.type, inputs, outputs, copy.deepcopy(fn.params))

    def alias(self, fname: str, source: str, target: str) -> None:
        self.add(fname, "Identity", [source], [target], {})
        self.aliases.add(target)


def _names_to_keep(network: Network, executor: Executor | None) -> set[str]:
    if executor is not None:
        return {b.variable for group in (executor.data, executor.outputs, executor.generators) for b in group}
    used = {name for f in network.functions for name in f.inputs}
    return {name for f in network.functions for name in f.outputs if name not in used}


def _drop_aliases(where: str, network: Network, aliases: set[str], keep: set[str]) -> Network:
    """Bypass the Identity layers that stand for RepeatStart/RepeatEnd/Delay, except where a name is needed."""
    source: dict[str, str] = {}
    for fn in network.functions:
        if fn.type == "Identity" and fn.outputs[0] in aliases and fn.outputs[0] not in keep:
            source[fn.outputs[0]] = fn.inputs[0]
    resolved: dict[str, str] = {}

    def resolve(name: str) -> str:
        path = []
        while name in source and name not in resolved:
            path.append(name)
            name = source[name]
            if len(path) > len(source):
                raise ModelError(f"{where}: RepeatStart/RepeatEnd/Delay layers pass {name!r} around in a loop "
                                 "that no layer computes")
        final = resolved.get(name, name)
        for step in path:
            resolved[step] = final
        return final

    functions = []
    for fn in network.functions:
        if fn.type == "Identity" and fn.outputs[0] in source:
            continue
        fn.inputs = [resolve(n) if n else n for n in fn.inputs]
        functions.append(fn)
    for fn in functions:
        if fn.type == "Identity" and fn.outputs[0] in aliases:
            fn.inputs = [resolve(fn.inputs[0])]
    network.functions = functions
    network.variables = {k: v for k, v in network.variables.items() if k not in source}
    return network


def _check_executor(where: str, original: Network, expanded: Network, executor: Executor) -> None:
    for label, names in (("data", [d.variable for d in executor.data]),
                         ("output", [o.variable for o in executor.outputs]),
                         ("generator", [g.variable for g in executor.generators])):
        for name in names:
            var = original.variables.get(name)
            if var is not None and var.repeat_ids:
                raise ModelError(f"{where}: executor {executor.name!r} {label} variable {name!r} is inside "
                                 f"block(s) {list(var.repeat_ids)}; only variables outside every repeat/recurrent "
                                 "block can be fed or read")


# -- generator variables ---------------------------------------------------------------------------
GENERATOR_TYPES = ("Constant", "Range", "Normal", "Uniform")


@dataclass(frozen=True)
class Generator:
    """An executor's generator variable: a network input the executor fills on every forward pass.

    nnabla fills it with ``initializer(shape)`` (``shape`` with the batch size in dimension 0):
    Constant -> ``multiplier`` everywhere; Range -> ``multiplier * arange`` along the last axis;
    Normal -> N(0, multiplier²); Uniform -> U(-multiplier, multiplier), fresh on every pass.
    """

    variable: str
    type: str
    multiplier: float
    shape: Shape
    """Declared shape; a negative dimension 0 is the batch."""

    @property
    def deterministic(self) -> bool:
        return self.type in ("Constant", "Range")

    @property
    def batched(self) -> bool:
        return bool(self.shape) and self.shape[0] < 0

    def value(self, batch_size: int, rng: np.random.RandomState | None = None) -> np.ndarray:
        """The array nnabla would feed at ``batch_size``; random types need ``rng``."""
        shape = tuple(batch_size if (i == 0 and d < 0) else d for i, d in enumerate(self.shape))
        m = float(self.multiplier)
        if self.type == "Constant":
            return np.full(shape, m, dtype=np.float32)
        if self.type == "Range":
            row = np.arange(shape[-1] if shape else 1, dtype=np.float32) * np.float32(m)
            return np.ascontiguousarray(np.broadcast_to(row, shape), dtype=np.float32)
        if rng is None:
            raise UnsupportedFunctionError(
                f"generator variable {self.variable!r} is random ({self.type}, multiplier {m:g}); "
                "a deterministic runtime needs its values supplied")
        if self.type == "Normal":
            return (rng.randn(*shape) * m).astype(np.float32)
        return rng.uniform(-m, m, size=shape).astype(np.float32)


def executor_generators(network: Network, generators: Iterable[GeneratorVariable]) -> list[Generator]:
    """The generator variables of an executor/optimizer/monitor, with their declared shapes."""
    out = []
    for g in generators:
        var = network.variables.get(g.variable)
        if var is None:
            raise ModelError(f"network {network.name!r}: generator variable {g.variable!r} is not in the network")
        if g.type not in GENERATOR_TYPES:
            raise ModelError(f"network {network.name!r}: generator variable {g.variable!r} has type {g.type!r}; "
                             f"nnabla knows {', '.join(GENERATOR_TYPES)}")
        out.append(Generator(g.variable, g.type, float(g.multiplier), tuple(var.shape)))
    return out
