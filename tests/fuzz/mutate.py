"""Structure-aware mutations of real .nnp files at every level.

Levels: raw archive bytes; zip members (drop, duplicate, rename, swap, recompress, lie about sizes,
nest, flood with tiny members); the text network (token level: lines, numbers, names, types, nesting,
whole blocks); network/parameter protobuf payloads (decoded and mutated as messages, or as bytes);
h5 parameter payloads (rebuilt with changed shapes, dtypes, names, attributes, or as bytes).
"""
from __future__ import annotations

import bz2
import io
import random
import re
import struct
import zipfile
import zlib

from nncbridge.format.schema import function_table, new_nnp_message

_FUNCTION_TYPES = [f["name"] for f in function_table()["functions"]] + [
    "NoSuchLayer", "RepeatStart", "RepeatEnd", "RecurrentInput", "RecurrentOutput", "Delay"]
_NUMBERS = ["0", "-1", "-2", "1", "2", "3", "7", "65536", "2147483648", "4294967296", "1099511627776",
            "9223372036854775807", "-9223372036854775808", "18446744073709551616", "1e300", "nan", "inf",
            "-inf", "-0.5", "0x10", "1.5"]
_DIMS = [0, -1, -2, 1, 2, 3, 7, 1 << 20, 1 << 31, 1 << 40, (1 << 62), -(1 << 63)]
_FLOATS = [float("nan"), float("inf"), float("-inf"), 0.0, 1e38, -1e38, 1e-45]
_HOSTILE_NAMES = ["../evil.nntxt", "/abs/network.nntxt", "C:\\x\\network.nntxt", "a/../../b.protobuf",
                  "network.nntxt", "parameter.protobuf", "parameter.h5", "x.prototxt", "deep/dir/net.nntxt",
                  "NETWORK.NNTXT", "nnp_version.txt", "dir/", "n\u00e9twork.nntxt", "..", "./network.nntxt",
                  "net.nntxt\x00.png", "a\\..\\..\\b.h5", "network.protobuf"]
_FIELD_NAMES = ["network", "function", "variable", "executor", "shape", "dim", "input", "output", "name",
                "type", "repeat_id", "repeat_info", "times", "network_name", "variable_name", "data",
                "no_such_field", "parameter", "data_variable", "output_variable"]
_NUMBER = re.compile(r"-?\d+(\.\d+)?(e-?\d+)?")
_STRING = re.compile(r'"[^"]*"')

_compressed_cache: dict[tuple[int, bytes], bytes] = {}


# -- a tiny zip writer: control over every field, and compression cached across cases ---------------
FORCED = 0x100  # method | FORCED: compress with this method even when that is slow


def _compress(method: int, content: bytes) -> tuple[int, bytes]:
    """(method used, data). Big members not seen before are stored rather than deflated, to keep cases
    cheap; the seeds' own members (cached) and forced recompressions keep their method."""
    forced = bool(method & FORCED)
    method &= 0xFF
    if method not in (zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2):
        return method, content
    key = (method, content)
    hit = _compressed_cache.get(key)
    if hit is not None:
        return method, hit
    if len(content) > (64 << 10) and not forced and len(_compressed_cache) > 8:
        return zipfile.ZIP_STORED, content
    if method == zipfile.ZIP_DEFLATED:
        c = zlib.compressobj(1, zlib.DEFLATED, -15)
        out = c.compress(content) + c.flush()
    elif method == zipfile.ZIP_BZIP2:
        out = bz2.compress(content, 1)
    if len(content) > 4096:
        if len(_compressed_cache) > 256:
            _compressed_cache.clear()
        _compressed_cache[key] = out
    return method, out


def build_zip(members: list[tuple[str, bytes, int]], lie: tuple[int, str, int] | None = None) -> bytes:
    """A zip of ``(name, content, method)``; ``lie`` = (member index, field, value) falsifies a header."""
    out = bytearray()
    central = bytearray()
    for k, (name, content, method) in enumerate(members):
        raw_name = name.encode("utf-8", "surrogateescape")
        flags = 0x800 if not name.isascii() else 0
        stored_method, data = _compress(method, content)
        crc = zlib.crc32(content)
        usize, csize = len(content), len(data)
        if lie is not None and lie[0] == k:
            if lie[1] == "usize":
                usize = lie[2]
            elif lie[1] == "csize":
                csize = lie[2]
            elif lie[1] == "crc":
                crc = lie[2]
        usize &= 0xFFFFFFFF
        csize &= 0xFFFFFFFF
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, stored_method, 0, 0x21, crc, csize, usize,
                           len(raw_name), 0) + raw_name + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, flags, stored_method, 0, 0x21, crc,
                               csize, usize, len(raw_name), 0, 0, 0, 0, 0, offset) + raw_name
    cd_offset = len(out)
    out += central
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), cd_offset, 0)
    return bytes(out)


def _members(data: bytes) -> list[tuple[str, bytes, int]] | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return [(i.filename, z.read(i), i.compress_type) for i in z.infolist()]
    except Exception:
        return None


# -- raw bytes -------------------------------------------------------------------------------------
def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    kind = rng.randrange(7)
    if kind == 0 and b:
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind == 1:
        b = b[: rng.randrange(len(b) + 1)]
    elif kind == 2:
        pos = rng.randrange(len(b) + 1)
        b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    elif kind == 3 and b:
        start = rng.randrange(len(b))
        n = rng.randint(1, 256)
        b[start:start + n] = rng.choice([b"\x00", b"\xff"]) * len(b[start:start + n])
    elif kind == 4 and len(b) > 8:
        start = rng.randrange(len(b) - 4)
        b[start:start + 4] = struct.pack("<I", rng.choice([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, len(b) * 3]))
    elif kind == 5 and b:
        start = rng.randrange(len(b))
        chunk = b[start:start + rng.randint(1, 512)]
        pos = rng.randrange(len(b) + 1)
        b[pos:pos] = chunk
    else:
        start = rng.randrange(len(b) + 1)
        del b[start:start + rng.randint(1, 512)]
    return bytes(b)


# -- the text network ------------------------------------------------------------------------------
def _blocks(lines: list[str]) -> list[tuple[int, int]]:
    """(first, last) line ranges of brace-balanced blocks that open at the end of a line."""
    found = []
    stack: list[int | None] = []
    for i, line in enumerate(lines):
        if "{" not in line and "}" not in line:
            continue
        for ch in line:
            if ch == "{":
                stack.append(None)
            elif ch == "}" and stack:
                start = stack.pop()
                if start is not None:
                    found.append((start, i))
        if line.rstrip().endswith("{") and stack:
            stack[-1] = i
    return found


def mutate_text(rng: random.Random, text: str) -> str:
    lines = text.splitlines()
    for _ in range(rng.randint(1, 3)):
        if not lines:
            break
        kind = rng.randrange(13)
        i = rng.randrange(len(lines))
        if kind == 0:
            del lines[i]
        elif kind == 1:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif kind == 2:
            numbers = list(_NUMBER.finditer(lines[i]))
            if numbers:
                m = rng.choice(numbers)
                lines[i] = lines[i][: m.start()] + rng.choice(_NUMBERS) + lines[i][m.end():]
        elif kind == 3:
            strings = _STRING.findall(text)
            targets = list(_STRING.finditer(lines[i]))
            if strings and targets:
                m = rng.choice(targets)
                new = rng.choice(strings) if rng.random() < 0.8 else rng.choice(['""', '"\\xff"', '"a\\"b"'])
                lines[i] = lines[i][: m.start()] + new + lines[i][m.end():]
        elif kind == 4:
            typed = [k for k, line in enumerate(lines) if "type:" in line]
            if typed:
                k = rng.choice(typed)
                lines[k] = re.sub(r'type: "[^"]*"', f'type: "{rng.choice(_FUNCTION_TYPES)}"', lines[k])
        elif kind == 5:
            lines[i] = lines[i].replace("{", "", 1) if rng.random() < 0.5 else lines[i] + " {"
        elif kind == 6:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind in (7, 8, 9):  # whole blocks: delete, duplicate, move inside another block
            blocks = _blocks(lines)
            if blocks:
                a, b = rng.choice(blocks)
                chunk = lines[a:b + 1]
                if kind == 7:
                    del lines[a:b + 1]
                elif kind == 8:
                    pos = rng.choice([a, b + 1])
                    lines[pos:pos] = chunk
                else:
                    c, d = rng.choice(blocks)
                    lines[c + 1:c + 1] = chunk  # nesting changes: a block inside another one
        elif kind == 10:  # a field renamed to another (valid or not) field name
            m = re.match(r"(\s*)(\w+)(\s*[:{])", lines[i])
            if m:
                lines[i] = m.group(1) + rng.choice(_FIELD_NAMES) + lines[i][m.end(2):]
        elif kind == 11:  # Console's repeat machinery, wherever it lands
            lines.insert(i, rng.choice([
                '  repeat_id: "R0"', '  repeat_id: "nope"', '  repeat_info { id: "R0" times: 3 }',
                '  repeat_info { id: "R0" times: -1 }', '  repeat_param { repeat_id: "R0" times: 2 }',
                '  recurrent_param { repeat_id: "R0" length: 3 axis: 1 }']))
        else:  # a reference to a variable that another line names
            names = _STRING.findall(text)
            if names:
                lines.insert(i, rng.choice(['  input: ', '  output: ', '  variable_name: ']) + rng.choice(names))
    return "\n".join(lines) + "\n"


# -- protobuf payloads (network or parameters) -------------------------------------------------------
def mutate_protobuf(rng: random.Random, content: bytes) -> bytes:
    msg = new_nnp_message()
    try:
        msg.MergeFromString(content)
    except Exception:
        return mutate_bytes(rng, content)
    kind = rng.randrange(10)
    params = list(msg.parameter)
    if params and kind < 7:
        p = rng.choice(params)
        if kind == 0:  # a dimension changed
            dims = list(p.shape.dim)
            if dims:
                dims[rng.randrange(len(dims))] = rng.choice(_DIMS)
            else:
                dims = [rng.choice(_DIMS)]
            del p.shape.dim[:]
            p.shape.dim.extend(d if -(1 << 63) <= d < (1 << 63) else -1 for d in dims)
        elif kind == 1:  # dims added or removed, data unchanged
            if p.shape.dim and rng.random() < 0.5:
                del p.shape.dim[rng.randrange(len(p.shape.dim))]
            else:
                p.shape.dim.insert(rng.randrange(len(p.shape.dim) + 1), rng.choice([1, 1, 2, 0]))
        elif kind == 2:  # data count off
            n = len(p.data)
            if n and rng.random() < 0.6:
                del p.data[rng.randrange(n):]
            else:
                p.data.extend([0.5] * rng.randint(1, 100))
        elif kind == 3 and len(p.data):  # NaN / Inf / extreme values
            for _ in range(rng.randint(1, 4)):
                p.data[rng.randrange(len(p.data))] = rng.choice(_FLOATS)
        elif kind == 4:
            p.variable_name = rng.choice([q.variable_name for q in params] + ["", "nope", "../x", "\u00e9"])
        elif kind == 5:
            msg.parameter.remove(p)
        else:
            msg.parameter.add().CopyFrom(p)
    elif msg.network and kind < 9:
        net = rng.choice(list(msg.network))
        if net.variable and rng.random() < 0.5:
            v = rng.choice(list(net.variable))
            if v.shape.dim:
                v.shape.dim[rng.randrange(len(v.shape.dim))] = rng.choice(_DIMS[:-1])
            else:
                v.name = rng.choice(["", "x", v.name + "_"])
        elif net.function:
            f = rng.choice(list(net.function))
            pick = rng.randrange(4)
            if pick == 0 and f.input:
                f.input[rng.randrange(len(f.input))] = rng.choice([g.output[0] for g in net.function if g.output] + ["nope"])
            elif pick == 1:
                f.type = rng.choice(_FUNCTION_TYPES)
            elif pick == 2:
                net.function.remove(f)
            else:
                net.function.add().CopyFrom(f)
    else:
        return mutate_bytes(rng, content)
    try:
        return msg.SerializeToString()
    except Exception:
        return mutate_bytes(rng, content)


def _network_as_protobuf(text: bytes) -> bytes | None:
    from google.protobuf import text_format

    msg = new_nnp_message()
    try:
        text_format.Merge(text.decode("utf-8"), msg, allow_unknown_field=True)
        return msg.SerializeToString()
    except Exception:
        return None


# -- h5 payloads -------------------------------------------------------------------------------------
def mutate_h5(rng: random.Random, content: bytes) -> bytes:
    import h5py

    try:
        with h5py.File(io.BytesIO(content), "r") as src:
            items = []
            src.visititems(lambda n, o: items.append((n, o[...], dict(o.attrs))) if isinstance(o, h5py.Dataset) else None)
    except Exception:
        return mutate_bytes(rng, content)
    if not items:
        return mutate_bytes(rng, content)
    try:
        return _rebuild_h5(rng, items)
    except Exception:
        return mutate_bytes(rng, content)


def _rebuild_h5(rng: random.Random, items: list) -> bytes:
    import h5py
    import numpy as np

    k = rng.randrange(len(items))
    name, data, attrs = items[k]
    kind = rng.randrange(9)
    if kind == 0:
        data = data.reshape(-1)[: max(0, data.size - rng.randint(1, 3))]
    elif kind == 1:
        data = data.reshape((1,) + data.shape)
    elif kind == 2:
        data = data.astype(rng.choice([np.float64, np.int32, np.uint8, np.float16]))
    elif kind == 3 and data.size:
        data = data.astype(np.float32).copy()
        data.reshape(-1)[rng.randrange(data.size)] = rng.choice(_FLOATS)
    elif kind == 4:
        name = rng.choice(["nope", "a/b/c", items[(k + 1) % len(items)][0], name + "/x"])
    elif kind == 5:
        attrs["index"] = rng.choice([-1, 0, 1 << 40, len(items) + 5])
    elif kind == 6:
        del items[k]
        k = -1
    elif kind == 7:
        data = np.array([b"text"] * 3)
    else:
        data = np.zeros((0,) + data.shape[1:], np.float32)
    if k >= 0:
        items[k] = (name, data, attrs)
    buf = io.BytesIO()
    with h5py.File(buf, "w") as dst:
        for n, d, a in items:
            if n in dst:
                continue
            ds = dst.create_dataset(n, data=d)
            for key, value in a.items():
                ds.attrs[key] = value
    return buf.getvalue()


# -- one mutation at a random level --------------------------------------------------------------------
def _mutate_members(rng: random.Random, data: bytes, items: list[tuple[str, bytes, int]]) -> bytes:
    op = rng.randrange(11)
    k = rng.randrange(len(items))
    lie = None
    if op == 0:
        del items[k]
    elif op == 1:
        items.insert(rng.randrange(len(items) + 1), items[k])
    elif op == 2:
        items[k] = (rng.choice(_HOSTILE_NAMES), items[k][1], items[k][2])
    elif op == 3 and len(items) > 1:
        j = rng.randrange(len(items))
        items[k], items[j] = (items[k][0], items[j][1], items[k][2]), (items[j][0], items[k][1], items[j][2])
    elif op == 4:
        items[k] = (items[k][0], items[k][1], rng.choice([0, 8, 8, 12, 99]) | FORCED)
    elif op == 5:
        items[k] = (items[k][0], data, items[k][2])  # a zip inside a member
    elif op == 6:
        lie = (k, rng.choice(["usize", "csize", "crc"]), rng.choice([0, 1, len(items[k][1]) + 1, 0xFFFFFFFF, 1 << 30]))
    elif op == 7:  # many tiny members
        items.extend((f"t{n}.txt", b"x", 0) for n in range(rng.choice([10, 500, 3000])))
    elif op == 8:  # a second network file (parts merge)
        src = [it for it in items if it[0].endswith((".nntxt", ".prototxt"))]
        if src:
            items.append(("extra.nntxt", rng.choice(src)[1], 8))
    elif op == 9:  # the network stored as binary protobuf instead of text
        for j, (name, content, method) in enumerate(items):
            if name.endswith((".nntxt", ".prototxt")):
                binary = _network_as_protobuf(content)
                if binary is not None:
                    items[j] = ("network.protobuf" if rng.random() < 0.5 else "net2.protobuf", binary, method)
                break
    else:
        rng.shuffle(items)
    return build_zip(items, lie)


def mutate_nnp(rng: random.Random, data: bytes) -> bytes:
    """One mutation of an .nnp archive, chosen at random among all levels."""
    members = _members(data)
    level = rng.randrange(8)
    if members is None or not members or level == 0:
        return mutate_bytes(rng, data)
    items = list(members)
    if level == 1:
        return _mutate_members(rng, data, items)
    names = [n for n, _, _ in items]
    text_members = [k for k, n in enumerate(names) if n.endswith((".nntxt", ".prototxt"))]
    proto_members = [k for k, n in enumerate(names) if n.endswith(".protobuf")]
    h5_members = [k for k, n in enumerate(names) if n.endswith(".h5")]
    if level in (2, 3, 4) and text_members:
        k = rng.choice(text_members)
        name, content, method = items[k]
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            text = content.decode("latin-1")
        mutated = mutate_text(rng, text).encode("utf-8")
        if rng.random() < 0.03:
            mutated = mutated.replace(b"a", b"\xe9", 1)  # invalid UTF-8
        items[k] = (name, mutated, method)
    elif level in (5, 6) and proto_members:
        k = rng.choice(proto_members)
        items[k] = (items[k][0], mutate_protobuf(rng, items[k][1]), items[k][2])
    elif level in (5, 6, 7) and h5_members:
        k = rng.choice(h5_members)
        items[k] = (items[k][0], mutate_h5(rng, items[k][1]), items[k][2])
    else:
        binary = proto_members + h5_members
        if not binary:
            return mutate_bytes(rng, data)
        k = rng.choice(binary)
        items[k] = (items[k][0], mutate_bytes(rng, items[k][1]), items[k][2])
    return build_zip(items)
