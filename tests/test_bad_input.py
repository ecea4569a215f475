"""Hostile and broken input: one-line NncBridgeError, CLI exit 2, fast, bounded memory, nothing written."""
from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

import nncbridge
from nncbridge.cli import main
from nncbridge.errors import FormatError, NncBridgeError, UnsafeArchiveError
from nncbridge.format.schema import new_nnp_message

GOOD_NETWORK = """\
network {
  name: "net"
  batch_size: 1
  variable { name: "x" type: "Buffer" shape { dim: -1 dim: 3 } }
  variable { name: "y" type: "Buffer" shape { dim: -1 dim: 3 } }
  function { name: "ReLU" type: "ReLU" input: "x" output: "y" }
}
executor {
  name: "runtime"
  network_name: "net"
  data_variable { variable_name: "x" data_name: "x" }
  output_variable { variable_name: "y" data_name: "y" }
}
"""
TWO_GIB = 2 << 30


def make_zip(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=method) as z:
        for name, data in members.items():
            z.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return path


def patch_member(archive: bytes, name: str, method: int, crc: int, file_size: int) -> bytes:
    """Rewrite one member's compression method, CRC and uncompressed size in both zip headers."""
    data = bytearray(archive)
    raw = name.encode()
    # (signature, offset of the name length, of the name, of the method, of the CRC, of the size)
    for signature, nlen_at, name_at, method_at, crc_at, size_at in ((b"PK\x03\x04", 26, 30, 8, 14, 22),
                                                                   (b"PK\x01\x02", 28, 46, 10, 16, 24)):
        header = data.find(signature)
        while header >= 0:
            nlen = struct.unpack_from("<H", data, header + nlen_at)[0]
            if bytes(data[header + name_at:header + name_at + nlen]) == raw:
                struct.pack_into("<H", data, header + method_at, method)
                struct.pack_into("<I", data, header + crc_at, crc)
                struct.pack_into("<I", data, header + size_at, file_size)
            header = data.find(signature, header + 4)
    return bytes(data)


class _Bits:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def value(self, v: int, n: int) -> None:  # header fields: least significant bit first
        self.bits += [(v >> i) & 1 for i in range(n)]

    def code(self, c: int, n: int) -> None:  # Huffman codes: most significant bit first
        self.bits += [(c >> (n - 1 - i)) & 1 for i in range(n)]

    def bytes(self) -> bytes:
        bits = self.bits + [0] * (-len(self.bits) % 8)
        return bytes(sum(b << i for i, b in enumerate(bits[k:k + 8])) for k in range(0, len(bits), 8))


def _fixed_huffman_zeros(units: int) -> bytes:
    """A raw deflate stream: one literal 0, then ``8 * units`` copies of 258 bytes at distance 1, end."""
    w = _Bits()
    w.value(1, 1)  # BFINAL
    w.value(1, 2)  # fixed Huffman
    w.code(0b00110000, 8)  # literal 0
    for _ in range(8 * units):
        w.code(0b11000101, 8)  # length code 285 = 258
        w.code(0, 5)  # distance code 0 = 1
    w.code(0, 7)  # end of block
    return w.bytes()


def deflated_zeros(size: int) -> tuple[bytes, int]:
    """A deflate stream inflating to about ``size`` zero bytes, built without inflating anything.

    After its 11-bit head the stream repeats a 104-bit (13-byte) unit, so copies of one unit's
    bytes can be spliced in whole.
    """
    one, two = _fixed_huffman_zeros(1), _fixed_huffman_zeros(2)
    unit = two[2:15]
    units = max(1, -(-(size - 1) // 2064))
    stream = one[:2] + unit * (units - 1) + one[2:]
    return stream, 1 + 2064 * units


def test_fixed_huffman_builder_is_a_valid_deflate_stream():
    stream, size = deflated_zeros(50_000)
    out = zlib.decompress(stream, -15)
    assert len(out) == size and not any(out)


def _expect_error(source, exc=FormatError, contains: str | None = None, max_seconds: float = 1.0,
                  max_memory: int = 64 << 20) -> str:
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(exc) as info:
            nncbridge.read(source)
    finally:
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    message = str(info.value)
    assert "\n" not in message, message
    assert elapsed < max_seconds, f"took {elapsed:.2f}s"
    assert peak < max_memory, f"peak Python memory {peak >> 20} MiB"
    if contains is not None:
        assert contains in message, message
    return message


@pytest.fixture(autouse=True)
def _h5_warm():
    import h5py  # noqa: F401 - first import is slow; keep it out of the timings


def test_empty_file(tmp_path):
    path = tmp_path / "empty.nnp"
    path.write_bytes(b"")
    assert "empty" in _expect_error(path)


def test_not_a_zip(tmp_path):
    path = tmp_path / "model.nnp"
    path.write_bytes(b"this is not a zip archive at all\n" * 10)
    assert "zip" in _expect_error(path)


def test_truncated_zip(tmp_path):
    full = make_zip(tmp_path / "full.nnp", {"nnp_version.txt": b"0.1\n",
                                            "network.nntxt": GOOD_NETWORK.encode() * 20}).read_bytes()
    path = tmp_path / "truncated.nnp"
    path.write_bytes(full[: len(full) // 2])
    _expect_error(path, FormatError)


def test_truncated_shared_export(tmp_path, shared_exports):
    full = (shared_exports / "mnist-4or9-and-lenet" / "binary-4or9-2018.nnp").read_bytes()
    for cut in (100, len(full) // 3, len(full) - 30):
        path = tmp_path / f"cut{cut}.nnp"
        path.write_bytes(full[:cut])
        _expect_error(path, FormatError)


@pytest.mark.parametrize("name", ["../network.nntxt", "a/../../network.nntxt", "/etc/network.nntxt",
                                  "C:/network.nntxt", "C:\\temp\\network.nntxt", "..\\network.nntxt",
                                  "../output_result.zip"])
def test_member_path_tricks(tmp_path, name):
    path = make_zip(tmp_path / "evil.nnp", {"nnp_version.txt": b"0.1\n", name: GOOD_NETWORK.encode()})
    before = sorted(os.listdir(tmp_path))
    message = _expect_error(path, UnsafeArchiveError)
    assert repr(name) in message
    assert sorted(os.listdir(tmp_path)) == before
    assert not (tmp_path.parent / "network.nntxt").exists()


def test_zip_bomb_honest_sizes(tmp_path):
    """A parameter member that really inflates to 2 GiB of zeros (13 MB on disk)."""
    stream, size = deflated_zeros(TWO_GIB)
    assert size >= TWO_GIB
    placeholder = b"\0" * len(stream)
    archive = make_zip(tmp_path / "a.nnp", {"nnp_version.txt": b"0.1\n", "network.nntxt": GOOD_NETWORK.encode(),
                                            "parameter.protobuf": placeholder}, method=zipfile.ZIP_STORED)
    data = archive.read_bytes().replace(placeholder, stream)
    data = patch_member(data, "parameter.protobuf", zipfile.ZIP_DEFLATED, 0, size)
    path = tmp_path / "bomb.nnp"
    path.write_bytes(data)
    _expect_error(path, UnsafeArchiveError)


@pytest.mark.parametrize("member", ["network.nntxt", "parameter.protobuf", "parameter.h5"])
def test_zip_bomb_declared_size(tmp_path, member):
    """A small deflated member whose headers declare 2 GiB."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = compressor.compress(b"\0" * (1 << 20)) + compressor.flush()
    placeholder = b"\1" * len(stream)
    members = {"nnp_version.txt": b"0.1\n", "network.nntxt": GOOD_NETWORK.encode()}
    members[member] = placeholder
    archive = make_zip(tmp_path / "a.nnp", members, method=zipfile.ZIP_STORED).read_bytes()
    data = patch_member(archive.replace(placeholder, stream), member, zipfile.ZIP_DEFLATED, 0, TWO_GIB)
    path = tmp_path / "bomb.nnp"
    path.write_bytes(data)
    _expect_error(path, UnsafeArchiveError)


def test_zip_bomb_lying_small_size(tmp_path):
    """Headers declare 4 KiB; the stream would inflate to 2 GiB: only the declared bytes are inflated."""
    stream, _ = deflated_zeros(TWO_GIB)
    placeholder = b"\1" * len(stream)
    archive = make_zip(tmp_path / "a.nnp", {"nnp_version.txt": b"0.1\n", "network.nntxt": GOOD_NETWORK.encode(),
                                            "parameter.protobuf": placeholder}, method=zipfile.ZIP_STORED)
    data = patch_member(archive.read_bytes().replace(placeholder, stream), "parameter.protobuf",
                        zipfile.ZIP_DEFLATED, 0, 4096)
    path = tmp_path / "bomb.nnp"
    path.write_bytes(data)
    _expect_error(path, FormatError)


@pytest.mark.parametrize("member", ["network.nntxt", "parameter.protobuf", "parameter.h5"])
def test_zip_inside_a_member(tmp_path, member):
    inner = make_zip(tmp_path / "inner.zip", {"network.nntxt": GOOD_NETWORK.encode()}).read_bytes()
    members = {"nnp_version.txt": b"0.1\n", "network.nntxt": GOOD_NETWORK.encode()}
    members[member] = inner
    path = make_zip(tmp_path / "nested.nnp", members)
    assert "zip" in _expect_error(path, UnsafeArchiveError)


def test_text_syntax_error_reports_line_and_column(tmp_path):
    broken = GOOD_NETWORK.replace('name: "ReLU" type', 'name: "ReLU" type type', 1)
    path = make_zip(tmp_path / "syntax.nnp", {"network.nntxt": broken.encode()})
    message = _expect_error(path, FormatError)
    assert "line 6, column 32" in message, message
    assert "network.nntxt" in message


def test_text_syntax_error_loose_file(tmp_path):
    path = tmp_path / "net.nntxt"
    path.write_text("network {\n  name: \"n\"\n  batch_size: ten\n}\n")
    message = _expect_error(path, FormatError)
    assert "line 3" in message and "column" in message, message


def test_non_utf8_text(tmp_path):
    data = GOOD_NETWORK.replace('name: "net"', 'name: "n\xe9t"').encode("latin-1")
    path = make_zip(tmp_path / "latin1.nnp", {"network.nntxt": data})
    assert "UTF-8" in _expect_error(path, FormatError)


@pytest.mark.parametrize("dims,what", [("dim: -1 dim: 65536 dim: 65536", "2^31"),
                                       ("dim: 4294967296", "2^31"),
                                       ("dim: -1 dim: -3", "negative"),
                                       ("dim: 2 dim: -1", "negative")])
def test_bad_declared_shape(tmp_path, dims, what):
    text = GOOD_NETWORK.replace("shape { dim: -1 dim: 3 }", f"shape {{ {dims} }}", 1)
    path = make_zip(tmp_path / "shape.nnp", {"network.nntxt": text.encode()})
    message = _expect_error(path, FormatError)
    assert what in message and "'x'" in message, message


def _parameter_message(shape, values) -> bytes:
    msg = new_nnp_message()
    p = msg.parameter.add(variable_name="w")
    p.shape.dim.extend(shape)
    p.data.extend(values)
    return msg.SerializeToString()


def test_parameter_bytes_do_not_match_shape(tmp_path):
    path = make_zip(tmp_path / "p.nnp", {"network.nntxt": GOOD_NETWORK.encode(),
                                         "parameter.protobuf": _parameter_message([3, 4], [1.0] * 5)})
    message = _expect_error(path, FormatError)
    assert "12" in message and "5" in message and "'w'" in message, message


def test_parameter_huge_declared_shape(tmp_path):
    path = make_zip(tmp_path / "p.nnp", {"network.nntxt": GOOD_NETWORK.encode(),
                                         "parameter.protobuf": _parameter_message([1 << 20, 1 << 20], [1.0])})
    assert "2^31" in _expect_error(path, FormatError)


def test_garbage_protobuf(tmp_path):
    path = make_zip(tmp_path / "p.nnp", {"network.nntxt": GOOD_NETWORK.encode(),
                                         "parameter.protobuf": b"\xff\xff\xff\xff garbage \x00\x01"})
    _expect_error(path, FormatError)


@pytest.mark.parametrize("content", [b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 8, b"not hdf5 at all" * 40])
def test_garbage_h5(tmp_path, content):
    path = make_zip(tmp_path / "p.nnp", {"network.nntxt": GOOD_NETWORK.encode(), "parameter.h5": content})
    _expect_error(path, FormatError)
    loose = tmp_path / "parameter.h5"
    loose.write_bytes(content)
    net = tmp_path / "net.nntxt"
    net.write_text(GOOD_NETWORK)
    _expect_error([net, loose], FormatError)


def test_h5_parameter_with_string_dtype(tmp_path):
    import h5py

    h5path = tmp_path / "parameter.h5"
    with h5py.File(h5path, "w") as h5:
        h5["w"] = np.array([b"abc", b"def"])
    net = tmp_path / "net.nntxt"
    net.write_text(GOOD_NETWORK)
    _expect_error([net, h5path], FormatError)


def test_no_network(tmp_path):
    path = make_zip(tmp_path / "p.nnp", {"nnp_version.txt": b"0.1\n"})
    assert "no network" in _expect_error(path, FormatError)


def test_missing_file(tmp_path):
    _expect_error(tmp_path / "absent.nnp", FormatError)


# -- the command line ----------------------------------------------------------------------------

def _bad_files(tmp_path: Path) -> list[Path]:
    empty = tmp_path / "empty.nnp"
    empty.write_bytes(b"")
    notzip = tmp_path / "notzip.nnp"
    notzip.write_bytes(b"hello")
    evil = make_zip(tmp_path / "evil.nnp", {"../network.nntxt": GOOD_NETWORK.encode()})
    syntax = make_zip(tmp_path / "syntax.nnp", {"network.nntxt": b"network { name: \n"})
    return [empty, notzip, evil, syntax]


@pytest.mark.parametrize("command", ["check", "info"])
def test_cli_exit_2_one_line_no_traceback(tmp_path, capsys, command):
    for path in _bad_files(tmp_path):
        before = sorted(os.listdir(tmp_path))
        start = time.perf_counter()
        rc = main([command, str(path)])
        assert time.perf_counter() - start < 1.0
        out, err = capsys.readouterr()
        assert rc == 2, (path, out, err)
        assert "Traceback" not in err and err.count("\n") == 1, err
        assert err.startswith(f"nncbridge {command}: error: ")
        assert sorted(os.listdir(tmp_path)) == before


def test_cli_subprocess_exit_2(tmp_path):
    path = tmp_path / "empty.nnp"
    path.write_bytes(b"")
    result = subprocess.run([sys.executable, "-m", "nncbridge", "check", str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0
    assert "empty" in result.stderr


def test_errors_are_nncbridge_errors():
    assert issubclass(UnsafeArchiveError, FormatError) and issubclass(FormatError, NncBridgeError)


def _h5_file(tmp_path: Path, make) -> Path:
    import h5py

    path = tmp_path / "parameter.h5"
    with h5py.File(path, "w") as h5:
        make(h5)
    return path


def test_h5_declared_but_absent_data(tmp_path):
    """A compressed dataset declaring 2 GiB whose chunks were never written (a few KB on disk)."""
    path = _h5_file(tmp_path, lambda h5: h5.create_dataset("w", shape=(1 << 29,), dtype="f4", chunks=(1 << 16,),
                                                           compression="gzip"))
    assert path.stat().st_size < 100_000
    net = tmp_path / "net.nntxt"
    net.write_text(GOOD_NETWORK)
    _expect_error([net, path], FormatError)
    archive = make_zip(tmp_path / "m.nnp", {"network.nntxt": GOOD_NETWORK.encode(), "parameter.h5": path.read_bytes()})
    _expect_error(archive, FormatError)


def test_h5_external_storage_is_refused(tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(4, dtype=np.float32).tobytes())
    path = _h5_file(tmp_path, lambda h5: h5.create_dataset("w", shape=(4,), dtype="f4",
                                                           external=[(str(secret), 0, 16)]))
    net = tmp_path / "net.nntxt"
    net.write_text(GOOD_NETWORK)
    assert "outside" in _expect_error([net, path], UnsafeArchiveError)
