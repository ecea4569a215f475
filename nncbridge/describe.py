"""What a user needs to call a model: format, executors with inputs and outputs, layers, parameters.

``describe`` returns plain data (JSON-serializable); ``nncbridge info`` prints it.
"""
from __future__ import annotations

import os
from pathlib import PurePosixPath
from typing import Any, Union

import numpy as np

from .errors import ModelError
from .model.graph import Executor, Model, Network, divides_images_by_255

ModelOrPath = Union[Model, str, "os.PathLike[str]", bytes, list]

TRAINING_ONLY_CATEGORIES = ("Loss Functions", "Validation")
_PROBE_BATCHES = (2, 3)  # inferring at two batch sizes tells batch dims from fixed ones


def describe(model_or_path: ModelOrPath) -> dict[str, Any]:
    """A description of the model as plain data (see ``nncbridge info --json``)."""
    if isinstance(model_or_path, Model):
        model = model_or_path
    else:
        from .format.reader import read

        model = read(model_or_path)
    params = model.parameters
    total_values = sum(int(p.data.size) for p in params.values())
    total_bytes = sum(int(p.data.size) * 4 for p in params.values())
    return {
        "path": model.source.path,
        "format": _format(model),
        "networks": [_network_summary(model, net) for net in model.networks.values()],
        "executors": [_executor(model, exe) for exe in model.executors.values()],
        "datasets": [
            {"name": d.name, "uri": d.uri, "batch_size": d.batch_size, "shuffle": d.shuffle,
             "no_image_normalization": d.no_image_normalization, "variables": list(d.variables)}
            for d in model.datasets.values()],
        "parameters": {"arrays": len(params), "values": total_values, "bytes": total_bytes, "dtype": "float32"},
        "warnings": list(model.source.warnings),
    }


def _format(model: Model) -> dict[str, Any]:
    src = model.source
    members = []
    for name in src.members:
        lower = name.lower()
        if lower.endswith("/"):
            continue
        base = PurePosixPath(lower).name
        if base == "nnp_version.txt":
            role = "version"
        elif lower.endswith((".nntxt", ".prototxt")):
            role = "network (text)" if not base.startswith("parameter") else "parameters (text)"
        elif lower.endswith(".protobuf"):
            role = "parameters" if base.startswith("parameter") else "network (binary)"
        elif lower.endswith(".h5"):
            role = "parameters"
        else:
            role = "not needed (ignored)"
        members.append({"name": name, "role": role})
    return {
        "nnp_version": src.nnp_version,
        "members": members,
        "network_encoding": src.network_encoding,
        "parameter_format": src.parameter_format,
    }


def _users(model: Model, network: str) -> list[str]:
    users = [f"executor {e.name!r}" for e in model.executors.values() if e.network == network]
    users += [f"optimizer {o.name!r}" for o in model.optimizers.values() if o.network == network]
    users += [f"monitor {m.name!r}" for m in model.monitors.values() if m.network == network]
    return users


def _network_summary(model: Model, net: Network) -> dict[str, Any]:
    return {"name": net.name, "batch_size": net.batch_size, "layers": len(net.functions),
            "used_by": _users(model, net.name)}


def _expanded(model: Model, net: Network, exe: Executor | None) -> Network:
    from .model.expand import expand_network

    try:
        return expand_network(model, net, exe)
    except ModelError:
        return net


def _inferred_shapes(model: Model, net: Network) -> dict[str, list[int | None]]:
    """Shapes with None where the dimension follows the batch size; {} when inference is impossible."""
    from .model.shapes import infer_shapes

    try:
        a, b = (infer_shapes(model, net, batch).shapes for batch in _PROBE_BATCHES)
    except ModelError:
        return {}
    out = {}
    for name, shape in a.items():
        other = b.get(name)
        if other is None or len(other) != len(shape):
            continue
        out[name] = [int(x) if x == y else None for x, y in zip(shape, other)]
    return out


def _without_batch(shape: list[int | None] | None, declared: tuple[int, ...] | None) -> list[int] | None:
    if shape is not None and None not in shape[1:]:
        return [int(d) for d in (shape[1:] if shape and shape[0] is None else shape) if d is not None]
    if declared is not None:
        return [int(d) for d in declared[1:]] if declared and declared[0] < 0 else [int(d) for d in declared]
    return None


def _executor(model: Model, exe: Executor) -> dict[str, Any]:
    from .functions.registry import function_spec

    info: dict[str, Any] = {"name": exe.name, "network": exe.network, "runtime": not exe.need_back_propagation}
    net = model.networks.get(exe.network)
    if net is None:
        info.update(inputs=[], outputs=[], layers=[], error=f"network {exe.network!r} does not exist")
        return info
    graph = _expanded(model, net, exe)
    shapes = _inferred_shapes(model, graph)

    def shape_of(name: str, batch_major: bool) -> list[int] | None:
        var = graph.variables.get(name) or net.variables.get(name)
        declared = var.shape if var is not None else None
        if batch_major and declared is not None:
            return [int(d) for d in declared[1:]]
        return _without_batch(shapes.get(name), declared)

    info["inputs"] = [{"variable": d.variable, "data_name": d.data_name, "shape": shape_of(d.variable, True),
                       "dtype": "float32"} for d in exe.data]
    info["generators"] = [{"variable": g.variable, "type": g.type, "multiplier": g.multiplier,
                           "shape": shape_of(g.variable, False)} for g in exe.generators]
    info["outputs"] = [{"variable": o.variable, "data_name": o.data_name, "shape": shape_of(o.variable, False),
                        "dtype": "float32"} for o in exe.outputs]

    layers = []
    used: dict[str, int] = {}
    for fn in graph.functions:
        count = 0
        for name in fn.inputs:
            var = graph.variables.get(name)
            stored = model.parameters.get(name)
            if stored is not None:
                size = int(stored.data.size)
            elif var is not None and var.is_parameter:
                size = int(np.prod(var.shape, dtype=np.int64))
            else:
                continue
            count += size
            used[name] = size
        spec = function_spec(fn.type)
        layers.append({
            "name": fn.name, "type": fn.type,
            "output_shape": shape_of(fn.outputs[0], False) if fn.outputs else None,
            "parameters": count,
            "training_only": bool(spec is not None and spec.category in TRAINING_ONLY_CATEGORIES),
        })
    info["layers"] = layers
    info["parameters"] = {"arrays": len(used), "values": sum(used.values()), "bytes": 4 * sum(used.values())}
    info["image_normalization"] = _normalization(model, exe)
    return info


def _normalization(model: Model, exe: Executor) -> dict[str, Any]:
    """Console divides 8-bit images by 255 unless the executor or the dataset says no_image_normalization."""
    datasets = {d.name: not d.no_image_normalization for d in model.datasets.values()}
    divide = divides_images_by_255(model, exe)
    return {"divide_by_255": divide, "executor_no_image_normalization": exe.no_image_normalization,
            "datasets_normalize": datasets}
