"""Just enough of protobuf's wire format to lift parameter values out of a binary NNP part.

Parsing ``NNablaProtoBuf.parameter`` with the protobuf library holds every value twice (the
message, then the numpy copy) and converts float by float; the packed ``data`` field is already
a little-endian float32 array, so it is taken from the bytes directly. Everything else in the
part (networks, executors, parameter names and shapes) is still parsed by the library.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

NNP_PARAMETER_FIELD = 200  # NNablaProtoBuf.parameter
PARAMETER_DATA_FIELD = 100  # Parameter.data (repeated float, packed)

_VARINT, _FIXED64, _LENGTH, _GROUP_START, _GROUP_END, _FIXED32 = 0, 1, 2, 3, 4, 5
_FLOAT32 = np.dtype("<f4")


MAX_FIELDS = 100_000  # real parts have a few per network and parameter


class WireError(ValueError):
    """Malformed, or shaped unlike anything nnabla writes: the caller parses the part the slow way."""


@dataclass
class RawParameter:
    """One ``Parameter`` message: its fields other than ``data`` (still encoded) and its values."""

    other_fields: bytes
    chunks: list[np.ndarray] = field(default_factory=list)

    def values(self) -> np.ndarray:
        if len(self.chunks) == 1:
            return self.chunks[0]
        return np.concatenate(self.chunks) if self.chunks else np.empty(0, np.float32)


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end:
            raise WireError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift >= 70:
            raise WireError("varint longer than 10 bytes")


def _fields(buf: memoryview, start: int, end: int) -> Iterator[tuple[int, int, int, int, int]]:
    """(field number, wire type, start of the whole field, start of its payload, end) per field."""
    pos = start
    count = 0
    while pos < end:
        count += 1
        if count > MAX_FIELDS:
            raise WireError("too many fields")
        field_start = pos
        key, pos = _varint(buf, pos, end)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if wire_type == _VARINT:
            _, pos = _varint(buf, pos, end)
            payload = pos
        elif wire_type == _FIXED64:
            payload, pos = pos, pos + 8
        elif wire_type == _FIXED32:
            payload, pos = pos, pos + 4
        elif wire_type == _LENGTH:
            size, payload = _varint(buf, pos, end)
            pos = payload + size
        else:
            raise WireError(f"wire type {wire_type} (groups are not part of the NNP format)")
        if pos > end:
            raise WireError("field runs past the end of its message")
        yield number, wire_type, field_start, payload, pos


def split_parameters(data: bytes) -> tuple[bytes, list[RawParameter]]:
    """``data`` (an encoded ``NNablaProtoBuf``) as the encoding of everything but its parameters,
    and the parameters in file order. Raises ``WireError`` on malformed or unusual input."""
    buf = memoryview(data)
    rest: list[bytes] = []
    parameters: list[RawParameter] = []
    for number, wire_type, field_start, payload, end in _fields(buf, 0, len(buf)):
        if number == NNP_PARAMETER_FIELD and wire_type == _LENGTH:
            parameters.append(_parameter(buf, payload, end))
        else:
            rest.append(bytes(buf[field_start:end]))
    return b"".join(rest), parameters


def _parameter(buf: memoryview, start: int, end: int) -> RawParameter:
    other: list[bytes] = []
    chunks: list[np.ndarray] = []
    for number, wire_type, field_start, payload, field_end in _fields(buf, start, end):
        if number != PARAMETER_DATA_FIELD:
            other.append(bytes(buf[field_start:field_end]))
        elif wire_type == _LENGTH:
            if (field_end - payload) % 4:
                raise WireError("packed float data whose length is not a multiple of 4")
            chunks.append(np.frombuffer(buf[payload:field_end], dtype=_FLOAT32).astype(np.float32))
        else:
            raise WireError(f"parameter data with wire type {wire_type} (nnabla writes it packed)")
    return RawParameter(b"".join(other), chunks)
