"""The ONNX messages nncbridge writes, without importing the ``onnx`` package.

``import onnx`` costs ~80 ms (it loads its checker, reference tools and ml_dtypes), more than
reading and converting a small model. A runtime only needs the serialized model, so the graph is
built with message classes made here from a table of onnx.proto's names and field numbers
(proto2, like onnx.proto: the bytes equal those of ``onnx``'s own classes; tests compare both the
descriptors and the bytes). The node, attribute and tensor helpers follow ``onnx.helper``'s
rules. ``to_onnx`` turns the result into an ``onnx.ModelProto`` for callers who want one.
The assembled descriptor is stored serialized as ``onnx_subset.binpb`` (tools/store_descriptors.py),
which is what nncbridge loads.
"""
from __future__ import annotations

import functools
import numbers
import os
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..util.descriptors import load_stored_descriptor

if TYPE_CHECKING:
    from google.protobuf import descriptor_pb2

_FILE = "nncbridge_onnx.proto"
SERIALIZED_DESCRIPTOR = os.path.join(os.path.dirname(__file__), "onnx_subset.binpb")

# message | field:number:type ...   ("*" = repeated; scalar types as in .proto; enums as int32;
# a nested message, Outer.Inner, after its outer one)
_MESSAGES = """
StringStringEntryProto | key:1:string value:2:string
OperatorSetIdProto | domain:1:string version:2:int64
TensorProto | dims:1:*int64 data_type:2:int32 float_data:4:*float int32_data:5:*int32 string_data:6:*bytes int64_data:7:*int64 name:8:string raw_data:9:bytes double_data:10:*double uint64_data:11:*uint64 doc_string:12:string external_data:13:*StringStringEntryProto data_location:14:int32
AttributeProto | name:1:string f:2:float i:3:int64 s:4:bytes t:5:TensorProto floats:7:*float ints:8:*int64 strings:9:*bytes tensors:10:*TensorProto doc_string:13:string type:20:int32 ref_attr_name:21:string
NodeProto | input:1:*string output:2:*string name:3:string op_type:4:string attribute:5:*AttributeProto doc_string:6:string domain:7:string
TensorShapeProto | dim:1:*TensorShapeProto.Dimension
TensorShapeProto.Dimension | dim_value:1:int64 dim_param:2:string denotation:3:string
TypeProto | tensor_type:1:TypeProto.Tensor denotation:6:string
TypeProto.Tensor | elem_type:1:int32 shape:2:TensorShapeProto
ValueInfoProto | name:1:string type:2:TypeProto doc_string:3:string
GraphProto | node:1:*NodeProto name:2:string initializer:5:*TensorProto doc_string:10:string input:11:*ValueInfoProto output:12:*ValueInfoProto value_info:13:*ValueInfoProto
ModelProto | ir_version:1:int64 producer_name:2:string producer_version:3:string domain:4:string model_version:5:int64 doc_string:6:string graph:7:GraphProto opset_import:8:*OperatorSetIdProto metadata_props:14:*StringStringEntryProto
"""
# oneof groups: message -> (oneof name, member fields)
_ONEOFS = {"TensorShapeProto.Dimension": ("value", ("dim_value", "dim_param")), "TypeProto": ("value", ("tensor_type",))}
_SCALARS: dict[str, Any] = {"int64": 3, "uint64": 4, "int32": 5, "float": 2, "double": 1, "string": 9, "bytes": 12}

# onnx.proto enums
FLOAT, INT, STRING, TENSOR, FLOATS, INTS, STRINGS, TENSORS = 1, 2, 3, 4, 6, 7, 8, 10  # AttributeType
EXTERNAL = 1  # TensorProto.DataLocation
TENSOR_FLOAT = 1  # TensorProto.DataType.FLOAT
_DATA_TYPES = {np.dtype(np.float32): 1, np.dtype(np.uint8): 2, np.dtype(np.int8): 3, np.dtype(np.uint16): 4,
               np.dtype(np.int16): 5, np.dtype(np.int32): 6, np.dtype(np.int64): 7, np.dtype(np.bool_): 9,
               np.dtype(np.float16): 10, np.dtype(np.float64): 11, np.dtype(np.uint32): 12,
               np.dtype(np.uint64): 13}

# ONNX releases: (ai.onnx opset, IR version it introduced) -- onnx.helper.VERSION_TABLE's facts.
_IR_VERSION_OF_OPSET = {13: 7, 14: 7, 15: 8, 16: 8, 17: 8, 18: 8, 19: 9, 20: 9, 21: 10, 22: 10, 23: 11}
NEWEST_OPSET = max(_IR_VERSION_OF_OPSET)


def build_file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """The messages assembled from the table (what ``onnx_subset.binpb`` stores)."""
    from google.protobuf import descriptor_pb2

    fdp = descriptor_pb2.FileDescriptorProto(name=_FILE, package="nncbridge_onnx", syntax="proto2")
    field_type = descriptor_pb2.FieldDescriptorProto
    messages: dict[str, descriptor_pb2.DescriptorProto] = {}
    for line in _MESSAGES.strip().splitlines():
        full_name, _, fields = (part.strip() for part in line.partition("|"))
        outer, _, inner = full_name.partition(".")
        msg = messages[outer].nested_type.add(name=inner) if inner else fdp.message_type.add(name=outer)
        messages[full_name] = msg
        oneof = _ONEOFS.get(full_name)
        if oneof:
            msg.oneof_decl.add(name=oneof[0])
        for spec in fields.split():
            name, number, kind = spec.split(":")
            field = msg.field.add(name=name, number=int(number))
            field.label = field_type.LABEL_REPEATED if kind.startswith("*") else field_type.LABEL_OPTIONAL
            kind = kind.lstrip("*")
            if kind in _SCALARS:
                field.type = _SCALARS[kind]
            else:
                field.type = field_type.TYPE_MESSAGE
                field.type_name = f".nncbridge_onnx.{kind}"
            if oneof and name in oneof[1]:
                field.oneof_index = 0
    return fdp


@functools.lru_cache(maxsize=None)
def _classes() -> dict[str, Any]:
    pool, get_class = load_stored_descriptor(SERIALIZED_DESCRIPTOR)
    return {name: get_class(pool.FindMessageTypeByName(f"nncbridge_onnx.{name}"))
            for name in ("ModelProto", "GraphProto", "NodeProto", "AttributeProto", "TensorProto",
                         "ValueInfoProto", "OperatorSetIdProto")}


def message(kind: str, /, **fields: Any) -> Any:
    """A new message of type ``kind`` (``ModelProto``, ``TensorProto``, ...)."""
    return _classes()[kind](**fields)


def ir_version_for(opset: int) -> int:
    """The lowest IR version that knows ai.onnx ``opset`` (onnx.helper.find_min_ir_version_for)."""
    if opset in _IR_VERSION_OF_OPSET:
        return _IR_VERSION_OF_OPSET[opset]
    from onnx import helper  # an opset newer than this table: ask the installed onnx

    return int(helper.find_min_ir_version_for([helper.make_opsetid("", opset)]))


def tensor_from_array(array: np.ndarray, name: str) -> Any:
    """A tensor holding ``array`` in ``raw_data`` (little-endian), as onnx.numpy_helper.from_array."""
    tensor = _tensor_header(array, name)
    data = np.ascontiguousarray(array)
    tensor.raw_data = (data.byteswap() if sys.byteorder == "big" else data).tobytes()
    return tensor


def external_tensor(array: np.ndarray, name: str) -> Any:
    """A tensor whose data lives outside the model, located by its own name."""
    tensor = _tensor_header(array, name)
    tensor.data_location = EXTERNAL
    tensor.external_data.add(key="location", value=name)
    return tensor


def _tensor_header(array: np.ndarray, name: str) -> Any:
    """A tensor with ``array``'s dims and element type and the given name, but no data yet."""
    if array.dtype not in _DATA_TYPES:
        raise TypeError(f"no ONNX tensor type for numpy dtype {array.dtype}")
    tensor = message("TensorProto", dims=array.shape, data_type=_DATA_TYPES[array.dtype])
    if name:
        tensor.name = name
    return tensor


def value_info(name: str, elem_type: int, shape: Sequence[int | str]) -> Any:
    info = message("ValueInfoProto", name=name)
    tensor = info.type.tensor_type
    tensor.elem_type = elem_type
    tensor.shape.SetInParent()  # present even for a scalar
    for d in shape:
        if isinstance(d, str):
            tensor.shape.dim.add(dim_param=d)
        else:
            tensor.shape.dim.add(dim_value=int(d))
    return info


def make_node(op_type: str, inputs: Iterable[str], outputs: Iterable[str], name: str | None = None,
              domain: str | None = None, **attributes: Any) -> Any:
    """A node; attributes sorted by name and typed from their Python values, as onnx.helper does."""
    node = message("NodeProto", op_type=op_type, input=list(inputs), output=list(outputs))
    if name:
        node.name = name
    if domain is not None:
        node.domain = domain
    node.attribute.extend(make_attribute(k, v) for k, v in sorted(attributes.items()) if v is not None)
    return node


def make_attribute(key: str, value: Any) -> Any:
    attr = message("AttributeProto", name=key)
    tensor_class = _classes()["TensorProto"]
    if isinstance(value, numbers.Integral):
        attr.i, attr.type = int(value), INT
    elif isinstance(value, numbers.Real):
        attr.f, attr.type = float(value), FLOAT
    elif isinstance(value, (str, bytes)):
        attr.s, attr.type = _bytes(value), STRING
    elif isinstance(value, tensor_class):
        attr.t.CopyFrom(value)
        attr.type = TENSOR
    else:
        values = list(value)
        if not values:
            raise ValueError(f"attribute {key!r}: cannot tell the type of an empty list")
        if all(isinstance(v, numbers.Integral) for v in values):
            attr.ints.extend(int(v) for v in values)
            attr.type = INTS
        elif all(isinstance(v, numbers.Real) for v in values):
            attr.floats.extend(float(v) for v in values)
            attr.type = FLOATS
        elif all(isinstance(v, (str, bytes)) for v in values):
            attr.strings.extend(_bytes(v) for v in values)
            attr.type = STRINGS
        elif all(isinstance(v, tensor_class) for v in values):
            attr.tensors.extend(values)
            attr.type = TENSORS
        else:
            raise TypeError(f"attribute {key!r}: unsupported list {values!r}")
    return attr


def _bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value
