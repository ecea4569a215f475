"""Structure-aware mutations of real .nnp files: archive bytes, zip members, text networks, parameters."""
from __future__ import annotations

import io
import random
import re
import warnings
import zipfile

from nncbridge.format.schema import function_table

_FUNCTION_TYPES = [f["name"] for f in function_table()["functions"]] + ["NoSuchLayer", "RepeatStart", "Delay"]
_NUMBERS = ["0", "-1", "-2", "1", "2", "3", "7", "65536", "2147483648", "4294967296", "1099511627776",
            "9223372036854775807", "-9223372036854775808", "1e300", "nan", "inf", "-0.5"]
_HOSTILE_NAMES = ["../evil.nntxt", "/abs/network.nntxt", "C:\\x\\network.nntxt", "a/../../b.protobuf",
                  "network.nntxt", "parameter.protobuf", "parameter.h5", "x.prototxt", "deep/dir/net.nntxt"]


def _members(data: bytes) -> list[tuple[zipfile.ZipInfo, bytes]] | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return [(i, z.read(i)) for i in z.infolist()]
    except Exception:
        return None


def _zip(members: list[tuple[str, bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w") as z:
        warnings.simplefilter("ignore")  # duplicate member names are one of the mutations
        for name, content, method in members:
            z.writestr(zipfile.ZipInfo(name), content, compress_type=method)
    return buf.getvalue()


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    kind = rng.randrange(5)
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
        b[start:start + rng.randint(1, 256)] = b"\x00" * len(b[start:start + rng.randint(1, 256)])
    else:
        start = rng.randrange(len(b) + 1)
        del b[start:start + rng.randint(1, 512)]
    return bytes(b)


def mutate_text(rng: random.Random, text: str) -> str:
    lines = text.splitlines()
    for _ in range(rng.randint(1, 3)):
        if not lines:
            break
        kind = rng.randrange(7)
        i = rng.randrange(len(lines))
        if kind == 0:
            del lines[i]
        elif kind == 1:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif kind == 2:
            numbers = list(re.finditer(r"-?\d+(\.\d+)?(e-?\d+)?", lines[i]))
            if numbers:
                m = rng.choice(numbers)
                lines[i] = lines[i][: m.start()] + rng.choice(_NUMBERS) + lines[i][m.end():]
        elif kind == 3:
            strings = re.findall(r'"[^"]*"', text)
            targets = list(re.finditer(r'"[^"]*"', lines[i]))
            if strings and targets:
                m = rng.choice(targets)
                lines[i] = lines[i][: m.start()] + rng.choice(strings) + lines[i][m.end():]
        elif kind == 4:
            if "type:" in lines[i]:
                lines[i] = re.sub(r'type: "[^"]*"', f'type: "{rng.choice(_FUNCTION_TYPES)}"', lines[i])
        elif kind == 5:
            lines[i] = lines[i].replace("{", "", 1) if rng.random() < 0.5 else lines[i] + " {"
        else:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines) + "\n"


def mutate_nnp(rng: random.Random, data: bytes) -> bytes:
    """One mutation of an .nnp archive, chosen at random among all levels."""
    members = _members(data)
    level = rng.randrange(6)
    if members is None or level == 0:
        return mutate_bytes(rng, data)
    items = [(i.filename, content, i.compress_type) for i, content in members]
    names = [n for n, _, _ in items]
    if level == 1:  # member structure
        op = rng.randrange(6)
        k = rng.randrange(len(items))
        if op == 0:
            del items[k]
        elif op == 1:
            items.append(items[k])
        elif op == 2:
            items[k] = (rng.choice(_HOSTILE_NAMES), items[k][1], items[k][2])
        elif op == 3 and len(items) > 1:
            j = rng.randrange(len(items))
            items[k], items[j] = (items[k][0], items[j][1], items[k][2]), (items[j][0], items[k][1], items[j][2])
        elif op == 4:
            items[k] = (items[k][0], items[k][1], rng.choice([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
        else:
            items[k] = (items[k][0], data, items[k][2])  # a zip inside a member
        return _zip(items)
    text_members = [k for k, n in enumerate(names) if n.endswith((".nntxt", ".prototxt"))]
    binary_members = [k for k, n in enumerate(names) if n.endswith((".protobuf", ".h5"))]
    if level in (2, 3, 4) and text_members:
        k = rng.choice(text_members)
        name, content, method = items[k]
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            text = content.decode("latin-1")
        items[k] = (name, mutate_text(rng, text).encode("utf-8"), method)
        return _zip(items)
    if binary_members:
        k = rng.choice(binary_members)
        name, content, method = items[k]
        items[k] = (name, mutate_bytes(rng, content), method)
        return _zip(items)
    return mutate_bytes(rng, data)
