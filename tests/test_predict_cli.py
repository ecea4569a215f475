from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import nncbridge
from nncbridge.dataset.batch import predict_csv
from nncbridge.errors import DatasetError
from tests.models import affine_nntxt, identity_nntxt, write_nnp

RNG = np.random.RandomState(1)
W = RNG.uniform(-1, 1, (2, 3)).astype(np.float32)
B = RNG.uniform(-1, 1, (3,)).astype(np.float32)


@pytest.fixture()
def vector_model(tmp_path):
    return write_nnp(tmp_path / "affine.nnp", affine_nntxt(2, 3), {"Affine/affine/W": W, "Affine/affine/b": B})


@pytest.fixture()
def image_model(tmp_path):
    return write_nnp(tmp_path / "image.nnp", identity_nntxt((1, 2, 2), flatten=True))


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_vector_columns_bom_crlf_quotes_and_extra_columns(vector_model, tmp_path):
    data = tmp_path / "data.csv"
    data.write_bytes("\ufeffx__0:a,x__1:b,comment\r\n0.5,-1,\"hello, world\"\r\n2,3,plain\r\n".encode("utf-8"))
    out = tmp_path / "out.csv"
    summary = predict_csv(nncbridge.load(vector_model), data, out)
    assert summary.rows == 2
    rows = read_rows(out)
    assert rows[0] == ["x__0:a", "x__1:b", "comment", "y'__0", "y'__1", "y'__2"]
    assert rows[1][:3] == ["0.5", "-1", "./hello, world"]
    x = np.array([[0.5, -1], [2, 3]], dtype=np.float64)
    want = x @ W.astype(np.float64) + B
    got = np.array([[float(v) for v in r[3:]] for r in rows[1:]])
    np.testing.assert_allclose(got, want, atol=1e-6)
    for r in rows[1:]:  # shortest float32 text round-trips exactly
        for v in r[3:]:
            assert str(np.float32(v)) == v


def test_missing_column_is_reported_with_the_header(vector_model, tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("z__0,z__1\n1,2\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="no column for input 'Input'.*z__0"):
        predict_csv(nncbridge.load(vector_model), data, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


def test_bad_row_names_line_and_column_and_leaves_no_output(vector_model, tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("x__0,x__1\n1,2\n3,abc\n5,6\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    with pytest.raises(DatasetError, match=r"line 3: column 'x__1': 'abc' is not a number"):
        predict_csv(nncbridge.load(vector_model), data, out, batch_size=1)
    assert not out.exists()
    assert not list(tmp_path.glob(".out.csv.*"))


def test_skip_errors_continues_and_lists_rows(vector_model, tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("x__0,x__1\n1,2\n3,abc\n5\n7,8\n", encoding="utf-8")
    summary = predict_csv(nncbridge.load(vector_model), data, tmp_path / "out.csv", skip_errors=True)
    assert summary.rows == 2 and len(summary.skipped) == 2
    assert "line 3" in summary.skipped[0] and "line 4" in summary.skipped[1]
    assert [r[0] for r in read_rows(tmp_path / "out.csv")[1:]] == ["1", "7"]


def test_non_utf8_csv_is_a_clear_error(vector_model, tmp_path):
    data = tmp_path / "data.csv"
    data.write_bytes(b"x__0,x__1\n1,2\n\xff\xfe,3\n")
    with pytest.raises(DatasetError, match="not UTF-8"):
        predict_csv(nncbridge.load(vector_model), data, tmp_path / "out.csv")


def test_image_rows_resolve_relative_to_the_csv_folder(image_model, tmp_path):
    (tmp_path / "imgs").mkdir()
    pixels = [RNG.randint(0, 256, (2, 2)).astype(np.uint8) for _ in range(3)]
    for i, p in enumerate(pixels):
        Image.fromarray(p).save(tmp_path / "imgs" / f"{i}.png")
    data = tmp_path / "data.csv"
    data.write_text("x:image,y:label\n" + "".join(f"imgs/{i}.png,{i}\n" for i in range(3)), encoding="utf-8")
    out = tmp_path / "deep" / "folder" / "out.csv"
    predict_csv(nncbridge.load(image_model), data, out, batch_size=2)
    rows = read_rows(out)
    assert rows[0] == ["x:image", "y:label", "y'__0", "y'__1", "y'__2", "y'__3"]
    for i, r in enumerate(rows[1:]):
        assert r[:2] == [f"./imgs/{i}.png", str(i)]
        expected = (pixels[i].astype(np.float64) / 255.0).astype(np.float32).ravel()
        np.testing.assert_array_equal(np.array(r[2:], dtype=np.float32), expected)


@pytest.mark.parametrize("content, message", [(b"", "cannot read image"), (b"\x89PNG\r\n\x1a\ntrunc", "cannot read image")])
def test_bad_image_rows(image_model, tmp_path, content, message):
    (tmp_path / "bad.png").write_bytes(content)
    data = tmp_path / "data.csv"
    data.write_text("x:image\nbad.png\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=f"line 2: column 'x:image'.*{message}"):
        predict_csv(nncbridge.load(image_model), data, tmp_path / "out.csv")


def test_image_cell_for_an_input_that_takes_no_images(vector_model, tmp_path):
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(tmp_path / "a.png")
    data = tmp_path / "data.csv"
    data.write_text("x:image\na.png\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"line 2: column 'x:image': an input of shape \(2,\) does not take images"):
        predict_csv(nncbridge.load(vector_model), data, tmp_path / "out.csv")


def test_cli_json_summary_and_exit_codes(vector_model, tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("x__0,x__1\n" + "1,2\n" * 10, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "nncbridge", "predict", str(vector_model), str(data),
                           "-o", str(tmp_path / "o.csv"), "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["rows"] == 10 and summary["skipped"] == 0 and summary["seconds"] >= 0
    bad = subprocess.run([sys.executable, "-m", "nncbridge", "predict", str(vector_model), str(tmp_path / "nope.csv"),
                          "-o", str(tmp_path / "o2.csv")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "nope.csv" in bad.stderr


def test_worker_processes_write_exactly_what_threads_write(tmp_path, monkeypatch):
    from nncbridge.dataset import batch
    from tests.conftest import ROOT

    monkeypatch.setattr(batch, "_PROCESS_TASK_ROWS", 16)  # many tasks: this process runs some too

    digits = ROOT / "sample_projects" / "digits"
    threads, processes = tmp_path / "threads.csv", tmp_path / "processes.csv"
    predictor = nncbridge.load(digits / "digits.nnp")
    predict_csv(predictor, digits / "data" / "test.csv", threads, batch_size=16)
    summary = predict_csv(predictor, digits / "data" / "test.csv", processes, batch_size=16, processes=2)
    assert summary.rows == 297 and summary.processes == 2
    assert processes.read_bytes() == threads.read_bytes()


def test_worker_processes_report_bad_rows_like_threads(vector_model, tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("x__0,x__1\n" + "1,2\n" * 40 + "3,abc\n" + "5,6\n" * 40, encoding="utf-8")
    out = tmp_path / "out.csv"
    with pytest.raises(DatasetError, match=r"line 42: column 'x__1': 'abc' is not a number"):
        predict_csv(nncbridge.load(vector_model), data, out, batch_size=8, processes=2)
    assert not out.exists()
    summary = predict_csv(nncbridge.load(vector_model), data, out, batch_size=8, processes=2, skip_errors=True)
    assert summary.rows == 80 and len(summary.skipped) == 1 and "line 42" in summary.skipped[0]


@pytest.mark.parametrize("seed", range(5))
def test_output_rows_are_written_as_csv_writer_writes_them(seed):
    import io
    import random

    from nncbridge.dataset.csv_io import csv_text

    rnd = random.Random(seed)
    alphabet = ["a", "1", ".", "/", " ", ",", '"', "\r", "\n", "\x00", "é", "\t", ""]
    for _ in range(200):
        rows = [["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 4)))
                 for _ in range(rnd.choice([1, 2, 3, 5]))] for _ in range(rnd.randint(1, 4))]
        if rnd.random() < 0.5:  # mostly plain cells, as real datasets have
            rows = [[c.translate({ord(x): None for x in ',"\r\n\x00'}) for c in r] for r in rows]
        expected = io.StringIO()
        try:
            csv.writer(expected, lineterminator="\n").writerows(rows)
        except csv.Error:  # Python 3.10 cannot write NUL without an escape character
            with pytest.raises(csv.Error):
                csv_text(rows)
            continue
        assert csv_text(rows) == expected.getvalue(), rows


def test_this_process_runs_chunks_while_the_pool_is_busy_and_results_stay_in_order():
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from nncbridge.dataset.batch import _LOCAL_AHEAD, _ChunkResult, _in_order

    released = threading.Event()
    local_chunks = []

    def in_pool(chunk):
        assert released.wait(30)
        return _ChunkResult(f"{chunk[0]},", 1, [])

    def here(chunk):
        local_chunks.append(chunk[0])
        if len(local_chunks) == 5:
            released.set()
        return _ChunkResult(f"{chunk[0]},", 1, [])

    with ThreadPoolExecutor(1) as pool:
        texts = [r.text for r in _in_order(pool, in_pool, iter([[i] for i in range(60)]), 2, here)]
    assert texts == [f"{i}," for i in range(60)]
    assert local_chunks[:5] == [2, 3, 4, 5, 6]  # the pool held 0 and 1, blocked

    released.clear()
    before_release = []

    def here_never_releasing(chunk):
        if not released.is_set():
            before_release.append(chunk[0])
        return _ChunkResult(f"{chunk[0]},", 1, [])

    timer = threading.Timer(1.0, released.set)
    timer.start()
    with ThreadPoolExecutor(1) as pool:  # only time releases the pool: this process stops ahead
        texts = [r.text for r in _in_order(pool, in_pool, iter([[i] for i in range(60)]), 2, here_never_releasing)]
    assert texts == [f"{i}," for i in range(60)]
    assert before_release == list(range(2, 2 + _LOCAL_AHEAD))


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="needs named pipes")
def test_a_dataset_read_from_a_pipe_is_read_once(vector_model, tmp_path):
    import os
    import threading

    from nncbridge.cli import main

    pipe = tmp_path / "data.csv"
    os.mkfifo(pipe)
    writer = threading.Thread(target=lambda: pipe.write_text("x__0,x__1\n1,2\n3,4\n"), daemon=True)
    writer.start()
    codes: list[int] = []  # main runs on a thread: reading the pipe twice would wait forever
    predict = threading.Thread(target=lambda: codes.append(main(["predict", str(vector_model), str(pipe), "-o",
                                                                 str(tmp_path / "out.csv"), "--quiet"])), daemon=True)
    predict.start()
    predict.join(30)
    assert codes == [0], "predict did not finish: it read the pipe twice"
    rows = read_rows(tmp_path / "out.csv")
    assert [r[:2] for r in rows[1:]] == [["1", "2"], ["3", "4"]]
    x = np.array([[1, 2], [3, 4]], dtype=np.float64)
    np.testing.assert_allclose(np.array([r[2:] for r in rows[1:]], dtype=np.float64), x @ W + B, atol=1e-6)


def test_npy_cells_feed_their_values_as_they_are(image_model, tmp_path):
    # nnabla's load_npy: the array's values, reshaped to the input; no image scaling, even for uint8.
    (tmp_path / "arrays").mkdir()
    floats = np.array([[0.5, 200.0], [-3.25, 1e-3]])
    pixels = np.array([[0, 255], [17, 128]], dtype=np.uint8)
    fortran = np.asfortranarray(np.array([[1, 2], [3, 4]], dtype=">i2"))
    np.save(tmp_path / "arrays" / "floats.npy", floats)
    np.save(tmp_path / "arrays" / "pixels.npy", pixels.reshape(1, 2, 2))
    with open(tmp_path / "arrays" / "fortran.NPY", "wb") as f:  # np.save would add ".npy"
        np.save(f, fortran)
    data = tmp_path / "data.csv"
    data.write_text("x:image\narrays/floats.npy\narrays\\pixels.npy\narrays/fortran.NPY\n", encoding="utf-8")
    predict_csv(nncbridge.load(image_model), data, tmp_path / "out.csv")
    rows = read_rows(tmp_path / "out.csv")
    assert [r[0] for r in rows[1:]] == ["./arrays/floats.npy", "./arrays/pixels.npy", "./arrays/fortran.NPY"]
    got = np.array([r[1:] for r in rows[1:]], dtype=np.float32)
    want = np.stack([a.astype(np.float32).ravel() for a in (floats, pixels, fortran)])
    np.testing.assert_array_equal(got, want)


class _RunsOnLoad:
    """Unpickling this creates a file: proof that a dataset's .npy was unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("kind, words", [
    ("pickle", "object values, not numbers"), ("complex", "complex128 values, not numbers"),
    ("count", "holds 5 values (5,), the input needs (1, 2, 2)"),
    ("huge", "holds 99999999999999 values"), ("cut", "cut short"), ("junk", "cannot read"),
    ("text", "<U3 values, not numbers")])
def test_npy_cells_that_are_not_plain_numbers_are_refused(image_model, tmp_path, kind, words):
    path = tmp_path / "a.npy"
    marker = tmp_path / "unpickled"
    if kind == "pickle":
        np.save(path, np.array([_RunsOnLoad(marker)] * 4, dtype=object), allow_pickle=True)
    elif kind == "complex":
        np.save(path, np.ones(4) + 1j)
    elif kind == "count":
        np.save(path, np.ones(5))
    elif kind == "huge":  # the header claims far more values than the file holds
        np.save(path, np.ones(4))
        path.write_bytes(path.read_bytes().replace(b"(4,)", b"(99999999999999,)"))
    elif kind == "cut":
        np.save(path, np.ones(4))
        path.write_bytes(path.read_bytes()[:-3])
    elif kind == "junk":
        path.write_bytes(b"not an array")
    else:
        np.save(path, np.array(["abc"] * 4))
    data = tmp_path / "data.csv"
    data.write_text("x:image\na.npy\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"line 2: column 'x:image': .*" + __import__("re").escape(words)):
        predict_csv(nncbridge.load(image_model), data, tmp_path / "out.csv")
    assert not marker.exists()
