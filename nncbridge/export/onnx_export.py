"""Model -> ONNX: one executor's network, lowered function by function through the registry."""
from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Callable, Union

import numpy as np

from ..errors import ConversionError, ModelError, UnsupportedFunctionError
from ..functions.registry import FunctionCall, function_spec, lowering_for
from ..model.graph import DataVariable, Executor, Function, Model, Network, OutputVariable, divides_images_by_255
from ..model.shapes import infer_shapes, topological_order
from . import onnx_proto
from .context import GraphBuilder, LoweringContext

if TYPE_CHECKING:
    from ..model.expand import Generator

MIN_OPSET = 13
BATCH_DIM = "batch"
# onnxruntime release (major, minor) -> newest ai.onnx opset it implements
_ORT_OPSETS = {(1, 14): 18, (1, 15): 19, (1, 16): 19, (1, 17): 20, (1, 18): 21, (1, 19): 21, (1, 20): 21,
               (1, 21): 22, (1, 22): 22, (1, 23): 23}
# The newest opset whose op versions onnxruntime's graph optimizers recognise: Conv + BatchNormalization
# fusion, NCHWc convolution and pooling kernels (onnxruntime 1.23 applies them to Conv <= 11,
# BatchNormalization <= 15 and AveragePool <= 11 only: opset 22 loses all three, 19-21 the NCHWc
# AveragePool). Later opsets change nothing our lowerings need (bfloat16 types, pooling dilations),
# and onnxruntime 1.32 optimizes opset 18 into exactly the graph it makes of 23.
# tests/test_graph_structure.py checks this against the installed onnxruntime.
FAST_OPSET = 18


# onnx release (major, minor) -> newest ai.onnx opset it knows (onnx.helper.VERSION_TABLE's facts)
_ONNX_OPSETS: dict[tuple[int, ...], int] = {(1, 14): 19, (1, 15): 20, (1, 16): 21, (1, 17): 22, (1, 18): 23,
                                            (1, 19): 24, (1, 20): 25, (1, 21): 26, (1, 22): 27, (1, 23): 28}


def newest_onnx_opset() -> int:
    """The newest opset the installed onnx knows; from its version where the table above knows it,
    so that converting need not import onnx (~80 ms)."""
    from ..util.packages import installed_version

    try:
        release = tuple(int(x) for x in (installed_version("onnx") or "").split(".")[:2])
    except ValueError:
        release = ()
    if release in _ONNX_OPSETS:
        return _ONNX_OPSETS[release]
    import onnx.defs

    return int(onnx.defs.onnx_opset_version())


def newest_onnxruntime_opset() -> int:
    """The newest opset the installed onnxruntime implements (17 if that cannot be told)."""
    try:
        major, minor = (int(x) for x in _onnxruntime_version().split(".")[:2])
    except (ImportError, ValueError):
        return 17
    if (major, minor) in _ORT_OPSETS:
        return _ORT_OPSETS[(major, minor)]
    known = max(_ORT_OPSETS)
    return _ORT_OPSETS[known] if (major, minor) > known else MIN_OPSET


def default_opset(for_onnxruntime_only: bool = False) -> int:
    """The opset onnxruntime runs fastest: ``FAST_OPSET`` unless the installed onnxruntime (or,
    without ``for_onnxruntime_only``, the installed onnx) knows only older ones."""
    newest = onnx_proto.NEWEST_OPSET if for_onnxruntime_only else newest_onnx_opset()
    return min(FAST_OPSET, newest, newest_onnxruntime_opset())


def _onnxruntime_version() -> str:
    ort = sys.modules.get("onnxruntime")
    if ort is not None and isinstance(getattr(ort, "__version__", None), str):
        return str(ort.__version__)
    from ..util.packages import installed_version  # cheaper than importing onnxruntime

    found = installed_version("onnxruntime")
    if found is None:
        raise ImportError("onnxruntime is not installed")
    return found


def _load(model_or_path: Union[Model, str, "os.PathLike[str]", bytes]) -> Model:
    if isinstance(model_or_path, Model):
        return model_or_path
    from ..format.reader import read

    return read(model_or_path)


def executor_network(model: Model, executor: Executor) -> Network:
    """The executor's network with Console's Repeat/Recurrent/Delay layers expanded."""
    if executor.network not in model.networks:
        raise ModelError(f"{model.source.path}: executor {executor.name!r} names network "
                         f"{executor.network!r}, which does not exist")
    from ..model.expand import expand_network

    return expand_network(model, model.networks[executor.network], executor)


def needed_functions(network: Network, outputs: list[str]) -> list[Function]:
    """The functions on the path to ``outputs``, in execution order."""
    producers = network.producers()
    needed: set[int] = set()
    stack = [producers[o] for o in outputs if o in producers]
    while stack:
        fn = stack.pop()
        if id(fn) in needed:
            continue
        needed.add(id(fn))
        stack.extend(producers[i] for i in fn.inputs if i in producers)
    return [f for f in topological_order(network) if id(f) in needed]


def to_onnx(model_or_path: Union[Model, str, "os.PathLike[str]", bytes], executor: str | None = None,
            opset: int | None = None, batch_size: int | None = None, check: bool = True) -> Any:
    """Convert one executor of a Console/nnabla model to an ``onnx.ModelProto``.

    ``check=False`` skips onnx's full checker (a runtime that loads the result validates it anyway).
    """
    try:
        import onnx
    except ImportError:  # pragma: no cover
        raise ConversionError("ONNX export needs the 'onnx' package (pip install onnx)") from None

    model = _load(model_or_path)
    proto, _ = _convert(model, executor, opset, batch_size, external_weights=False)
    result = onnx.ModelProto.FromString(proto.SerializeToString())
    if check:
        check_with_onnx(result, str(model.source.path))
    return result


def to_onnx_message(model_or_path: Union[Model, str, "os.PathLike[str]", bytes], executor: str | None = None,
                    opset: int | None = None, batch_size: int | None = None) -> Any:
    """``to_onnx(check=False)`` as nncbridge's own ``ModelProto`` (same bytes, see ``onnx_proto``),
    without importing onnx: for writing a file."""
    proto, _ = _convert(_load(model_or_path), executor, opset, batch_size, external_weights=False)
    return proto


def check_with_onnx(proto: Any, source: str) -> None:
    """onnx's full checker over a model (nncbridge's own message or an ``onnx.ModelProto``)."""
    import onnx

    model = proto if isinstance(proto, onnx.ModelProto) else onnx.ModelProto.FromString(proto.SerializeToString())
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ConversionError(f"{source}: the ONNX graph failed onnx's checker: {e}") from None


def to_onnx_with_external_weights(model: Model, executor: str | None = None, opset: int | None = None) -> tuple[Any, dict[str, np.ndarray]]:
    """``to_onnx`` for a runtime in the same process, without importing onnx: the model as
    nncbridge's own ``ModelProto`` (see ``onnx_proto``); initializers of 1 KiB or more are left out
    of it (marked external, located by their own name) and returned as arrays, uncopied."""
    proto, arrays = _convert(model, executor, opset, None, external_weights=True)
    return proto, arrays or {}


def _convert(model_or_path: Union[Model, str, "os.PathLike[str]", bytes], executor: str | None,
             opset: int | None, batch_size: int | None,
             external_weights: bool) -> tuple[Any, dict[str, np.ndarray] | None]:
    model = _load(model_or_path)
    exe = model.executor(executor)
    # A model for onnxruntime in this process need not meet the onnx package (~80 ms to import).
    opset = default_opset(for_onnxruntime_only=external_weights) if opset is None else int(opset)
    newest = onnx_proto.NEWEST_OPSET if external_weights and opset <= onnx_proto.NEWEST_OPSET \
        else newest_onnx_opset()
    if not MIN_OPSET <= opset <= newest:
        raise ConversionError(f"opset {opset} is not available: choose {MIN_OPSET}..{newest}")
    if batch_size is not None and batch_size < 1:
        raise ConversionError(f"batch size must be positive, got {batch_size}")
    network = executor_network(model, exe)
    bindings: list[DataVariable | OutputVariable] = [*exe.data, *exe.outputs]
    for binding in bindings:
        if binding.variable not in network.variables:
            raise ModelError(f"{model.source.path}: executor {exe.name!r} names variable {binding.variable!r}, "
                             f"which network {network.name!r} does not have")
    # Shapes are traced at the network's own batch size, where declared shapes can be compared as
    # written (a reshape that folds the batch declares e.g. 64*3 rows); the graph stays batch-free.
    declared_batch = max(network.batch_size, 1)
    report = infer_shapes(model, network, declared_batch)
    if report.problems:
        raise ModelError(f"{model.source.path}: " + "; ".join(report.problems[:10]))
    shape_batch = batch_size or declared_batch
    if shape_batch != declared_batch:
        report = infer_shapes(model, network, shape_batch)
    functions = needed_functions(network, [o.variable for o in exe.outputs])

    builder = GraphBuilder(opset, external_weights)
    data_names = {d.variable for d in exe.data}
    builder.used_names.update(network.variables)
    for fn in functions:
        for name in fn.inputs:
            if name in model.parameters and name not in data_names:
                builder.add_initializer(name, model.parameters[name].data.astype(np.float32, copy=False))
    expanded = _add_generators(builder, network, exe, batch_size)

    # A dimension is the batch if it follows the batch size: compare with shapes at another batch size.
    other = infer_shapes(model, network, shape_batch + 1).shapes if batch_size is None else report.shapes

    def batch_dims(name: str) -> frozenset[int] | None:
        here, there = report.shapes.get(name), other.get(name)
        if here is None or there is None or len(here) != len(there):
            return None
        return frozenset(i for i, (a, b) in enumerate(zip(here, there)) if a != b)

    failures: list[str] = []
    produced = data_names | {o for node in builder.nodes for o in node.output}  # + generators fed at run time
    layer_outputs = {o for fn in functions for o in fn.outputs}  # a failed layer is reported by itself
    for name in sorted({n for fn in functions for n in fn.inputs if n in model.parameters and n in network.variables}):
        declared, stored = network.variables[name].shape, model.parameters[name].data.shape
        if declared and tuple(declared) != tuple(stored):
            failures.append(f"parameter {name!r}: declared with shape {tuple(declared)}, stored with {tuple(stored)}")
    for fn in functions:
        where = f"{fn.name} ({fn.type})"
        spec = function_spec(fn.type)
        entry = lowering_for(fn.type)
        if spec is None:
            failures.append(f"{where}: unknown function type")
            continue
        if entry is None:
            failures.append(f"{where}: no ONNX conversion for {fn.type}")
            continue
        if opset < entry.min_opset:
            failures.append(f"{where}: needs opset {entry.min_opset} or newer (asked for {opset})")
            continue
        missing = [n for n in fn.inputs if n not in report.shapes]
        if missing:
            failures.append(f"{where}: input {missing[0]!r} is produced by nothing and is not a parameter")
            continue
        counts = [(what, len(names), limits) for what, names, limits in
                  (("inputs", fn.inputs, spec.input_range), ("outputs", fn.outputs, spec.output_range))
                  if not (limits[0] <= len(names) and (limits[1] is None or len(names) <= limits[1]))]
        if counts:
            what, n, (lo, hi) = counts[0]
            failures.append(f"{where}: has {n} {what}, {fn.type} takes {lo}" + ("" if hi == lo else
                            f" to {hi}" if hi is not None else " or more"))
            continue
        unknown = [n for n in fn.outputs if n not in report.shapes]
        if unknown:
            failures.append(f"{where}: output {unknown[0]!r} is not declared and its shape cannot be inferred")
            continue
        call = FunctionCall(fn, spec, [report.shapes[n] for n in fn.inputs], network.name, shape_batch,
                            {i: model.parameters[n].data for i, n in enumerate(fn.inputs) if n in model.parameters})
        ctx = LoweringContext(builder, call, list(fn.inputs), list(fn.outputs),
                              [report.shapes[o] for o in fn.outputs], batch_size is not None, batch_dims)
        before = len(builder.nodes)
        try:
            entry.convert(ctx)
        except UnsupportedFunctionError as e:
            del builder.nodes[before:]
            failures.append(f"{where}: {e}")
        except (ValueError, IndexError, KeyError, TypeError, ZeroDivisionError, OverflowError) as e:
            # Arguments a lowering cannot make sense of (an axis beyond the input's rank, ...).
            del builder.nodes[before:]
            failures.append(f"{where}: invalid arguments for inputs {ctx.input_shapes}: {e}")
        else:
            # A layer input the lowering reads must come from somewhere (some layers ignore some).
            read = {i for node in builder.nodes[before:] for i in node.input}
            absent = [n for n in fn.inputs if n in read and n not in produced and n not in builder.initializers
                      and n not in layer_outputs]
            if absent:
                var = network.variables.get(absent[0])
                failures.append(f"{where}: input {absent[0]!r} " + (
                    "is a parameter missing from the file (nnabla would fill it with random values)"
                    if var is not None and var.is_parameter else "is neither stored in the file nor computed by a layer"))
            produced.update(o for node in builder.nodes[before:] for o in node.output)
    if failures:
        raise UnsupportedFunctionError(
            f"{model.source.path}: cannot convert executor {exe.name!r} to ONNX opset {opset}:\n  "
            + "\n  ".join(failures))

    def leads_with_batch(name: str) -> bool:
        """Whether dimension 0 of traced tensor ``name`` is the batch (taken so where the other trace lacks it)."""
        return other.get(name, ())[:1] != tuple(report.shapes[name][:1])

    def value_info(name: str) -> Any:
        shape: list[Any] = list(report.shapes[name])
        if shape and leads_with_batch(name):
            shape[0] = BATCH_DIM
        return onnx_proto.value_info(name, onnx_proto.TENSOR_FLOAT, shape)

    boundary = {d.variable for d in exe.data} | {o.variable for o in exe.outputs}

    def batched_rank(name: str) -> int | None:
        """The rank of a tensor whose dimension 0 is the batch (None for any other)."""
        if name not in report.shapes or not leads_with_batch(name):
            return None
        return len(report.shapes[name])

    for generator, chain in expanded:
        _broadcast_generator(builder, generator, chain, batched_rank, boundary)
    _fold_constant_reshapes(builder, boundary)
    _fold_identities(builder.nodes, boundary)
    # Parameters a lowering folded into new constants (stored batch-norm statistics, ...) are dropped.
    used = {name for node in builder.nodes for name in node.input} | {o.variable for o in exe.outputs}
    initializers = {name: t for name, t in builder.initializers.items() if name in used}
    external = None if builder.external_arrays is None else \
        {name: a for name, a in builder.external_arrays.items() if name in initializers}
    proto = onnx_proto.message("ModelProto", ir_version=onnx_proto.ir_version_for(opset),
                               producer_name="nncbridge", producer_version=_version())
    proto.opset_import.add(domain="", version=opset)
    graph = proto.graph
    graph.node.extend(builder.nodes)
    graph.name = network.name
    graph.initializer.extend(initializers.values())
    graph.input.extend(value_info(d.variable) for d in exe.data)
    graph.output.extend(value_info(o.variable) for o in exe.outputs)
    _add_metadata(proto, model, exe)
    return proto, external


def _fold_constant_reshapes(builder: GraphBuilder, boundary: set[str]) -> None:
    """Replace each Reshape of a constant (a weight brought to the layout an op wants, ...) by an
    initializer holding the reshaped value, so the graph carries no work on constants."""
    kept = []
    for node in builder.nodes:
        values = [builder.constant_values.get(name) for name in node.input]
        if (node.op_type != "Reshape" or node.domain not in ("", "ai.onnx") or len(values) != 2
                or any(v is None for v in values) or node.output[0] in boundary or node.attribute):
            kept.append(node)
            continue
        data = np.asarray(values[0])
        target = [data.shape[i] if d == 0 else int(d) for i, d in enumerate(np.asarray(values[1]).reshape(-1))]
        builder.add_initializer(node.output[0], data.reshape(target))
    builder.nodes[:] = kept


def _fold_identities(nodes: list[Any], boundary: set[str]) -> None:
    """Drop the ``Identity`` nodes that only rename a lowering's last result to the variable name,
    by giving the producing node that name directly."""
    producer = {out: node for node in nodes for out in node.output}
    uses: dict[str, int] = {}
    for node in nodes:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    dropped = []
    for node in nodes:
        if node.op_type != "Identity" or node.domain not in ("", "ai.onnx"):
            continue
        source = node.input[0]
        if source in boundary or uses.get(source) != 1 or source not in producer:
            continue
        outputs = producer[source].output
        outputs[list(outputs).index(source)] = node.output[0]
        producer[node.output[0]] = producer.pop(source)
        dropped.append(node)
    if dropped:
        ids = {id(n) for n in dropped}
        nodes[:] = [n for n in nodes if id(n) not in ids]


def _add_generators(builder: GraphBuilder, network: Network, exe: Executor,
                    batch_size: int | None) -> list[tuple[Generator, list[Any]]]:
    """Constant/Range generator variables as constants; a batched one follows the first data input's
    batch. Returns the batched ones with the nodes that expand them to the batch."""
    from ..model.expand import executor_generators

    make_node = onnx_proto.make_node
    expanded = []
    for g in executor_generators(network, exe.generators):
        if not g.deterministic:
            raise UnsupportedFunctionError(f"generator variable {g.variable!r} of type {g.type!r} is random; "
                                           "ONNX export supports Constant and Range generators only")
        if not g.batched or batch_size is not None or not exe.data:
            builder.add_initializer(g.variable, g.value(batch_size or 1))
            continue
        one = builder.add_initializer(builder.fresh(f"{g.variable}/value"), g.value(1))
        rest = builder.add_initializer(builder.fresh(f"{g.variable}/dims"), np.asarray(g.shape[1:], np.int64))
        first, zero = (builder.add_initializer(builder.fresh(f"{g.variable}/{n}"), np.asarray([v], np.int64))
                       for n, v in (("one", 1), ("zero", 0)))
        shape, batch, target = (builder.fresh(f"{g.variable}/{n}") for n in ("shape", "batch", "target"))
        if builder.opset >= 15:  # Shape takes start/end
            chain = [make_node("Shape", [exe.data[0].variable], [batch], name=builder.fresh("Shape"), start=0, end=1)]
        else:
            chain = [make_node("Shape", [exe.data[0].variable], [shape], name=builder.fresh("Shape")),
                     make_node("Slice", [shape, zero, first], [batch], name=builder.fresh("Slice"))]
        chain += [make_node("Concat", [batch, rest], [target], name=builder.fresh("Concat"), axis=0),
                  make_node("Expand", [one, target], [g.variable], name=builder.fresh("Expand"))]
        builder.nodes += chain
        expanded.append((g, chain))
    return expanded


_BROADCASTING = frozenset({"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"})


def _broadcast_generator(builder: GraphBuilder, g: Generator, chain: list[Any],
                         batched_rank: Callable[[str], int | None], boundary: set[str]) -> None:
    """Drop the expansion of generator ``g`` to the batch where every node reading it can take one
    row instead: an elementwise op whose other operand has the batch (broadcasting fills it), or,
    for a Constant generator, a Concat of it and one such tensor along another axis (a Pad with the
    constant). The recurrent state a Delay starts from is read that way, and onnxruntime then runs
    three nodes fewer per generator."""
    rank = len(g.shape)
    readers = [node for node in builder.nodes if g.variable in node.input]

    def other_operand(node: Any) -> str | None:
        """The batched operand of the same rank beside the generator, for a two-input node."""
        others = [name for name in node.input if name != g.variable]
        if len(node.input) != 2 or len(others) != 1 or node.domain not in ("", "ai.onnx"):
            return None
        return others[0] if batched_rank(others[0]) == rank else None

    def concat_axis(node: Any) -> int | None:
        axis = next((a.i for a in node.attribute if a.name == "axis"), None)
        return None if axis is None or (axis % rank) == 0 else axis % rank

    if g.variable in boundary or not readers:
        return
    for node in readers:
        if node.op_type in _BROADCASTING and other_operand(node) is not None:
            continue
        if node.op_type == "Concat" and g.type == "Constant" and other_operand(node) is not None \
                and concat_axis(node) is not None:
            continue
        return
    chain_ids = {id(n) for n in chain}
    builder.nodes[:] = [n for n in builder.nodes if id(n) not in chain_ids]
    for node in readers:
        if node.op_type in _BROADCASTING:
            continue
        axis, data = concat_axis(node), other_operand(node)
        assert axis is not None and data is not None
        pads = np.zeros(2 * rank, np.int64)
        pads[axis + (rank if list(node.input).index(g.variable) == 1 else 0)] = g.shape[axis]
        pad = onnx_proto.make_node("Pad", [data, builder.add_initializer(builder.fresh(f"{g.variable}/pads"), pads),
                                           builder.add_initializer(builder.fresh(f"{g.variable}/constant"),
                                                                   np.asarray(g.multiplier, np.float32))],
                                   list(node.output), name=node.name, mode="constant")
        node.CopyFrom(pad)
    builder.add_initializer(g.variable, g.value(1))


def _add_metadata(proto: Any, model: Model, exe: Executor) -> None:
    import json

    normalize = divides_images_by_255(model, exe)
    meta = {
        "nncbridge.executor": exe.name,
        "nncbridge.network": exe.network,
        "nncbridge.nnp_version": model.source.nnp_version or "",
        "nncbridge.inputs": json.dumps({d.variable: d.data_name for d in exe.data}),
        "nncbridge.outputs": json.dumps({o.variable: o.data_name for o in exe.outputs}),
        "nncbridge.image_normalization": "divide_by_255" if normalize else "none",
    }
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def _version() -> str:
    from .. import __version__

    return __version__


def save_onnx(proto: Any, path: Union[str, "os.PathLike[str]"]) -> None:
    """Write an ONNX model atomically (temporary file in the same folder, then rename)."""
    from ..util.files import atomic_write_bytes

    atomic_write_bytes(path, proto.SerializeToString())
