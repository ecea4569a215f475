"""In-memory model of an NNP: networks, variables, functions, executors, datasets, parameters."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

Shape = tuple[int, ...]


@dataclass
class Variable:
    name: str
    type: str = "Buffer"  # "Buffer" or "Parameter"
    shape: Shape = ()
    repeat_ids: tuple[str, ...] = ()
    initializer: dict[str, Any] | None = None

    @property
    def is_parameter(self) -> bool:
        return self.type == "Parameter"


@dataclass
class Function:
    name: str
    type: str
    inputs: list[str]
    outputs: list[str]
    params: dict[str, Any] = field(default_factory=dict)
    """Arguments as stored; message-typed arguments that were absent are ``None``."""
    repeat_ids: tuple[str, ...] = ()
    repeat_param: dict[str, Any] | None = None  # RepeatStart/RepeatEnd/Delay: {repeat_id, times}
    recurrent_param: dict[str, Any] | None = None  # RecurrentInput/Output: {repeat_id, length, axis}


@dataclass
class Network:
    name: str
    variables: dict[str, Variable] = field(default_factory=dict)
    functions: list[Function] = field(default_factory=list)
    batch_size: int = 1
    repeat_info: dict[str, int] = field(default_factory=dict)

    def producers(self) -> dict[str, Function]:
        return {out: f for f in self.functions for out in f.outputs}

    def consumers(self) -> dict[str, list[Function]]:
        users: dict[str, list[Function]] = {}
        for f in self.functions:
            for name in f.inputs:
                users.setdefault(name, []).append(f)
        return users


@dataclass
class DataVariable:
    variable: str
    data_name: str


@dataclass
class OutputVariable:
    variable: str
    data_name: str
    type: str = ""


@dataclass
class GeneratorVariable:
    variable: str
    type: str
    multiplier: float = 1.0


@dataclass
class Executor:
    name: str
    network: str
    data: list[DataVariable] = field(default_factory=list)
    outputs: list[OutputVariable] = field(default_factory=list)
    generators: list[GeneratorVariable] = field(default_factory=list)
    losses: list[str] = field(default_factory=list)
    parameters: list[str] = field(default_factory=list)
    num_evaluations: int = 0
    repeat_evaluation_type: str = ""
    need_back_propagation: bool = False
    no_image_normalization: bool = False


@dataclass
class Dataset:
    name: str
    uri: str = ""
    type: str = ""
    batch_size: int = 0
    cache_dir: str = ""
    overwrite_cache: bool = False
    create_cache_explicitly: bool = False
    shuffle: bool = False
    no_image_normalization: bool = False
    variables: list[str] = field(default_factory=list)


@dataclass
class Optimizer:
    name: str
    network: str
    datasets: list[str] = field(default_factory=list)
    solver: dict[str, Any] = field(default_factory=dict)
    """The solver as a plain dict (type, weight_decay, its ``*_param`` …); states are dropped."""
    order: int = 0
    update_interval: int = 0
    start_iter: int = 0
    end_iter: int = 0
    data: list[DataVariable] = field(default_factory=list)
    generators: list[GeneratorVariable] = field(default_factory=list)
    losses: list[str] = field(default_factory=list)
    parameters: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class MonitorVariable:
    variable: str
    type: str = ""
    data_name: str = ""
    multiplier: float = 0.0


@dataclass
class Monitor:
    name: str
    network: str
    datasets: list[str] = field(default_factory=list)
    data: list[DataVariable] = field(default_factory=list)
    generators: list[GeneratorVariable] = field(default_factory=list)
    monitor_variables: list[MonitorVariable] = field(default_factory=list)


@dataclass
class Parameter:
    name: str
    data: np.ndarray
    need_grad: bool = True


@dataclass
class SourceInfo:
    """Where a model came from and how it was stored."""

    path: str = "<memory>"
    nnp_version: str | None = None
    members: list[str] = field(default_factory=list)
    network_encoding: str = ""  # "text", "binary" or "text+binary"
    parameter_format: str = ""  # "protobuf", "h5", "text" or "" when there are none
    warnings: list[str] = field(default_factory=list)
    """Things the reader tolerated (unknown fields, duplicate parameters); validation reports them."""


@dataclass
class Model:
    networks: dict[str, Network] = field(default_factory=dict)
    executors: dict[str, Executor] = field(default_factory=dict)
    datasets: dict[str, Dataset] = field(default_factory=dict)
    optimizers: dict[str, Optimizer] = field(default_factory=dict)
    monitors: dict[str, Monitor] = field(default_factory=dict)
    parameters: dict[str, Parameter] = field(default_factory=dict)
    global_config: dict[str, Any] = field(default_factory=dict)
    training_config: dict[str, Any] = field(default_factory=dict)
    version: str = ""
    source: SourceInfo = field(default_factory=SourceInfo)

    def executor(self, name: str | None = None) -> Executor:
        """The named executor, or the only one when ``name`` is None."""
        from ..errors import ExecutorNotFoundError

        if name is not None:
            if name not in self.executors:
                raise ExecutorNotFoundError(
                    f"{self.source.path}: no executor {name!r}; executors: {', '.join(self.executors) or 'none'}")
            return self.executors[name]
        runtime = [e for e in self.executors.values() if not e.need_back_propagation]
        if len(runtime) == 1:
            return runtime[0]
        if not runtime:
            raise ExecutorNotFoundError(f"{self.source.path}: the model has no runtime executor")
        raise ExecutorNotFoundError(
            f"{self.source.path}: several executors ({', '.join(e.name for e in runtime)}); choose one")


def divides_images_by_255(model: Model, executor: Executor) -> bool:
    """Whether Console scales 8-bit image inputs by 1/255 for this executor.

    Console records ``no_image_normalization`` on the executor and on the datasets; images are
    divided unless the executor says not to, or every dataset of the project does.
    """
    if executor.no_image_normalization:
        return False
    return not model.datasets or any(not d.no_image_normalization for d in model.datasets.values())
