"""Read NNP files: zip archives, loose parts and directories, in every encoding nnabla wrote."""
from __future__ import annotations

import io
import os
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from ..errors import FormatError, UnsafeArchiveError
from ..model.graph import Model, Parameter
from .messages import model_from_message
from .schema import message_class, new_nnp_message
from .wire import WireError, split_parameters

PathLike = Union[str, "os.PathLike[str]"]
Source = Union[PathLike, bytes, Sequence[PathLike]]

MAX_MEMBERS = 100_000
MAX_PARTS = 1000  # network/parameter members parsed and merged; real archives have two or three
MAX_NETWORK_BYTES = 16 << 20  # parsing protobuf text takes ~0.5 s per MiB; real networks are < 1 MiB
MAX_PARAMETER_BYTES = 8 << 30
MAX_COMPRESSION_RATIO = 1000
# Real parameters (float32) barely compress and network text compresses ~10:1, so a big member
# squeezed harder than this is a bomb, not a model.
MAX_LARGE_MEMBER_RATIO = 50
LARGE_MEMBER = 16 << 20
MAX_ELEMENTS = 1 << 31

TEXT_NETWORK = (".nntxt", ".prototxt")
BINARY = (".protobuf",)
H5 = (".h5",)
VERSION_FILE = "nnp_version.txt"
_ZIP_MAGIC = b"PK\x03\x04"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


@dataclass
class _Part:
    name: str  # as shown in messages: "model.nnp:network.nntxt" or a path
    kind: str  # "text", "binary", "h5", "version"
    data: bytes


def read(source: Source) -> Model:
    """Read a model from an ``.nnp`` archive, loose NNP parts, a directory of parts, or archive bytes."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        parts, label, members = _parts_from_zip(io.BytesIO(bytes(source)), "<bytes>")
    elif isinstance(source, (str, os.PathLike)):
        parts, label, members = _parts_from_path(Path(source))
    elif isinstance(source, Iterable):
        paths = [Path(p) for p in source]
        if len(paths) == 1:
            parts, label, members = _parts_from_path(paths[0])
        else:
            parts, label, members = _parts_from_files(paths)
    else:
        raise FormatError(f"cannot read a model from {type(source).__name__}")
    return _assemble(parts, label, members)


def _parts_from_path(path: Path) -> tuple[list[_Part], str, list[str]]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and _kind_of(p.name) is not None)
        if not files:
            archives = sorted(path.glob("*.nnp"))
            if len(archives) == 1:
                return _parts_from_path(archives[0])
            raise FormatError(f"{path}: the directory holds no NNP parts (.nntxt, .prototxt, .protobuf, .h5)")
        parts, _, members = _parts_from_files(files)
        return parts, str(path), members
    if not path.exists():
        raise FormatError(f"{path}: no such file")
    if _kind_of(path.name) is not None:
        return _parts_from_files([path])
    with _open_file(path) as f:
        return _parts_from_zip(f, str(path))


def _open_file(path: Path) -> Any:
    try:
        return open(path, "rb")
    except OSError as e:
        raise FormatError(f"{path}: cannot open: {e.strerror}") from None


def _kind_of(name: str) -> str | None:
    lower = name.lower()
    if lower.rsplit("/", 1)[-1] == VERSION_FILE:
        return "version"
    if lower.endswith(TEXT_NETWORK):
        return "text"
    if lower.endswith(BINARY):
        return "binary"
    if lower.endswith(H5):
        return "h5"
    return None


def _parts_from_files(paths: list[Path]) -> tuple[list[_Part], str, list[str]]:
    if len(paths) > MAX_PARTS:
        raise FormatError(f"{len(paths)} NNP parts given (at most {MAX_PARTS})")
    parts = []
    for path in paths:
        kind = _kind_of(path.name)
        if kind is None:
            if path.suffix.lower() == ".nnp":
                raise FormatError(f"{path}: give an .nnp archive on its own, not together with other files")
            raise FormatError(f"{path}: not an NNP part (expected .nntxt, .prototxt, .protobuf, .h5 or {VERSION_FILE})")
        limit = MAX_PARAMETER_BYTES if kind in ("h5", "binary") else MAX_NETWORK_BYTES
        try:
            size = path.stat().st_size
        except OSError as e:
            raise FormatError(f"{path}: cannot open: {e.strerror}") from None
        if size > limit:
            raise FormatError(f"{path}: {size} bytes is larger than the {limit >> 20} MiB allowed for this part")
        with _open_file(path) as f:
            parts.append(_Part(str(path), kind, f.read()))
    label = " + ".join(str(p) for p in paths)
    return parts, label, [p.name for p in paths]


_DRIVE = re.compile(r"^[A-Za-z]:")


def _check_member_name(label: str, name: str) -> None:
    normalized = name.replace("\\", "/")
    if not name:
        raise UnsafeArchiveError(f"{label}: a member has an empty name")
    if "\x00" in name:
        raise UnsafeArchiveError(f"{label}: member name {name!r} contains a NUL byte")
    if normalized.startswith("/") or _DRIVE.match(normalized):
        raise UnsafeArchiveError(f"{label}: member {name!r} has an absolute path")
    if ".." in normalized.split("/"):
        raise UnsafeArchiveError(f"{label}: member {name!r} points outside the archive ('..')")


def _parts_from_zip(f: Any, label: str) -> tuple[list[_Part], str, list[str]]:
    head = f.read(4)
    f.seek(0, io.SEEK_END)
    size = f.tell()
    f.seek(0)
    if size == 0:
        raise FormatError(f"{label}: the file is empty")
    try:
        archive = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as e:
        what = "truncated or damaged zip archive" if head == _ZIP_MAGIC else "not an .nnp (zip) archive"
        raise FormatError(f"{label}: {what} ({e})") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise UnsafeArchiveError(f"{label}: {len(infos)} members (at most {MAX_MEMBERS} allowed)")
        seen: set[str] = set()
        wanted = []
        for info in infos:
            _check_member_name(label, info.filename)
            kind = None if info.is_dir() else _kind_of(info.filename)
            if kind is None:
                continue
            if info.filename in seen:
                raise UnsafeArchiveError(f"{label}: member {info.filename!r} appears twice")
            seen.add(info.filename)
            wanted.append((info, kind))
            if len(wanted) > MAX_PARTS:
                raise UnsafeArchiveError(f"{label}: more than {MAX_PARTS} network/parameter members")
        parts = [_Part(f"{label}:{info.filename}", kind, _read_member(archive, info, kind, label))
                 for info, kind in wanted]
        return parts, label, [i.filename for i in infos]


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, kind: str, label: str) -> bytes:
    where = f"{label}:{info.filename}"
    limit = MAX_PARAMETER_BYTES if kind in ("h5", "binary") else MAX_NETWORK_BYTES
    if info.file_size > limit:
        raise UnsafeArchiveError(f"{where}: declares {info.file_size} bytes, over the {limit >> 20} MiB allowed")
    ratio = info.file_size / max(info.compress_size, 1)
    if (info.file_size > (1 << 20) and ratio > MAX_COMPRESSION_RATIO) or (
            info.file_size > LARGE_MEMBER and ratio > MAX_LARGE_MEMBER_RATIO):
        raise UnsafeArchiveError(
            f"{where}: declares {info.file_size} bytes compressed into {info.compress_size} "
            f"(ratio {int(ratio)}:1), which looks like a zip bomb")
    try:
        with archive.open(info) as member:
            data = member.read(info.file_size + 1)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, RuntimeError) as e:
        raise FormatError(f"{where}: cannot be extracted ({e})") from None
    except Exception as e:  # zlib.error and friends from damaged streams
        raise FormatError(f"{where}: cannot be extracted ({type(e).__name__}: {e})") from None
    if len(data) != info.file_size:
        raise FormatError(f"{where}: holds {len(data)} bytes, the archive says {info.file_size}")
    if data.startswith(_ZIP_MAGIC):
        raise UnsafeArchiveError(f"{where}: is itself a zip archive; nested archives are not read")
    return data


def _decode_text(part: _Part) -> str:
    try:
        return part.data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise FormatError(f"{part.name}: not UTF-8 text (invalid byte at offset {e.start})") from None


def _merge_text(part: _Part, msg: Any, warnings: list[str]) -> None:
    from google.protobuf import text_format

    text = _decode_text(part)
    scratch = type(msg)()
    try:
        text_format.Merge(text, scratch)
    except text_format.ParseError as e:
        if "has no field named" not in str(e) and "no value named" not in str(e):
            raise FormatError(f"{part.name}: {_describe_parse_error(e)}") from None
        warnings.append(f"{part.name}: {_describe_parse_error(e)} (ignored)")
        scratch = type(msg)()
        try:
            text_format.Merge(text, scratch, allow_unknown_field=True)
        except text_format.ParseError as e2:
            raise FormatError(f"{part.name}: {_describe_parse_error(e2)}") from None
    except RecursionError:
        raise FormatError(f"{part.name}: nesting too deep") from None
    msg.MergeFrom(scratch)


def _describe_parse_error(e: Any) -> str:
    line = e.GetLine() if hasattr(e, "GetLine") else None
    column = e.GetColumn() if hasattr(e, "GetColumn") else None
    text = str(e)
    if line is not None:
        text = re.sub(r"^\d+:\d+ ?: ?", "", text)
        return f"line {line}, column {column}: {text}"
    return text


def _parse_binary(target: Any, data: bytes, name: str) -> None:
    from google.protobuf.message import DecodeError

    try:
        target.MergeFromString(data)
    except (DecodeError, RecursionError, ValueError, RuntimeError) as e:
        raise FormatError(f"{name}: not a valid NNP protobuf ({e or 'decode error'})") from None


def _merge_binary(part: _Part, msg: Any, warnings: list[str]) -> None:
    # Parse straight into an empty message: a scratch copy doubles peak memory for big parameters.
    target = msg if not msg.ListFields() else type(msg)()
    _parse_binary(target, part.data, part.name)
    for where in _unknown_fields(target):
        warnings.append(f"{part.name}: unknown field(s) in {where} (ignored)")
    if target is not msg:
        msg.MergeFrom(target)


def _has_unknown(msg: Any) -> bool:
    try:
        from google.protobuf import unknown_fields

        return len(unknown_fields.UnknownFieldSet(msg)) > 0
    except ImportError:
        return len(msg.UnknownFields()) > 0


def _unknown_fields(msg: Any) -> list[str]:
    found = ["the top level"] if _has_unknown(msg) else []
    for net in msg.network:
        if _has_unknown(net):
            found.append(f"network {net.name!r}")
        for f in net.function:
            if _has_unknown(f):
                found.append(f"network {net.name!r} layer {f.name!r}")
    return found


def _check_shape(where: str, dims: Sequence[int], batch_placeholder: bool) -> None:
    count = 1
    for i, d in enumerate(dims):
        if d < 0 and not (i == 0 and batch_placeholder and d == -1):
            raise FormatError(f"{where}: negative dimension {d} in shape {tuple(dims)}")
        count *= max(d, 1)
        if count > MAX_ELEMENTS:
            raise FormatError(f"{where}: shape {tuple(dims)} has more than 2^31 elements")


def _parameters_from_message(msg: Any, label: str, params: dict[str, Parameter], warnings: list[str]) -> None:
    for p in msg.parameter:
        _add_parameter(p, np.array(p.data, dtype=np.float32), label, params, warnings)
    del msg.parameter[:]


def _add_parameter(p: Any, values: np.ndarray, label: str, params: dict[str, Parameter], warnings: list[str]) -> None:
    """``p``: a Parameter message whose values are ``values`` (its own ``data`` is ignored)."""
    dims = tuple(int(d) for d in p.shape.dim)
    where = f"{label}: parameter {p.variable_name!r}"
    _check_shape(where, dims, batch_placeholder=False)
    expected = int(np.prod(dims, dtype=np.int64)) if dims else 1
    if values.size != expected:
        raise FormatError(f"{where}: shape {dims} needs {expected} values, the file holds {values.size}")
    if p.variable_name in params:
        warnings.append(f"{where}: stored twice; the last one is used")
    params[p.variable_name] = Parameter(p.variable_name, values.reshape(dims), bool(p.need_grad))


def _read_binary(part: _Part, msg: Any, params: dict[str, Parameter], warnings: list[str]) -> bool:
    """Merge a binary part into ``msg`` and its parameters into ``params``; True if it held any.

    Parameter values are taken from the encoded bytes directly (see ``wire``): one copy of the
    values in memory instead of three. Anything unusual goes through the protobuf library."""
    try:
        part.data, raw_parameters = split_parameters(part.data)
    except WireError:
        raw_parameters = []  # the protobuf library parses the whole part
    _merge_binary(part, msg, warnings)
    for raw in raw_parameters:
        p = message_class("Parameter")()
        _parse_binary(p, raw.other_fields, part.name)
        _add_parameter(p, raw.values(), part.name, params, warnings)
    found = bool(raw_parameters) or len(msg.parameter) > 0
    _parameters_from_message(msg, part.name, params, warnings)
    return found


def _parameters_from_h5(part: _Part, params: dict[str, Parameter], warnings: list[str]) -> None:
    if not part.data.startswith(_HDF5_MAGIC):
        raise FormatError(f"{part.name}: not an HDF5 file")
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a dependency
        raise FormatError(f"{part.name}: reading .h5 parameters needs h5py") from None
    found: list[tuple[int, str, Parameter]] = []
    try:
        with h5py.File(io.BytesIO(part.data), "r") as h5:
            names: list[str] = []
            h5.visit(lambda name: names.append(name) if isinstance(h5[name], h5py.Dataset) else None)
            for order, name in enumerate(names):
                ds = h5[name]
                where = f"{part.name}: parameter {name!r}"
                if ds.dtype.kind not in "fiu":
                    raise FormatError(f"{where}: dtype {ds.dtype} is not numeric")
                _check_shape(where, ds.shape, batch_placeholder=False)
                if ds.external or getattr(ds, "is_virtual", False):
                    raise UnsafeArchiveError(f"{where}: stored outside the HDF5 file (external or virtual "
                                             "dataset); refusing to read other files")
                if ds.compression is None and ds.nbytes > len(part.data):
                    raise FormatError(f"{where}: declares {ds.nbytes} bytes, more than the file holds")
                stored = ds.id.get_storage_size()
                if ds.nbytes > (1 << 20) and (ds.nbytes > LARGE_MEMBER or not stored) and \
                        ds.nbytes > max(stored, 1) * MAX_LARGE_MEMBER_RATIO:
                    raise UnsafeArchiveError(f"{where}: declares {ds.nbytes} bytes but stores {stored}; "
                                             "refusing to expand it")
                if ds.nbytes > MAX_PARAMETER_BYTES:
                    raise FormatError(f"{where}: {ds.nbytes} bytes is too large")
                data = np.asarray(ds[...], dtype=np.float32)
                index = ds.attrs.get("index", order)
                need_grad = bool(ds.attrs.get("need_grad", True))
                found.append((int(index), name, Parameter(name, data, need_grad)))
    except FormatError:
        raise
    except Exception as e:  # h5py raises OSError, KeyError, ValueError, TypeError on damaged files
        raise FormatError(f"{part.name}: damaged HDF5 parameters ({type(e).__name__}: {e})") from None
    for _, name, param in sorted(found, key=lambda t: (t[0], t[1])):
        if name in params:
            warnings.append(f"{part.name}: parameter {name!r} stored twice; the last one is used")
        params[name] = param


def _assemble(parts: list[_Part], label: str, members: list[str]) -> Model:
    msg = new_nnp_message()
    warnings: list[str] = []
    params: dict[str, Parameter] = {}
    version = None
    kinds = {p.kind for p in parts}
    if not kinds & {"text", "binary"}:
        raise FormatError(f"{label}: no network definition (.nntxt, .prototxt or .protobuf) found")
    param_formats = []
    for part in parts:
        if part.kind == "version":
            version = _decode_text(part).strip()[:64]
        elif part.kind == "text":
            _merge_text(part, msg, warnings)
            if len(msg.parameter):
                param_formats.append("text")
            _parameters_from_message(msg, part.name, params, warnings)
        elif part.kind == "binary":
            if _read_binary(part, msg, params, warnings):
                param_formats.append("protobuf")
        elif part.kind == "h5":
            _parameters_from_h5(part, params, warnings)
            param_formats.append("h5")
        part.data = b""  # the only reference: parameters of big models should not stay in memory twice
    model = model_from_message(msg)
    for net in model.networks.values():
        for var in net.variables.values():
            _check_shape(f"{label}: network {net.name!r} variable {var.name!r}", var.shape, batch_placeholder=True)
    model.parameters = params
    has_text = "text" in kinds
    has_binary_network = "binary" in kinds and any(p.kind == "binary" for p in parts) and bool(msg.network) and not has_text
    model.source.path = label
    model.source.nnp_version = version
    model.source.members = members
    model.source.network_encoding = "text" if has_text else ("binary" if has_binary_network or "binary" in kinds else "")
    model.source.parameter_format = "+".join(dict.fromkeys(param_formats))
    model.source.warnings = warnings
    return model
