"""One registry of nnabla functions: their signature (from nnabla's table), shape rule and ONNX lowering.

A function family lives in one module of ``nncbridge.functions.ops`` and registers itself::

    @shape_rule("ReLU", "Sigmoid")
    def same_shape(call): return [call.input_shapes[0]]

    @onnx_lowering("ReLU")
    def relu(ctx): ctx.node("Relu", ctx.inputs[:1], ctx.outputs)
"""
from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..format.schema import function_table
from ..model.graph import Function, Shape

if TYPE_CHECKING:
    from ..export.context import LoweringContext


@dataclass(frozen=True)
class InputSpec:
    name: str
    optional: bool = False
    variadic: bool = False
    parameter: bool = False


@dataclass(frozen=True)
class ArgumentSpec:
    name: str
    type: str
    default: str | None = None
    choices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    snake_name: str
    category: str
    inputs: tuple[InputSpec, ...]
    outputs: tuple[str, ...]
    variadic_outputs: bool
    arguments: tuple[ArgumentSpec, ...]

    @property
    def input_range(self) -> tuple[int, int | None]:
        """(minimum, maximum or None for unbounded) number of inputs."""
        if any(i.variadic for i in self.inputs):
            return sum(1 for i in self.inputs if not i.optional and not i.variadic), None
        return sum(1 for i in self.inputs if not i.optional), len(self.inputs)

    @property
    def output_range(self) -> tuple[int, int | None]:
        # Trailing outputs may be left out: nnabla saves TopKData with its ``y`` alone.
        if self.variadic_outputs:
            return (1, None)
        return (min(1, len(self.outputs)), len(self.outputs) + _UNLISTED_OUTPUTS.get(self.name, 0))


# nnabla's table lists one output, but with_index (Max, Min) and output_u (SpectralNorm) add a second.
_UNLISTED_OUTPUTS = {"Max": 1, "Min": 1, "SpectralNorm": 1}


@dataclass
class FunctionCall:
    """What a shape rule sees: one function with its parameters and input shapes."""

    function: Function
    spec: FunctionSpec
    input_shapes: list[Shape]
    network: str = ""
    batch_size: int = 1
    parameter_inputs: dict[int, Any] = field(default_factory=dict)
    """Input index -> numpy array, for inputs that are stored parameters."""

    @property
    def params(self) -> dict[str, Any]:
        return self.function.params

    def param(self, name: str, default: Any = None) -> Any:
        value = self.function.params.get(name)
        return default if value is None else value

    def where(self) -> str:
        return f"network {self.network!r} layer {self.function.name!r} ({self.function.type})"


ShapeRule = Callable[[FunctionCall], "list[Shape]"]
Lowering = Callable[["LoweringContext"], None]


@dataclass
class LoweringEntry:
    convert: Lowering
    min_opset: int


_SHAPE_RULES: dict[str, ShapeRule] = {}
_LOWERINGS: dict[str, LoweringEntry] = {}


def shape_rule(*names: str) -> Callable[[ShapeRule], ShapeRule]:
    def register(fn: ShapeRule) -> ShapeRule:
        for name in names:
            _check_known(name)
            _SHAPE_RULES[name] = fn
        return fn

    return register


def onnx_lowering(*names: str, min_opset: int = 13) -> Callable[[Lowering], Lowering]:
    def register(fn: Lowering) -> Lowering:
        for name in names:
            _check_known(name)
            _LOWERINGS[name] = LoweringEntry(fn, min_opset)
        return fn

    return register


def _check_known(name: str) -> None:
    if name not in _specs():
        raise KeyError(f"{name} is not an nnabla function")


@functools.lru_cache(maxsize=None)
def _specs() -> dict[str, FunctionSpec]:
    specs = {}
    for info in function_table()["functions"]:
        specs[info["name"]] = FunctionSpec(
            name=info["name"],
            snake_name=info["snake_name"],
            category=info["category"],
            inputs=tuple(InputSpec(**i) for i in info["inputs"]),
            outputs=tuple(o["name"] for o in info["outputs"]),
            variadic_outputs=any(o["variadic"] for o in info["outputs"]),
            arguments=tuple(
                ArgumentSpec(a["name"], a["type"], a["default"], tuple(a["choices"]) if "choices" in a else None)
                for a in info["arguments"]),
        )
    return specs


def function_spec(name: str) -> FunctionSpec | None:
    """nnabla's signature of a function type, or None if nnabla has no such function."""
    return _specs().get(name)


def all_function_specs() -> list[FunctionSpec]:
    return list(_specs().values())


@functools.lru_cache(maxsize=None)
def _load_ops() -> None:
    from . import ops

    for module in pkgutil.iter_modules(ops.__path__):
        importlib.import_module(f"{ops.__name__}.{module.name}")


def shape_rule_for(name: str) -> ShapeRule | None:
    _load_ops()
    return _SHAPE_RULES.get(name)


def lowering_for(name: str) -> LoweringEntry | None:
    _load_ops()
    return _LOWERINGS.get(name)


def registered_lowerings() -> dict[str, LoweringEntry]:
    _load_ops()
    return dict(_LOWERINGS)
