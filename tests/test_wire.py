"""Parameter values taken from binary parts without the protobuf library (``format/wire.py``).

Expected values are the arrays the parts were encoded from, encoded by the protobuf library or
byte by byte following protobuf's wire format (field 200 = parameter, 100 = data, packed floats).
"""
from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

import nncbridge
from nncbridge.errors import FormatError
from nncbridge.format.schema import new_nnp_message
from nncbridge.format.wire import WireError, split_parameters

from .models import affine_nntxt, parameter_protobuf


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, wire_type: int, payload: bytes) -> bytes:
    head = _varint(number << 3 | wire_type)
    return head + (_varint(len(payload)) + payload if wire_type == 2 else payload)


def _parameter(name: str, shape: tuple[int, ...], data_fields: bytes) -> bytes:
    shape_msg = _field(1, 2, b"".join(_varint(d) for d in shape))
    body = _field(1, 2, name.encode()) + _field(20, 2, shape_msg) + data_fields + _field(101, 0, _varint(1))
    return _field(200, 2, body)


def _packed(values) -> bytes:
    return _field(100, 2, np.asarray(values, "<f4").tobytes())


def _nnp(tmp_path: Path, parameter_bytes: bytes, in_features: int = 3, out_features: int = 2) -> Path:
    path = tmp_path / "m.nnp"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("network.nntxt", affine_nntxt(in_features, out_features))
        z.writestr("parameter.protobuf", parameter_bytes)
    return path


def test_values_match_the_protobuf_library(tmp_path):
    rng = np.random.RandomState(0)
    params = {"Affine/affine/W": rng.randn(3, 2).astype(np.float32), "Affine/affine/b": rng.randn(2).astype(np.float32)}
    data = parameter_protobuf(params)
    rest, raw = split_parameters(data)
    assert rest == b"" and len(raw) == 2
    model = nncbridge.read(_nnp(tmp_path, data))
    for name, value in params.items():
        np.testing.assert_array_equal(model.parameters[name].data, value)
        assert model.parameters[name].data.dtype == np.float32 and model.parameters[name].data.flags.writeable


def test_data_split_over_several_fields_is_concatenated(tmp_path):
    w = np.arange(6, dtype=np.float32).reshape(3, 2)
    fields = _packed(w.ravel()[:4]) + _packed(w.ravel()[4:])
    data = _parameter("Affine/affine/W", (3, 2), fields) + _parameter("Affine/affine/b", (2,), _packed([7, 8]))
    model = nncbridge.read(_nnp(tmp_path, data))
    np.testing.assert_array_equal(model.parameters["Affine/affine/W"].data, w)
    np.testing.assert_array_equal(model.parameters["Affine/affine/b"].data, [7, 8])
    assert model.parameters["Affine/affine/W"].need_grad


def test_unpacked_floats_still_read_through_the_library(tmp_path):
    unpacked = b"".join(_field(100, 5, struct.pack("<f", v)) for v in [1.5, -2.0])
    data = _parameter("Affine/affine/b", (2,), unpacked) + _parameter("Affine/affine/W", (3, 2), _packed(np.ones(6)))
    with pytest.raises(WireError):
        split_parameters(data)
    model = nncbridge.read(_nnp(tmp_path, data))
    np.testing.assert_array_equal(model.parameters["Affine/affine/b"].data, [1.5, -2.0])
    np.testing.assert_array_equal(model.parameters["Affine/affine/W"].data, np.ones((3, 2)))


def test_networks_in_the_same_binary_part_are_kept(tmp_path):
    from google.protobuf import text_format

    msg = new_nnp_message()
    text_format.Merge(affine_nntxt(3, 2), msg)
    data = msg.SerializeToString() + _parameter("Affine/affine/W", (3, 2), _packed(np.full(6, 0.5))) + \
        _parameter("Affine/affine/b", (2,), _packed([1, 2]))
    path = tmp_path / "m.nnp"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("model.protobuf", data)
    model = nncbridge.read(path)
    assert model.source.network_encoding == "binary" and model.source.parameter_format == "protobuf"
    x = np.array([[1, 2, 3]], np.float32)
    np.testing.assert_allclose(nncbridge.load(path).predict(x), [[4.0, 5.0]])


@pytest.mark.parametrize("broken", [
    _field(200, 2, b"\x0a\x05ab"),  # a string that runs past its message
    b"\xc2\x0c\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",  # a length varint longer than 10 bytes
    _parameter("Affine/affine/b", (2,), _field(100, 2, b"\x00\x00\x80")),  # 3 bytes of packed floats
    _parameter("Affine/affine/b", (2,), _packed([1.0])),  # 1 value for shape (2,)
    b"\xc3\x0c",  # a group start (wire type 3)
])
def test_broken_parameter_bytes_are_format_errors(tmp_path, broken):
    good = _parameter("Affine/affine/W", (3, 2), _packed(np.ones(6)))
    with pytest.raises(FormatError, match="parameter.protobuf"):
        nncbridge.read(_nnp(tmp_path, good + broken))
