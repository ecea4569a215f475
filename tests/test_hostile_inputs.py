"""Crafted hostile models and inputs: every path (check, convert, load, predict) ends quickly in a result
or an NncBridgeError; nothing allocates what a shape merely declares."""
from __future__ import annotations

import io
import os
import resource
import struct
import threading
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

import nncbridge
from nncbridge.cli import main
from nncbridge.errors import FormatError, InputError, NncBridgeError, UnsafeArchiveError
from nncbridge.format import reader
from tests.models import affine_nntxt, identity_nntxt, write_nnp

SECONDS = 5.0


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_everything(path: Path, seconds: float = SECONDS) -> dict[str, object]:
    """check, convert and load+predict ``path``; each either works or raises an NncBridgeError, fast."""
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)
    results: dict[str, object] = {}
    rss_before = _peak_rss()
    for step in ("check", "convert", "predict"):
        start = time.perf_counter()
        try:
            if step == "check":
                results[step] = nncbridge.check(path)
            elif step == "convert":
                results[step] = nncbridge.to_onnx(path)
            else:
                p = nncbridge.load(path, intra_op_num_threads=1)
                results[step] = p.predict({i.name: np.zeros((2,) + i.shape, np.float32) for i in p.inputs})
        except NncBridgeError as e:
            results[step] = e
        took = time.perf_counter() - start
        assert took < seconds, f"{step} took {took:.1f} s"
    assert _peak_rss() - rss_before < 1 << 30, "peak memory grew by more than 1 GiB"
    return results


def _errors(results: dict[str, object]) -> dict[str, str]:
    return {k: str(v) for k, v in results.items() if isinstance(v, NncBridgeError)}


def network(variables: str, functions: str, inputs=("x",), outputs=("y",), extra: str = "") -> str:
    data = "".join(f'  data_variable {{ variable_name: "{v}" data_name: "{v}" }}\n' for v in inputs)
    outs = "".join(f'  output_variable {{ variable_name: "{v}" data_name: "{v}" }}\n' for v in outputs)
    return (f'network {{\n  name: "net"\n  batch_size: 1\n{extra}{variables}\n{functions}\n}}\n'
            f'executor {{\n  name: "runtime"\n  network_name: "net"\n{data}{outs}}}\n')


def var(name: str, *dims: int, type_: str = "Buffer") -> str:
    return f'  variable {{ name: "{name}" type: "{type_}" shape {{ {" ".join(f"dim: {d}" for d in dims)} }} }}\n'


# -- archives ----------------------------------------------------------------------------------------------
def test_ten_thousand_tiny_members(tmp_path):
    path = tmp_path / "many.nnp"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("network.nntxt", affine_nntxt(4, 3))
        for i in range(10_000):
            z.writestr(f"junk/{i}.txt", b"x")
    start = time.perf_counter()
    model = nncbridge.read(path)
    assert time.perf_counter() - start < 3
    assert len(model.source.members) == 10_001


def test_ten_thousand_tiny_network_members_end_quickly(tmp_path):
    path = tmp_path / "many-networks.nnp"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for i in range(10_000):
            z.writestr(f"n{i}.nntxt", b"\n")
    start = time.perf_counter()
    with pytest.raises(UnsafeArchiveError, match="more than 1000 network/parameter members"):
        nncbridge.read(path)
    assert time.perf_counter() - start < 1


def _stored_zip_with_sparse_member(path: Path, name: str, size: int) -> None:
    """A zip holding one stored member of ``size`` zero bytes, written sparsely (no real I/O)."""
    raw = name.encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0x21, 0, size, size, len(raw), 0) + raw)
        f.seek(size, io.SEEK_CUR)
        cd = f.tell()
        central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0x21, 0, size, size,
                              len(raw), 0, 0, 0, 0, 0, 0) + raw
        f.write(central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), cd, 0))


def test_network_member_of_200_mb_is_refused_before_reading(tmp_path):
    # Documented behaviour: text networks are limited to MAX_NETWORK_BYTES (16 MiB) because parsing protobuf
    # text costs ~0.5 s per MiB; real Console networks are well under 1 MiB. The limit is checked on the
    # declared size, so nothing is decompressed or parsed.
    assert reader.MAX_NETWORK_BYTES <= 32 << 20
    path = tmp_path / "big.nnp"
    _stored_zip_with_sparse_member(path, "network.nntxt", 200 << 20)
    start = time.perf_counter()
    with pytest.raises(FormatError, match="MiB allowed"):
        nncbridge.read(path)
    assert time.perf_counter() - start < 1


def test_loose_network_file_of_200_mb_is_refused(tmp_path):
    path = tmp_path / "network.nntxt"
    with open(path, "wb") as f:
        f.truncate(200 << 20)
    with pytest.raises(FormatError, match="MiB allowed"):
        nncbridge.read(path)


def test_network_just_under_the_limit_still_reads(tmp_path):
    text = affine_nntxt(4, 3) + ("# padding comment line\n" * 4000)
    write_nnp(tmp_path / "ok.nnp", text)
    assert "MainRuntime" in nncbridge.read(tmp_path / "ok.nnp").networks


# -- shapes --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dims", [(-1, 1 << 20, 1 << 20), (-1, 1 << 40), (-1, 1 << 32, 1 << 32),
                                  (-1, 3, -5), (-1, 0, 3), (-1, 1 << 62, 4), (-1, -(1 << 63))])
def test_declared_variable_shapes(tmp_path, dims):
    path = write_nnp(tmp_path / "m.nnp", network(var("x", *dims) + var("y", *dims),
                                                  'function { name: "r" type: "ReLU" input: "x" output: "y" }'))
    results = run_everything(path)
    if 0 not in dims:
        assert len(_errors(results)) == 3


def test_overflowing_shape_product_is_not_wrapped(tmp_path):
    # 2^32 * 2^32 wraps to 0 in int64 arithmetic; the reader must still see "too many elements"
    path = write_nnp(tmp_path / "m.nnp", network(var("x", -1, 1 << 32, 1 << 32) + var("y", -1, 1),
                                                  'function { name: "r" type: "ReLU" input: "x" output: "y" }'))
    with pytest.raises(FormatError, match="2\\^31"):
        nncbridge.read(path)


def _param_network(fn_type: str, param: str, in_dims=(-1, 4), out_dims=(-1, 4), inputs=("x",)) -> str:
    ins = " ".join(f'input: "{i}"' for i in inputs)
    variables = "".join(var(i, *in_dims) for i in inputs) + var("y", *out_dims)
    return network(variables, f'function {{ name: "f" type: "{fn_type}" {ins} output: "y" {param} }}',
                   inputs=inputs)


HUGE = 1 << 40
ARGUMENT_CASES = {
    "reshape-huge": ("Reshape", f"reshape_param {{ shape {{ dim: -1 dim: {HUGE} }} }}"),
    "reshape-overflow": ("Reshape", f"reshape_param {{ shape {{ dim: {1 << 32} dim: {1 << 32} dim: 4 }} }}"),
    "reshape-negative": ("Reshape", "reshape_param { shape { dim: -3 dim: 4 } }"),
    "reshape-zero": ("Reshape", "reshape_param { shape { dim: 0 dim: 4 } }"),
    "broadcast-huge": ("Broadcast", f"broadcast_param {{ shape {{ dim: 2 dim: {HUGE} }} }}"),
    "broadcast-overflow": ("Broadcast", f"broadcast_param {{ shape {{ dim: {1 << 62} dim: 4 dim: 4 }} }}"),
    "broadcast-negative": ("Broadcast", "broadcast_param { shape { dim: -7 dim: 4 } }"),
    "constant-huge": ("Constant", f"constant_param {{ val: 1 shape {{ dim: {HUGE} }} }}"),
    "constant-overflow": ("Constant", f"constant_param {{ val: 1 shape {{ dim: {1 << 32} dim: {1 << 32} }} }}"),
    "constant-negative": ("Constant", "constant_param { val: 1 shape { dim: -2 dim: 4 } }"),
    "interpolate-huge": ("Interpolate", f'interpolate_param {{ output_size: {1 << 30} output_size: {1 << 30} '
                                        f'mode: "linear" }}'),
    "interpolate-negative": ("Interpolate", 'interpolate_param { output_size: -4 output_size: 4 mode: "nearest" }'),
    "interpolate-zero": ("Interpolate", 'interpolate_param { output_size: 0 output_size: 0 mode: "nearest" }'),
}


@pytest.mark.parametrize("case", sorted(ARGUMENT_CASES))
def test_shape_arguments_are_not_allocated(tmp_path, case):
    fn_type, param = ARGUMENT_CASES[case]
    if fn_type == "Constant":
        text = network(var("y", 1, 4), f'function {{ name: "f" type: "Constant" output: "y" {param} }}', inputs=())
    elif fn_type == "Broadcast":
        text = _param_network(fn_type, param, in_dims=(-1, 1), out_dims=(-1, 4))
    elif fn_type == "Interpolate":
        text = _param_network(fn_type, param, in_dims=(-1, 1, 4, 4), out_dims=(-1, 1, 4, 4))
    else:
        text = _param_network(fn_type, param)
    results = run_everything(write_nnp(tmp_path / "m.nnp", text))
    if "huge" in case or "overflow" in case:
        # the declared output shape (4 elements) disagrees with, or the argument exceeds, what is possible
        assert "predict" in _errors(results), results


# -- graph structure --------------------------------------------------------------------------------------
CYCLE = network(var("x", -1, 3) + var("a", -1, 3) + var("b", -1, 3) + var("y", -1, 3),
                'function { name: "f1" type: "Add2" input: "x" input: "b" output: "a" }\n'
                'function { name: "f2" type: "ReLU" input: "a" output: "b" }\n'
                'function { name: "f3" type: "ReLU" input: "b" output: "y" }\n')


def test_cycle_fails_quickly_everywhere(tmp_path):
    results = run_everything(write_nnp(tmp_path / "cycle.nnp", CYCLE), seconds=2)
    errors = _errors(results)
    assert set(errors) == {"convert", "predict"} and "cycle" in errors["convert"]
    assert any(p.severity == "error" and "cycle" in p.message for p in results["check"])


def _repeat_end_only(rid: str) -> str:
    return network(var("x", -1, 3) + var("y", -1, 3),
                   f'function {{ name: "E" type: "RepeatEnd" input: "x" output: "y" '
                   f'repeat_param {{ repeat_id: "{rid}" times: 2 }} }}',
                   extra='  repeat_info { id: "R" times: 2 }\n')


def test_repeat_end_with_unknown_repeat_id(tmp_path):
    results = run_everything(write_nnp(tmp_path / "m.nnp", _repeat_end_only("nope")))
    errors = _errors(results)
    assert {"convert", "predict"} <= set(errors) and "nope" in errors["convert"]
    assert any(p.severity == "error" for p in results["check"])


def _nested_repeats(depth: int, times: int) -> str:
    ids = [f"R{i}" for i in range(depth)]
    variables = var("x", -1, 3)
    functions = []
    infos = "".join(f'  repeat_info {{ id: "{r}" times: {times} }}\n' for r in ids)
    prev = "x"
    for level, rid in enumerate(ids):
        scope = " ".join(f'repeat_id: "{r}"' for r in ids[:level + 1])
        variables += f'  variable {{ name: "S{level}" type: "Buffer" {scope} shape {{ dim: -1 dim: 3 }} }}\n'
        back = f"T{depth - 1}" if level == depth - 1 else f"E{level + 1}"
        functions.append(f'function {{ name: "S{level}" type: "RepeatStart" {scope} input: "{prev}" input: "{back}" '
                         f'output: "S{level}" repeat_param {{ repeat_id: "{rid}" times: {times} }} }}')
        prev = f"S{level}"
    scope = " ".join(f'repeat_id: "{r}"' for r in ids)
    variables += f'  variable {{ name: "T{depth - 1}" type: "Buffer" {scope} shape {{ dim: -1 dim: 3 }} }}\n'
    functions.append(f'function {{ name: "T" type: "Tanh" {scope} input: "{prev}" output: "T{depth - 1}" }}')
    inner = f"T{depth - 1}"
    for level in reversed(range(depth)):
        scope = " ".join(f'repeat_id: "{r}"' for r in ids[:level])
        variables += f'  variable {{ name: "E{level}" type: "Buffer" {scope} shape {{ dim: -1 dim: 3 }} }}\n'
        functions.append(f'function {{ name: "E{level}" type: "RepeatEnd" {scope} input: "{inner}" output: "E{level}" '
                         f'repeat_param {{ repeat_id: "{ids[level]}" times: {times} }} }}')
        inner = f"E{level}"
    return network(variables, "\n".join(functions), outputs=("E0",), extra=infos)


def test_two_level_repeat_builder_is_a_valid_network(tmp_path):
    # the builder below is right: two levels, 2 x 2 iterations of Tanh
    p = nncbridge.load(write_nnp(tmp_path / "m.nnp", _nested_repeats(2, 2)))
    x = np.array([[0.5, -1.0, 2.0]], np.float32)
    np.testing.assert_allclose(p.predict(x), np.tanh(np.tanh(np.tanh(np.tanh(x)))), rtol=1e-6)


@pytest.mark.parametrize("times", [1, 2])
def test_repeat_nesting_1000_deep(tmp_path, times):
    results = run_everything(write_nnp(tmp_path / "deep.nnp", _nested_repeats(1000, times)))
    errors = _errors(results)
    assert {"convert", "predict"} <= set(errors), results
    assert "levels" in errors["convert"] or "nest" in errors["convert"]


def test_nan_and_inf_parameters_warn_and_still_compute(tmp_path):
    w = np.ones((4, 3), np.float32)
    w[0, 0] = np.nan
    b = np.array([np.inf, 0, 1], np.float32)
    path = write_nnp(tmp_path / "m.nnp", affine_nntxt(4, 3), {"Affine/affine/W": w, "Affine/affine/b": b})
    problems = nncbridge.check(path)
    assert problems and all(p.severity == "warning" for p in problems)
    assert any("NaN" in p.message or "nan" in p.message.lower() for p in problems)
    out = nncbridge.load(path).predict(np.array([[0, 1, 1, 1]], np.float32))
    assert np.isinf(out[0, 0]) or np.isnan(out[0, 0])  # 0 * NaN + inf
    np.testing.assert_allclose(out[0, 1:], [3, 4])


@pytest.mark.parametrize("executor", [
    'executor { name: "runtime" network_name: "nope" data_variable { variable_name: "x" data_name: "x" } '
    'output_variable { variable_name: "y" data_name: "y" } }',
    'executor { name: "runtime" network_name: "net" data_variable { variable_name: "nope" data_name: "x" } '
    'output_variable { variable_name: "y" data_name: "y" } }',
    'executor { name: "runtime" network_name: "net" data_variable { variable_name: "x" data_name: "x" } '
    'output_variable { variable_name: "nope" data_name: "y" } }',
])
def test_executor_pointing_at_missing_network_or_variable(tmp_path, executor):
    text = network(var("x", -1, 3) + var("y", -1, 3), 'function { name: "r" type: "ReLU" input: "x" output: "y" }')
    text = text[:text.index("executor {")] + executor + "\n"
    results = run_everything(write_nnp(tmp_path / "m.nnp", text))
    errors = _errors(results)
    assert {"convert", "predict"} <= set(errors)
    assert all("nope" in m for m in errors.values())


# -- predictor inputs -------------------------------------------------------------------------------------
@pytest.fixture()
def affine(tmp_path):
    w = np.arange(12, dtype=np.float32).reshape(4, 3)
    return nncbridge.load(write_nnp(tmp_path / "affine.nnp", affine_nntxt(4, 3),
                                    {"Affine/affine/W": w, "Affine/affine/b": np.zeros(3, np.float32)}))


@pytest.mark.parametrize("value", [
    np.zeros((2, 4), np.complex64), np.array([{"a": 1}] * 4, dtype=object), np.zeros((2, 4), "datetime64[s]"),
    [["a", "b", "c", "d"]], "not a number", None, {"x": None},
])
def test_wrong_dtypes_are_input_errors(affine, value):
    with pytest.raises(InputError):
        affine.predict(value)


@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.int8, np.uint8, np.bool_, np.float16])
def test_numeric_dtypes_are_converted(affine, dtype):
    x = np.array([[1, 0, 1, 0]], dtype=dtype)
    np.testing.assert_allclose(affine.predict(x), [[6, 8, 10]])


@pytest.mark.parametrize("shape", [(0,), (0, 3), (2, 0), (1, 1, 4), (4, 1)])
def test_wrong_shapes_are_input_errors(affine, shape):
    with pytest.raises(InputError, match="shape"):
        affine.predict(np.zeros(shape, np.float32))


def test_empty_batches(affine):
    assert affine.predict(np.zeros((0, 4), np.float32)).shape == (0, 3)
    assert affine.predict([]).shape == (0, 3)
    assert list(affine.predict_batches([])) == []


def test_nan_inputs_give_nan_outputs(affine):
    out = affine.predict(np.array([[np.nan, 0, 0, 0], [np.inf, 0, 0, 0], [1, 0, 0, 0]], np.float32))
    assert np.isnan(out[0]).all() and np.isnan(out[1, 0]) and np.isinf(out[1, 1:]).all()
    np.testing.assert_allclose(out[2], [0, 1, 2])


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb_png(path: Path, side: int = 20_000) -> Path:
    """A valid grayscale PNG of side x side zero pixels, compressed to a few kilobytes."""
    row = b"\x00" + b"\x00" * side
    c = zlib.compressobj(9)
    idat = b"".join(c.compress(row) for _ in range(side)) + c.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
                     + _png_chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def bomb_png(tmp_path_factory):
    return _bomb_png(tmp_path_factory.mktemp("bomb") / "bomb.png")


@pytest.fixture()
def image_predictor(tmp_path):
    return nncbridge.load(write_nnp(tmp_path / "image.nnp", identity_nntxt((1, 28, 28))))


@pytest.mark.parametrize("resize", [False, True])
def test_decompression_bomb_png_is_refused_quickly(image_predictor, bomb_png, resize):
    assert bomb_png.stat().st_size < 1 << 20
    rss = _peak_rss()
    start = time.perf_counter()
    with pytest.raises(InputError, match="bomb|pixels|too large"):
        image_predictor.predict(bomb_png, resize=resize)
    assert time.perf_counter() - start < 2
    assert _peak_rss() - rss < 200 << 20


def test_decompression_bomb_png_in_a_csv_names_the_row(tmp_path, bomb_png, capsys):
    model = write_nnp(tmp_path / "image.nnp", identity_nntxt((1, 28, 28)))
    csv = tmp_path / "data.csv"
    csv.write_text(f"x:image\n{bomb_png}\n")
    assert main(["predict", str(model), str(csv), "-o", str(tmp_path / "out.csv"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "row" in err or "line" in err
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40])
def test_zero_byte_and_truncated_pngs_in_a_csv(tmp_path, capsys, content):
    model = write_nnp(tmp_path / "image.nnp", identity_nntxt((1, 28, 28)))
    (tmp_path / "bad.png").write_bytes(content)
    csv = tmp_path / "data.csv"
    csv.write_text("x:image\nbad.png\n")
    assert main(["predict", str(model), str(csv), "-o", str(tmp_path / "out.csv"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "bad.png" in err and "Traceback" not in err


def _predict_cli_within(seconds: float, model: Path, data: Path, out: Path) -> object:
    """``nncbridge predict``'s exit code (or exception), run on a thread: a test fails, not hangs,
    if it waits on a file forever."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(main(["predict", str(model), str(data), "-o", str(out), "--quiet"]))
        except BaseException as e:  # reported by the caller's assertion
            outcome.append(e)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"predict is still running after {seconds} s (waiting on a file?)"
    return outcome[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo") or not os.path.exists("/dev/zero"), reason="needs FIFOs and /dev/zero")
@pytest.mark.parametrize("kind, words", [("fifo", "not a regular file"), ("device", "not a regular file"),
                                         ("huge", "too large"), ("ragged", "rows of different lengths")])
def test_matrix_file_cells_that_would_block_never_end_or_do_not_fit(tmp_path, kind, words, capsys):
    model = write_nnp(tmp_path / "vector.nnp", identity_nntxt((3,)))
    path = tmp_path / "m.csv"
    if kind == "fifo":
        os.mkfifo(path)  # opening it for reading would wait for a writer forever
    elif kind == "device":
        path.symlink_to("/dev/zero")  # reading it would never end
    elif kind == "huge":
        path.write_text("1,2,3\n" + "#" * 100_000)
    else:
        path.write_text("1,2\n3\n")
    data = tmp_path / "data.csv"
    data.write_text("x\nm.csv\n")
    assert _predict_cli_within(30, model, data, tmp_path / "out.csv") == 2
    err = capsys.readouterr().err
    assert words in err and "line 2" in err and "Traceback" not in err, err
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_image_cell_naming_a_fifo_or_directory_is_refused_without_waiting(tmp_path, kind):
    model = write_nnp(tmp_path / "image.nnp", identity_nntxt((1, 28, 28)))
    if kind == "fifo":
        os.mkfifo(tmp_path / "x.png")  # opening it for reading would wait for a writer forever
    else:
        (tmp_path / "x.png").mkdir()
    csv = tmp_path / "data.csv"
    csv.write_text("x:image\nx.png\n")
    assert _predict_cli_within(30, model, csv, tmp_path / "out.csv") == 2
    assert not (tmp_path / "out.csv").exists()
    with pytest.raises(InputError, match="not a regular file"):
        nncbridge.load(model).predict(tmp_path / "x.png")


# -- CSV edge cases not covered in test_predict_cli -----------------------------------------------------------
@pytest.fixture()
def vector_model(tmp_path):
    return write_nnp(tmp_path / "vec.nnp", identity_nntxt((3,)))


def _predict_csv(tmp_path, model, content: bytes, capsys) -> tuple[int, str, Path]:
    csv = tmp_path / "data.csv"
    csv.write_bytes(content)
    out = tmp_path / "out.csv"
    code = main(["predict", str(model), str(csv), "-o", str(out), "--quiet"])
    return code, capsys.readouterr().err, out


@pytest.mark.parametrize("content, words", [
    (b"x__0,x__1\n1,2\n", ["2 columns", "Input", "3 values"]),  # a vector column missing
    (b"x__0,x__1,x__2\n1,2\n", ["line 2"]),  # a short row
    (b"x__2,x__0,x__1\n1,2\n", ["line 2", "x__1", "only 2 cells"]),  # short, columns out of order
    (b"x__0,x__1,x__2\n1,2,abc\n", ["line 2", "x__2"]),
    (b"x__0,x__1,x__2\n1,2,\xff\n", ["UTF-8"]),
    (b'x__0,x__1,x__2\n"1,5",2,3\n', ["line 2", "x__0"]),  # a quoted comma is one cell, not two
    (b"x__0,x__1,x__2\n1,2,nan\n", []),  # NaN is a number: computed, exit 0
    (b"", ["empty"]),
    (b"x__0,x__1,x__2\n", []),  # header only: zero rows, exit 0
])
def test_csv_edge_cases(tmp_path, vector_model, content, words, capsys):
    code, err, out = _predict_csv(tmp_path, vector_model, content, capsys)
    assert "Traceback" not in err
    if words:
        assert code == 2, err
        for w in words:
            assert w in err, err
        assert not out.exists()
    else:
        assert code == 0, err
        assert out.exists()


@pytest.mark.parametrize("param", ["linspace_param { start: 0 stop: 1 num: 1099511627776 }",
                                   "arange_param { start: 0 stop: 1e30 step: 1 }"])
def test_generator_lengths_are_bounded(tmp_path, param):
    fn_type = param.split("_")[0].capitalize()
    text = network(var("y", 4), f'function {{ name: "f" type: "{fn_type}" output: "y" {param} }}', inputs=())
    results = run_everything(write_nnp(tmp_path / "m.nnp", text))
    assert {"convert", "predict"} <= set(_errors(results))


def test_parameter_stored_with_another_shape_is_refused_before_conversion(tmp_path):
    """The declared (3,) bias is stored as (4,): conversion names the parameter and both shapes."""
    import numpy as np

    import nncbridge
    from tests.models import affine_nntxt, write_nnp

    path = write_nnp(tmp_path / "bad.nnp", affine_nntxt(2, 3),
                     {"Affine/affine/W": np.zeros((2, 3), np.float32), "Affine/affine/b": np.zeros(4, np.float32)})
    with pytest.raises(nncbridge.UnsupportedFunctionError, match=r"'Affine/affine/b'.*\(3,\).*\(4,\)"):
        nncbridge.to_onnx(path)


def test_arguments_a_lowering_rejects_become_a_conversion_error(tmp_path):
    """Fuzz case 142563: a Softmax axis beyond its input's rank reached the lowering as a ValueError."""
    import nncbridge
    from tests.models import identity_nntxt, write_nnp

    text = identity_nntxt((3,)).replace('type: "Identity" input: "Input" output: "Identity" }',
                                        'type: "Softmax" input: "Input" output: "Identity" softmax_param { axis: 2 } }')
    path = write_nnp(tmp_path / "softmax.nnp", text)
    with pytest.raises(nncbridge.NncBridgeError, match="axis 2"):
        nncbridge.to_onnx(path)
