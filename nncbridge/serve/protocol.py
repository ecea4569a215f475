"""Open Inference Protocol v2 (REST) messages, with Triton's binary tensor data and classification
extensions: parsing inference requests against a Predictor's inputs, and building responses.

Spec: https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/ and Triton's
``binary_data`` / ``classification`` extensions (docs/protocol/extension_*.md in triton-inference-server/server).
"""
from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import RequestError
from ..predictor import Predictor, TensorInfo

DATATYPE = "FP32"
HEADER_LENGTH = "Inference-Header-Content-Length"


@dataclass
class RequestedOutput:
    info: TensorInfo
    binary: bool
    classification: int = 0


@dataclass
class InferRequest:
    feeds: dict[str, np.ndarray]
    """float32 batches keyed by input variable name."""
    outputs: list[RequestedOutput]
    id: str | None = None
    rows: int = 0
    parameters: dict[str, Any] = field(default_factory=dict)


def model_metadata(name: str, predictor: Predictor) -> dict[str, Any]:
    def tensor(info: TensorInfo) -> dict[str, Any]:
        return {"name": info.name, "datatype": DATATYPE, "shape": [-1, *info.shape]}

    return {"name": name, "versions": ["1"], "platform": f"nncbridge_{predictor.backend}",
            "inputs": [tensor(i) for i in predictor.inputs], "outputs": [tensor(o) for o in predictor.outputs]}


def model_config(name: str, predictor: Predictor, max_batch_size: int, max_delay: float) -> dict[str, Any]:
    """Triton's model configuration for ``GET /v2/models/{name}/config`` (tritonclient's ``get_model_config``)."""
    def tensor(info: TensorInfo) -> dict[str, Any]:
        return {"name": info.name, "data_type": "TYPE_FP32", "dims": list(info.shape)}

    return {"name": name, "platform": f"nncbridge_{predictor.backend}", "backend": predictor.backend,
            "max_batch_size": max_batch_size, "input": [tensor(i) for i in predictor.inputs],
            "output": [tensor(o) for o in predictor.outputs],
            "dynamic_batching": {"max_queue_delay_microseconds": int(round(max_delay * 1e6))}}


def parse_infer_request(body: bytes, header_length: str | None, predictor: Predictor) -> InferRequest:
    """An inference request for ``predictor``: JSON, or a JSON header of ``header_length`` bytes
    followed by binary tensor data. Every problem is a RequestError naming the input or output."""
    binary = memoryview(b"")
    if header_length is not None:
        try:
            length = int(header_length)
        except ValueError:
            raise RequestError(f"{HEADER_LENGTH} must be a number of bytes, got {header_length!r}") from None
        if not 0 < length <= len(body):
            raise RequestError(f"{HEADER_LENGTH} is {length} but the body has {len(body)} bytes")
        binary = memoryview(body)[length:]
        body = body[:length]
    message = parse_json_object(body, "inference request")
    request_parameters = _parameters(message, "the request")
    inputs = message.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError('the request needs "inputs": a list of tensors')
    by_name = {i.name: i for i in predictor.inputs}
    feeds: dict[str, np.ndarray] = {}
    offset = 0
    for tensor in inputs:
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise RequestError('every entry of "inputs" needs a "name"')
        name = tensor["name"]
        info = by_name.get(name)
        if info is None:
            raise RequestError(f"unknown input {name!r}; the model's inputs: {_names(predictor.inputs)}")
        if name in feeds:
            raise RequestError(f"input {name!r} is given twice")
        array, used = _input_array(tensor, info, binary[offset:])
        offset += used
        feeds[name] = array
    if offset != len(binary):
        raise RequestError(f"the body has {len(binary)} bytes of binary tensor data but the inputs' "
                           f"binary_data_size add up to {offset}")
    missing = [i.name for i in predictor.inputs if i.name not in feeds]
    if missing:
        raise RequestError(f"missing input(s) {', '.join(map(repr, missing))}; the model's inputs: "
                           f"{_names(predictor.inputs)}")
    rows = {a.shape[0] for a in feeds.values()}
    if len(rows) > 1:
        raise RequestError(f"inputs have different batch sizes: {sorted(rows)}")
    request_id = message.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise RequestError('"id" must be a string')
    binary_default = _flag(request_parameters, "binary_data_output", "the request")
    return InferRequest(feeds, _requested_outputs(message, predictor, binary_default), request_id, rows.pop(),
                        request_parameters)


def _input_array(tensor: dict[str, Any], info: TensorInfo, binary: memoryview) -> tuple[np.ndarray, int]:
    """The input's float32 batch and how many bytes of binary data it used."""
    what = f"input {info.name!r}"
    datatype = tensor.get("datatype")
    if datatype != DATATYPE:
        raise RequestError(f"{what} has datatype {datatype!r}; the model takes {DATATYPE}")
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise RequestError(f"{what}: \"shape\" must be a list of non-negative integers, got {shape!r}")
    expected = [-1, *info.shape]
    if len(shape) != len(expected) or tuple(shape[1:]) != info.shape or shape[0] < 1:
        raise RequestError(f"{what} has shape {shape}; the model takes {expected} (-1: any batch size from 1)")
    count = math.prod(shape)
    parameters = _parameters(tensor, what)
    size = parameters.get("binary_data_size")
    if size is not None:
        if type(size) is not int or size < 0:
            raise RequestError(f"{what}: binary_data_size must be a non-negative integer, got {size!r}")
        if "data" in tensor:
            raise RequestError(f"{what} has both \"data\" and binary_data_size")
        if size != count * 4:
            raise RequestError(f"{what}: binary_data_size is {size} bytes; shape {shape} of {DATATYPE} "
                               f"needs {count * 4}")
        if size > len(binary):
            raise RequestError(f"{what}: binary_data_size is {size} bytes but only {len(binary)} bytes "
                               "of binary data are left in the body")
        array = np.frombuffer(binary[:size], dtype="<f4").astype(np.float32).reshape(shape)
        return array, size
    if "data" not in tensor:
        raise RequestError(f"{what} has no \"data\" (nor binary_data_size)")
    return _json_numbers(tensor["data"], what, shape, count), 0


def _json_numbers(data: Any, what: str, shape: list[int], count: int) -> np.ndarray:
    array = numeric_array(data, what, "a list of numbers, nested evenly or flat")
    if array.size != count:
        raise RequestError(f"{what}: \"data\" has {array.size} values; shape {shape} needs {count}")
    return np.ascontiguousarray(array.reshape(shape), dtype=np.float32)


def numeric_array(data: Any, what: str, expected: str) -> np.ndarray:
    """JSON values as a numeric array. Strings (which Predictor would take for image paths), true/false,
    nulls and uneven lists are refused."""
    try:
        array = np.asarray(data)
    except (ValueError, TypeError, OverflowError):
        raise RequestError(f"{what}: expected {expected}, found uneven lists") from None
    if array.dtype.kind not in "iuf" or array.ndim == 0:
        found = {"b": "true/false", "U": "strings", "O": "nulls, strings or uneven lists"}.get(
            array.dtype.kind, "a single number" if array.ndim == 0 else str(array.dtype))
        raise RequestError(f"{what}: expected {expected}, found {found}")
    return array


def _requested_outputs(message: dict[str, Any], predictor: Predictor, binary_default: bool) -> list[RequestedOutput]:
    wanted = message.get("outputs")
    if wanted is None:
        return [RequestedOutput(o, binary_default) for o in predictor.outputs]
    if not isinstance(wanted, list):
        raise RequestError('"outputs" must be a list')
    by_name = {o.name: o for o in predictor.outputs}
    chosen: list[RequestedOutput] = []
    for item in wanted:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise RequestError('every entry of "outputs" needs a "name"')
        info = by_name.get(item["name"])
        if info is None:
            raise RequestError(f"unknown output {item['name']!r}; the model's outputs: {_names(predictor.outputs)}")
        what = f"output {info.name!r}"
        parameters = _parameters(item, what)
        binary = _flag(parameters, "binary_data", what) if "binary_data" in parameters else binary_default
        classes = parameters.get("classification", 0)
        if type(classes) is not int or classes < 0:
            raise RequestError(f"{what}: classification must be a non-negative integer, got {classes!r}")
        chosen.append(RequestedOutput(info, binary, classes))
    return chosen


def infer_response(name: str, request: InferRequest, results: list[np.ndarray],
                   all_outputs: list[TensorInfo]) -> tuple[bytes, int | None]:
    """The response body and, when it carries binary data, the length of its JSON header."""
    by_name = {info.name: r for info, r in zip(all_outputs, results)}
    outputs = []
    chunks: list[bytes] = []
    for wanted in request.outputs:
        values = by_name[wanted.info.name]
        if wanted.classification:
            values = _classify(values, wanted.classification, wanted.info)
            datatype = "BYTES"
        else:
            datatype = DATATYPE
        entry: dict[str, Any] = {"name": wanted.info.name, "datatype": datatype, "shape": list(values.shape)}
        if wanted.binary:
            data = _bytes_tensor(values) if datatype == "BYTES" else np.ascontiguousarray(values, "<f4").tobytes()
            entry["parameters"] = {"binary_data_size": len(data)}
            chunks.append(data)
        else:
            entry["data"] = values.ravel().tolist()
        outputs.append(entry)
    message: dict[str, Any] = {"model_name": name, "model_version": "1", "outputs": outputs}
    if request.id is not None:
        message["id"] = request.id
    header = json_bytes(message)
    if not chunks:
        return header, None
    return b"".join([header, *chunks]), len(header)


def _classify(values: np.ndarray, count: int, info: TensorInfo) -> np.ndarray:
    """Triton's classification extension: the ``count`` highest scores of each sample as
    "score:index" strings, highest first."""
    flat = values.reshape(values.shape[0], -1)
    if flat.shape[1] == 0:
        raise RequestError(f"output {info.name!r} has no values to classify")
    count = min(count, flat.shape[1])
    order = np.argsort(-flat, axis=1, kind="stable")[:, :count]
    return np.array([[f"{float(row[k]):f}:{k}" for k in ks] for row, ks in zip(flat, order)], dtype=object)


def _bytes_tensor(values: np.ndarray) -> bytes:
    parts = []
    for text in values.ravel():
        encoded = str(text).encode()
        parts.append(struct.pack("<I", len(encoded)) + encoded)
    return b"".join(parts)


# -- small pieces ---------------------------------------------------------------------------------
def json_bytes(message: Any) -> bytes:
    """Compact JSON; NaN and infinities as JavaScript writes them (JSON has no spelling for them)."""
    return json.dumps(message, separators=(",", ":"), allow_nan=True).encode()


def parse_json_object(body: bytes | str, what: str) -> dict[str, Any]:
    message = parse_json(body, what)
    if not isinstance(message, dict):
        raise RequestError(f"the {what} must be a JSON object")
    return message


def parse_json(body: bytes | str, what: str) -> Any:
    try:
        message = json.loads(body)
    except RecursionError:
        raise RequestError(f"the {what} is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise RequestError(f"the {what} is not valid JSON: {e}") from None
    return message


def _parameters(owner: dict[str, Any], what: str) -> dict[str, Any]:
    parameters = owner.get("parameters", {})
    if not isinstance(parameters, dict):
        raise RequestError(f"{what}: \"parameters\" must be an object")
    return parameters


def _flag(parameters: dict[str, Any], key: str, what: str) -> bool:
    value = parameters.get(key, False)
    if not isinstance(value, bool):
        raise RequestError(f"{what}: {key} must be true or false, got {value!r}")
    return value


def _names(infos: list[TensorInfo]) -> str:
    return ", ".join(f"{i.name!r} (data {i.data_name!r})" if i.data_name else repr(i.name) for i in infos)
