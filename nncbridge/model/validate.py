"""``nncbridge check``: every problem of a model, one line each, without running anything."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from ..errors import ModelError
from .expand import LOOP_FUNCTIONS, expand_network
from .graph import Executor, Model, Monitor, Network, Optimizer
from .shapes import infer_shapes, topological_order

ERROR = "error"
WARNING = "warning"
TRAINING_ONLY_CATEGORIES = ("Loss Functions", "Validation")

ModelOrPath = Union[Model, str, "os.PathLike[str]", bytes, list]


@dataclass(frozen=True)
class Problem:
    severity: str  # "error" or "warning"
    message: str
    """The whole one-line message, naming network, layer or variable, expected and found."""
    network: str | None = None
    layer: str | None = None
    variable: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def __str__(self) -> str:
        return f"{self.severity}: {self.message}"


def repeated_evaluation_warning(exe: Executor, network: Network) -> str | None:
    """What differs from Console when ``exe`` asks for several evaluations combined: nncbridge
    evaluates once, with Dropout as the identity. None when that gives Console's result."""
    if exe.num_evaluations <= 1:
        return None
    kind = exe.repeat_evaluation_type or "mean"
    if kind == "std":
        return (f"executor {exe.name!r} asks for the standard deviation of {exe.num_evaluations} evaluations "
                "(Console's uncertainty); nncbridge evaluates once, with Dropout as the identity, so its outputs "
                "are the prediction itself, not that deviation")
    if any(fn.type == "Dropout" for fn in network.functions):
        return (f"executor {exe.name!r} asks for the {kind} of {exe.num_evaluations} evaluations through "
                f"Dropout; nncbridge evaluates once, with Dropout as the identity, so its outputs differ from "
                "Console's sampled ones")
    return None


def check(model_or_path: ModelOrPath) -> list[Problem]:
    """Validate every network and executor of a model (or of the file at a path).

    Returns errors and warnings; an unreadable file raises a FormatError instead.
    """
    if isinstance(model_or_path, Model):
        model = model_or_path
    else:
        from ..format.reader import read

        model = read(model_or_path)
    return _Checker(model).run()


def _where(network: str | None = None, layer: str | None = None, layer_type: str | None = None,
           variable: str | None = None, executor: str | None = None) -> str:
    parts = []
    if executor is not None:
        parts.append(f"executor {executor!r}")
    if network is not None:
        parts.append(f"network {network!r}")
    if layer is not None:
        parts.append(f"layer {layer!r}" + (f" ({layer_type})" if layer_type else ""))
    if variable is not None:
        parts.append(f"variable {variable!r}")
    return " ".join(parts)


def _shape(shape: Any) -> str:
    dims = tuple(int(d) for d in shape)
    return "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _range_text(lo: int, hi: int | None) -> str:
    if hi is None:
        return f"at least {lo}"
    return str(lo) if lo == hi else f"{lo} to {hi}"


class _Checker:
    def __init__(self, model: Model) -> None:
        self.model = model
        self.problems: list[Problem] = []
        self.expanded: dict[str, Network | None] = {}
        self.unbound: set[tuple[str, str]] = set()

    def add(self, severity: str, message: str, network: str | None = None, layer: str | None = None,
            variable: str | None = None) -> None:
        self.problems.append(Problem(severity, message, network, layer, variable))

    def run(self) -> list[Problem]:
        for text in self.model.source.warnings:
            self.add(WARNING, text)
        if not self.model.networks:
            self.add(ERROR, "the model defines no network")
        for net in self.model.networks.values():
            self.check_network(net)
        for exe in self.model.executors.values():
            self.check_executor(exe)
        self.check_parameter_values()
        return self.problems

    # -- networks ---------------------------------------------------------------------------------

    def bound_inputs(self, network: str) -> set[str] | None:
        """Variables fed from outside (data and generators) by anything using ``network``; None if nothing does."""
        everyone: list[Executor | Optimizer | Monitor] = [
            *self.model.executors.values(), *self.model.optimizers.values(), *self.model.monitors.values()]
        users = [u for u in everyone if u.network == network]
        if not users:
            return None
        names: set[str] = set()
        for u in users:
            names.update(d.variable for d in u.data)
            names.update(g.variable for g in u.generators)
        for opt in self.model.optimizers.values():
            # Custom learning-rate schedulers feed data into other networks
            custom = (opt.solver or {}).get("custom_scheduler_param") or {}
            if custom.get("network_name") == network:
                names.update(d["variable_name"] for d in custom.get("data_variable", []))
        return names

    def check_network(self, net: Network) -> None:
        from ..functions.registry import function_spec

        declared = net.variables
        producers: dict[str, str] = {}
        for fn in net.functions:
            spec = function_spec(fn.type)
            if spec is None:
                if fn.type not in LOOP_FUNCTIONS:
                    self.add(ERROR, f"{_where(net.name, fn.name)}: unknown function type {fn.type!r} "
                                    "(not an nnabla function)", net.name, fn.name)
            else:
                for what, count, (lo, hi) in (("input", len(fn.inputs), spec.input_range),
                                              ("output", len(fn.outputs), spec.output_range)):
                    if count < lo or (hi is not None and count > hi):
                        expected = f"{_range_text(lo, hi)} {what}" + ("" if (lo, hi) == (1, 1) else "s")
                        self.add(ERROR, f"{_where(net.name, fn.name, fn.type)}: expected {expected}, found {count}",
                                 net.name, fn.name)
            for name in fn.inputs:
                if name not in declared:
                    self.add(ERROR, f"{_where(net.name, fn.name, fn.type)}: input {name!r} is not a variable "
                                    "of the network", net.name, fn.name, name)
            for name in fn.outputs:
                if name not in declared:
                    self.add(ERROR, f"{_where(net.name, fn.name, fn.type)}: output {name!r} is not a variable "
                                    "of the network", net.name, fn.name, name)
                elif declared[name].is_parameter:
                    self.add(ERROR, f"{_where(net.name, fn.name, fn.type)}: writes to {name!r}, which is a "
                                    "parameter", net.name, fn.name, name)
                if name in producers and producers[name] != fn.name:
                    self.add(ERROR, f"{_where(net.name, variable=name)}: produced by two layers, "
                                    f"{producers[name]!r} and {fn.name!r}", net.name, fn.name, name)
                producers.setdefault(name, fn.name)
        expanded = self.expand(net)
        # Repeat blocks store one parameter per iteration, under the expanded names.
        for var in (expanded or net).variables.values():
            if var.is_parameter and (expanded is not None or not var.repeat_ids):
                self.check_parameter(net, var.name, var.shape)
        if expanded is None:
            return
        bound = self.bound_inputs(net.name)
        if bound is not None:
            produced = {o for f in expanded.functions for o in f.outputs}
            reported: set[str] = set()
            for fn in expanded.functions:
                for name in fn.inputs:
                    used = expanded.variables.get(name)
                    if used is None or used.is_parameter or name in produced or name in bound or name in reported:
                        continue
                    reported.add(name)
                    self.unbound.add((net.name, name))
                    self.add(ERROR, f"{_where(net.name, variable=name)}: input of layer {fn.name!r} ({fn.type}) "
                                    "is produced by no layer, and is neither a parameter nor a data or generator "
                                    "variable of any executor, optimizer or monitor", net.name, fn.name, name)
        try:
            topological_order(expanded)
        except ModelError as e:
            self.add(ERROR, str(e), net.name)
            return
        try:
            report = infer_shapes(self.model, expanded)
        except ModelError as e:
            self.add(ERROR, f"{_where(net.name)}: {e}", net.name)
            return
        for text in report.problems:
            self.add(ERROR, text, net.name)

    def expand(self, net: Network) -> Network | None:
        if net.name not in self.expanded:
            try:
                self.expanded[net.name] = expand_network(self.model, net)
            except ModelError as e:
                text = str(e)
                if f"{net.name!r}" not in text:
                    text = f"{_where(net.name)}: {text}"
                self.add(ERROR, text, net.name)
                self.expanded[net.name] = None
        return self.expanded[net.name]

    def check_parameter(self, net: Network, name: str, declared: tuple[int, ...]) -> None:
        param = self.model.parameters.get(name)
        if param is None:
            self.add(ERROR, f"{_where(net.name, variable=name)}: parameter with shape {_shape(declared)} is not "
                            "stored in the file (nnabla would silently use random values)", net.name, variable=name)
        elif tuple(param.data.shape) != tuple(declared):
            self.add(ERROR, f"{_where(net.name, variable=name)}: parameter declared with shape {_shape(declared)}, "
                            f"stored with shape {_shape(param.data.shape)}", net.name, variable=name)

    def check_parameter_values(self) -> None:
        for p in self.model.parameters.values():
            data = np.asarray(p.data)
            if data.dtype.kind == "f" and data.size and not np.isfinite(data).all():
                nan, inf = int(np.isnan(data).sum()), int(np.isinf(data).sum())
                found = ", ".join(x for x in (_count(nan, "NaN") if nan else "", _count(inf, "Inf") if inf else "")
                                  if x)
                self.add(WARNING, f"parameter {p.name!r}: {found} among its {data.size} values", variable=p.name)

    # -- executors --------------------------------------------------------------------------------

    def check_executor(self, exe: Executor) -> None:
        from ..functions.registry import function_spec

        net = self.model.networks.get(exe.network)
        if net is None:
            self.add(ERROR, f"executor {exe.name!r}: network {exe.network!r} does not exist (networks: "
                            f"{', '.join(self.model.networks) or 'none'})", exe.network)
            return
        expanded = self.expand(net) or net
        known = set(net.variables) | set(expanded.variables)
        roles = [("data variable", [d.variable for d in exe.data]),
                 ("output variable", [o.variable for o in exe.outputs]),
                 ("generator variable", [g.variable for g in exe.generators]),
                 ("loss variable", exe.losses),
                 ("parameter variable", exe.parameters)]
        for role, names in roles:
            for name in names:
                if name not in known:
                    self.add(ERROR, f"executor {exe.name!r}: {role} {name!r} is not a variable of network "
                                    f"{net.name!r}", net.name, variable=name)
        if not exe.outputs:
            self.add(WARNING, f"executor {exe.name!r}: declares no output variable", net.name)

        producers = expanded.producers()
        fed = {d.variable for d in exe.data} | {g.variable for g in exe.generators}
        path: list[Any] = []
        seen: set[str] = set()
        stack = [o.variable for o in exe.outputs if o.variable in known]
        missing: list[str] = []
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            fn = producers.get(name)
            var = expanded.variables.get(name)
            if fn is None or name in fed:
                if name not in fed and var is not None and not var.is_parameter and name not in missing:
                    missing.append(name)
                continue
            path.append(fn)
            stack.extend(fn.inputs)
        for name in missing:
            if (net.name, name) in self.unbound:
                continue
            self.add(ERROR, f"executor {exe.name!r}: network {net.name!r} variable {name!r} is needed for its "
                            "outputs but produced by no layer and not fed as a data or generator variable",
                            net.name, variable=name)
        repeated = repeated_evaluation_warning(exe, expanded)
        if repeated:
            self.add(WARNING, repeated, net.name)
        if exe.need_back_propagation:
            return
        flagged = set()
        for fn in path:
            spec = function_spec(fn.type)
            if spec is not None and spec.category in TRAINING_ONLY_CATEGORIES and fn.name not in flagged:
                flagged.add(fn.name)
                kind = "loss" if spec.category == "Loss Functions" else "evaluation"
                self.add(WARNING, f"executor {exe.name!r}: {_where(net.name, fn.name, fn.type)} is a training-only "
                                  f"({kind}) layer on the path to the outputs", net.name, fn.name)
