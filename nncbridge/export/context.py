"""What an ONNX lowering sees and uses: one nnabla function in a graph under construction."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import UnsupportedFunctionError
from ..functions.registry import FunctionCall
from ..model.graph import Shape
from . import onnx_proto

EXTERNAL_MIN_BYTES = 1024


class GraphBuilder:
    """Accumulates ONNX nodes and initializers; hands out unique tensor names."""

    def __init__(self, opset: int, external_weights: bool = False) -> None:
        self.opset = opset
        self.nodes: list[Any] = []
        self.initializers: dict[str, Any] = {}
        # With external_weights, big initializers only name their data; the arrays are kept here
        # for a runtime to take without copies (onnxruntime's add_external_initializers).
        self.external_arrays: dict[str, np.ndarray] | None = {} if external_weights else None
        self.constant_values: dict[str, np.ndarray] = {}
        self.used_names: set[str] = set()
        self._counter = 0

    def fresh(self, hint: str) -> str:
        while True:
            self._counter += 1
            name = f"{hint}__{self._counter}"
            if name not in self.used_names:
                self.used_names.add(name)
                return name

    def add_initializer(self, name: str, value: np.ndarray) -> str:
        self.used_names.add(name)
        array = np.ascontiguousarray(value).reshape(np.shape(value))
        if self.external_arrays is not None and array.nbytes >= EXTERNAL_MIN_BYTES:
            self.external_arrays[name] = array
            self.initializers[name] = onnx_proto.external_tensor(array, name)
        else:
            self.initializers[name] = onnx_proto.tensor_from_array(array, name)
        self.constant_values[name] = value
        return name


class LoweringContext:
    """One function being lowered.

    ``inputs``/``outputs`` are ONNX tensor names (nnabla variable names; ``""`` for an absent
    optional input). Shapes are concrete, with the batch size used for export in dimension 0
    of batch-carrying tensors; the emitted graph must not depend on that size, since the
    batch dimension stays symbolic unless the caller fixed it.
    """

    def __init__(self, builder: GraphBuilder, call: FunctionCall, inputs: list[str], outputs: list[str],
                 output_shapes: list[Shape], fixed_batch: bool,
                 batch_dims: Callable[[str], frozenset[int] | None] | None = None) -> None:
        self.builder = builder
        self.call = call
        self.inputs = inputs
        self.outputs = outputs
        self.input_shapes = call.input_shapes
        self.output_shapes = output_shapes
        self.fixed_batch = fixed_batch
        self.batch_dims_of = batch_dims or (lambda name: None)

    @property
    def opset(self) -> int:
        return self.builder.opset

    @property
    def params(self) -> dict[str, Any]:
        return self.call.params

    def param(self, name: str, default: Any = None) -> Any:
        return self.call.param(name, default)

    @property
    def batch_size(self) -> int:
        return self.call.batch_size

    @property
    def name(self) -> str:
        return self.call.function.name

    def fresh(self, hint: str = "t") -> str:
        return self.builder.fresh(f"{self.name}/{hint}")

    def node(self, op_type: str, inputs: list[str], outputs: list[str] | int | None = None,
             domain: str | None = None, **attrs: Any) -> list[str]:
        """Add a node; returns its output names (fresh ones unless given)."""
        if outputs is None:
            outputs = 1
        if isinstance(outputs, int):
            outputs = [self.fresh(op_type) for _ in range(outputs)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        node = onnx_proto.make_node(op_type, inputs, outputs, name=self.fresh(op_type), domain=domain, **attrs)
        self.builder.nodes.append(node)
        return list(outputs)

    def op(self, op_type: str, *inputs: str, **attrs: Any) -> str:
        """Add a single-output node and return its output name."""
        return self.node(op_type, list(inputs), 1, **attrs)[0]

    def const(self, value: Any, dtype: Any = np.float32, hint: str = "const") -> str:
        return self.builder.add_initializer(self.fresh(hint), np.asarray(value, dtype=dtype))

    def ints(self, values: Any, hint: str = "shape") -> str:
        return self.const(np.asarray(values, dtype=np.int64).reshape(-1), np.int64, hint)

    def constant_value(self, index: int) -> np.ndarray | None:
        """The value of input ``index`` if it is a stored parameter or another constant."""
        name = self.inputs[index] if index < len(self.inputs) else ""
        return self.builder.constant_values.get(name)

    def batch_free_shape(self, shape: Any) -> str:
        """A Reshape target for ``shape`` (dimension 0 the batch, the others static) as one constant,
        with ``-1`` in dimension 0 unless the batch is fixed: no Shape/Slice/Concat chain at run time."""
        dims = [int(d) for d in shape]
        if dims and not self.fixed_batch:
            dims[0] = -1
        return self.ints(dims)

    def batch_dims(self, name: str) -> frozenset[int] | None:
        """The dimensions of tensor ``name`` that follow the batch size: none when the batch is fixed,
        None if unknown (a tensor the exporter did not trace at two batch sizes)."""
        return frozenset() if self.fixed_batch else self.batch_dims_of(name)

    def reshape_target(self, shape: Any, batch_dims: frozenset[int] | None) -> str | None:
        """A Reshape target for ``shape`` that holds at any batch size: static, with ``-1`` in the one
        dimension that follows the batch; None if more than one does or that is unknown."""
        if batch_dims is None or len(batch_dims) > 1:
            return None
        return self.ints([-1 if i in batch_dims else int(d) for i, d in enumerate(shape)])

    def has_input(self, index: int) -> bool:
        return index < len(self.inputs) and bool(self.inputs[index])

    def unsupported(self, reason: str) -> UnsupportedFunctionError:
        """Return (for ``raise``) the error that says this layer cannot be exported, and why."""
        return UnsupportedFunctionError(reason)
