"""nncbridge's own ONNX messages (export/onnx_proto.py) against the onnx package's: the same field
names, numbers and types, and byte for byte the same output as onnx.helper / onnx.numpy_helper."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from google.protobuf.descriptor import FieldDescriptor
from onnx import TensorProto, helper, numpy_helper

from nncbridge.export import onnx_proto


def _ours_and_theirs():
    classes = onnx_proto._classes()
    for name, cls in classes.items():
        yield cls.DESCRIPTOR, getattr(onnx, name).DESCRIPTOR
    yield (classes["ValueInfoProto"].DESCRIPTOR.fields_by_name["type"].message_type,
           onnx.TypeProto.DESCRIPTOR)


def _pairs(ours, theirs, seen=None):
    seen = set() if seen is None else seen
    if ours.full_name in seen:
        return
    seen.add(ours.full_name)
    yield ours, theirs
    for field in ours.fields:
        if field.message_type is not None:
            yield from _pairs(field.message_type, theirs.fields_by_name[field.name].message_type, seen)


def _repeated(field) -> bool:
    if hasattr(field, "is_repeated"):  # protobuf >= 6 (label is gone)
        return bool(field.is_repeated)
    return field.label == FieldDescriptor.LABEL_REPEATED


@pytest.mark.parametrize("ours, theirs", [p for o, t in _ours_and_theirs() for p in _pairs(o, t)],
                         ids=lambda d: d.name)
def test_message_fields_match_onnx_proto(ours, theirs):
    assert ours.name == theirs.name
    for field in ours.fields:
        other = theirs.fields_by_name.get(field.name)
        assert other is not None, f"{ours.name}.{field.name} is not in onnx.proto"
        assert field.number == other.number, f"{ours.name}.{field.name}"
        assert _repeated(field) == _repeated(other), f"{ours.name}.{field.name}"
        expected = FieldDescriptor.TYPE_INT32 if other.type == FieldDescriptor.TYPE_ENUM else other.type
        assert field.type == expected, f"{ours.name}.{field.name}"
        if field.message_type is not None:
            assert field.message_type.name == other.message_type.name
        assert (field.containing_oneof is None) == (other.containing_oneof is None), f"{ours.name}.{field.name}"


@pytest.mark.parametrize("attributes", [
    {"axis": 0}, {"axis": -1, "keepdims": True}, {"alpha": 0.2}, {"alpha": np.float32(0.1)},
    {"mode": "constant"}, {"mode": b"edge"}, {"perm": [0, 2, 3, 1]}, {"pads": np.array([1, 2, 1, 2])},
    {"scales": [1.0, 2.5]}, {"mixed": [1, 2.5]}, {"names": ["a", "b"]}, {"to": np.int64(7)},
    {"value": numpy_helper.from_array(np.arange(3, dtype=np.float32), "v")},
    {"z": 1, "a": [3], "m": "x", "skipped": None},
])
def test_nodes_equal_onnx_helper(attributes):
    ours_attributes = {k: (onnx_proto.tensor_from_array(numpy_helper.to_array(v), v.name)
                           if isinstance(v, TensorProto) else v) for k, v in attributes.items()}
    ours = onnx_proto.make_node("Op", ["x", ""], ["y"], name="n", domain="", **ours_attributes)
    theirs = helper.make_node("Op", ["x", ""], ["y"], name="n", domain="", **attributes)
    assert ours.SerializeToString() == theirs.SerializeToString()
    plain = onnx_proto.make_node("Relu", ["x"], ["y"])
    assert plain.SerializeToString() == helper.make_node("Relu", ["x"], ["y"]).SerializeToString()


def test_empty_attribute_list_is_refused_like_onnx():
    with pytest.raises(ValueError):
        onnx_proto.make_node("Op", ["x"], ["y"], perm=[])
    with pytest.raises(ValueError):
        helper.make_node("Op", ["x"], ["y"], perm=[])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int64, np.int32, np.int8,
                                   np.uint8, np.bool_])
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 3, 4)])
def test_tensors_equal_numpy_helper(dtype, shape):
    array = (np.arange(int(np.prod(shape))) % 5).astype(dtype).reshape(shape)
    ours = onnx_proto.tensor_from_array(array, "w")
    assert ours.SerializeToString() == numpy_helper.from_array(array, "w").SerializeToString()


def test_external_tensor_equals_onnx_construction():
    array = np.zeros((16, 16), np.float32)
    theirs = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=array.shape, data_location=TensorProto.EXTERNAL)
    theirs.external_data.add(key="location", value="w")
    assert onnx_proto.external_tensor(array, "w").SerializeToString() == theirs.SerializeToString()


@pytest.mark.parametrize("shape", [[], [5], ["batch", 3, 28, 28]])
def test_value_info_equals_onnx_helper(shape):
    ours = onnx_proto.value_info("x", onnx_proto.TENSOR_FLOAT, shape)
    theirs = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    assert ours.SerializeToString() == theirs.SerializeToString()


def test_ir_versions_equal_onnx_helper():
    newest = min(onnx_proto.NEWEST_OPSET, onnx.defs.onnx_opset_version())
    for opset in range(13, newest + 1):
        assert onnx_proto.ir_version_for(opset) == helper.find_min_ir_version_for([helper.make_opsetid("", opset)])


def test_loading_a_predictor_does_not_import_onnx(shared_exports):
    lenet = shared_exports / "mnist-4or9-and-lenet" / "lenet-10class-2017.nnp"
    code = ("import sys, numpy as np, nncbridge\n"
            f"p = nncbridge.load({str(lenet)!r}, backend='onnxruntime')\n"
            "p.predict(np.zeros((1, 28, 28), np.float32))\n"
            "print('onnx' in sys.modules)\n")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
