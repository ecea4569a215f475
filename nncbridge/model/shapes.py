"""Graph order and shape inference over one network."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ModelError
from .graph import Function, Model, Network, Shape


def topological_order(network: Network) -> list[Function]:
    """Functions so that each comes after the producers of its inputs; a cycle is a ModelError."""
    producers = network.producers()
    order: list[Function] = []
    state: dict[int, int] = {}  # id(function) -> 1 visiting, 2 done
    for root in network.functions:
        if state.get(id(root)) == 2:
            continue
        stack: list[tuple[Function, int]] = [(root, 0)]
        state[id(root)] = 1
        while stack:
            fn, next_input = stack[-1]
            if next_input < len(fn.inputs):
                stack[-1] = (fn, next_input + 1)
                dep = producers.get(fn.inputs[next_input])
                if dep is None:
                    continue
                mark = state.get(id(dep))
                if mark == 1:
                    cycle = [f.name for f, _ in stack[[f for f, _ in stack].index(dep):]]
                    raise ModelError(
                        f"network {network.name!r}: cycle through layers {' -> '.join(cycle + [dep.name])} "
                        "(only Recurrent/Delay layers may feed back)")
                if mark is None:
                    state[id(dep)] = 1
                    stack.append((dep, 0))
            else:
                state[id(fn)] = 2
                order.append(fn)
                stack.pop()
    return order


@dataclass
class ShapeReport:
    shapes: dict[str, Shape] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    """Functions without a shape rule (their declared output shapes are trusted)."""


def resolve_declared(shape: Shape, batch_size: int, declared_batch: int | None = None) -> Shape:
    """A declared shape at ``batch_size``: a leading -1 (or the network's own batch size, for
    inputs nnabla saved with a literal batch) is the batch dimension."""
    return tuple(batch_size if (i == 0 and (d < 0 or d == declared_batch)) else d for i, d in enumerate(shape))


def infer_shapes(model: Model, network: Network, batch_size: int | None = None) -> ShapeReport:
    """Shapes of every variable, computed forward from inputs and parameters.

    Raises ModelError on a cycle; shape-rule failures and disagreements with declared shapes
    are collected as problems (one line each) so validation can show them all.
    """
    from ..functions.registry import FunctionCall, function_spec, shape_rule_for

    batch = batch_size or max(network.batch_size, 1)
    report = ShapeReport()
    produced = {out for f in network.functions for out in f.outputs}
    for var in network.variables.values():
        if var.name in produced:
            continue
        param = model.parameters.get(var.name)
        report.shapes[var.name] = tuple(param.data.shape) if param is not None else resolve_declared(var.shape, batch, network.batch_size or None)
    for fn in topological_order(network):
        spec = function_spec(fn.type)
        rule = shape_rule_for(fn.type)
        declared = [resolve_declared(network.variables[o].shape, batch, network.batch_size or None) if o in network.variables else None
                    for o in fn.outputs]
        inputs = [report.shapes.get(name) for name in fn.inputs]
        if spec is None or rule is None or any(s is None for s in inputs):
            if spec is not None and rule is None:
                report.unknown.append(fn.name)
            for out, shape in zip(fn.outputs, declared):
                if shape is not None:
                    report.shapes[out] = shape
            continue
        call = FunctionCall(fn, spec, list(inputs), network.name, batch,  # type: ignore[arg-type]
                            {i: model.parameters[n].data for i, n in enumerate(fn.inputs) if n in model.parameters})
        try:
            inferred = [tuple(int(d) for d in s) for s in rule(call)]
        except (ValueError, IndexError, KeyError, TypeError, ZeroDivisionError, ModelError) as e:
            report.problems.append(f"{call.where()}: cannot infer output shape from inputs {inputs}: {e}")
            inferred = [s for s in declared if s is not None]
        for out, shape, want in zip(fn.outputs, inferred, declared):
            report.shapes[out] = shape
            raw = network.variables[out].shape if out in network.variables else None
            if want is not None and want != shape and (raw is None or not _batchless_match(raw, shape)):
                report.problems.append(
                    f"network {network.name!r} variable {out!r}: declared shape {_show(want, batch)}, "
                    f"layer {fn.name!r} ({fn.type}) produces {_show(shape, batch)}")
    return report


def _batchless_match(declared: Shape, inferred: Shape) -> bool:
    """Declared shapes nnabla accepts although they differ: a -1 leading dim stands for whatever
    the batch becomes (also after a reshape folds it), and 0-sized dims are recomputed by nnabla's
    loader (its saver writes them for Slice with negative steps)."""
    if len(declared) != len(inferred):
        return False
    if 0 in declared and 0 not in inferred:
        return True
    return declared[0] == -1 and tuple(declared[1:]) == tuple(inferred[1:])


def _show(shape: Shape, batch: int) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"
