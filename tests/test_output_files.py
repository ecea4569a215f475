"""Matrix and map outputs: written as files beside the output CSV, the way nnabla_cli forward does."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import nncbridge
from nncbridge.dataset.batch import predict_csv
from nncbridge.errors import DatasetError
from tests.models import identity_nntxt, write_nnp


def _dataset(path: Path, rows: np.ndarray) -> Path:
    # Shortest float32 text. (Given more digits, nnabla_cli forward can write an identity model's
    # matrix output in float64: it keeps the CSV's float64 values when it reshapes them into the input.)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow([f"x__{i}" for i in range(rows.shape[1])])
        writer.writerows(rows.astype(np.float32).astype(str).tolist())
    return path


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def _as_pixels(values: np.ndarray) -> np.ndarray:
    # nnabla's forward.py: value x 255 in float32, clipped to 0..255, truncated to uint8.
    return np.clip(values.astype(np.float32) * np.float32(255), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("shape, header, files", [
    ((1, 4, 5), ["y'"], ["{r}.png"]),
    ((3, 2, 2), ["y'"], ["{r}.png"]),
    ((2, 4, 5), ["y'__0", "y'__1"], ["0_{r}.png", "1_{r}.png"]),
    ((2, 3), ["y'"], ["{r}.csv"]),
])
def test_outputs_written_as_files(tmp_path, shape, header, files):
    model = write_nnp(tmp_path / "m.nnp", identity_nntxt(shape))
    values = np.random.RandomState(0).uniform(-0.2, 1.2, (3, int(np.prod(shape)))).astype(np.float32)
    values[0, :2] = [2 / 255, 254.9 / 255]  # truncated, not rounded
    out = tmp_path / "results" / "out.csv"
    predict_csv(nncbridge.load(model), _dataset(tmp_path / "data.csv", values), out)
    rows = _rows(out)
    assert rows[0][-len(header):] == header
    for r, row in enumerate(rows[1:]):
        assert row[-len(header):] == [f"./0_0000/{name.format(r=r)}" for name in files]
        sample = values[r].reshape(shape)
        if len(shape) == 2:
            written = np.array(_rows(out.parent / row[-1]), dtype=np.float32)
            np.testing.assert_array_equal(written, sample)
        elif shape[0] == 3:
            np.testing.assert_array_equal(np.asarray(Image.open(out.parent / row[-1])),
                                          _as_pixels(sample.transpose(1, 2, 0)))
        else:
            for channel, cell in enumerate(row[-len(header):]):
                image = Image.open(out.parent / cell)
                assert image.mode == "L"
                np.testing.assert_array_equal(np.asarray(image), _as_pixels(sample[channel]))
    assert sorted(p.name for p in out.parent.iterdir()) == ["0_0000", "out.csv"]  # no staging folder left


def test_a_folder_per_thousand_rows_and_vector_outputs_stay_in_columns(tmp_path):
    model = write_nnp(tmp_path / "m.nnp", identity_nntxt((1, 2, 2)))
    values = np.random.RandomState(1).uniform(0, 1, (1002, 4)).astype(np.float32)
    out = tmp_path / "out.csv"
    predict_csv(nncbridge.load(model), _dataset(tmp_path / "data.csv", values), out, batch_size=64)
    cells = [row[-1] for row in _rows(out)[1:]]
    assert cells[999] == "./0_0000/999.png" and cells[1000] == "./0_0001/1000.png"
    assert len(list((tmp_path / "0_0000").iterdir())) == 1000 and len(list((tmp_path / "0_0001").iterdir())) == 2
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "0_0001" / "1001.png")),
                                  _as_pixels(values[1001].reshape(2, 2)))


def test_a_failed_run_leaves_no_output_files_and_a_rerun_replaces_them(tmp_path):
    model = write_nnp(tmp_path / "m.nnp", identity_nntxt((1, 2, 2)))
    out = tmp_path / "results" / "out.csv"
    (tmp_path / "bad.csv").write_text("x__0,x__1,x__2,x__3\n" + "0.5,0.5,0.5,0.5\n" * 100 + "1,2,3,oops\n",
                                      encoding="utf-8")
    with pytest.raises(DatasetError, match="line 102"):
        predict_csv(nncbridge.load(model), tmp_path / "bad.csv", out, batch_size=8)
    assert list((tmp_path / "results").iterdir()) == []
    (tmp_path / "results" / "0_0000").mkdir()
    (tmp_path / "results" / "0_0000" / "0.png").write_bytes(b"an older run's file")
    (tmp_path / "results" / "0_0000" / "7.png").write_bytes(b"another run's file, kept")
    ones = np.ones((2, 4), np.float32)
    predict_csv(nncbridge.load(model), _dataset(tmp_path / "good.csv", ones), out)
    assert np.asarray(Image.open(tmp_path / "results" / "0_0000" / "0.png")).tolist() == [[255, 255], [255, 255]]
    assert (tmp_path / "results" / "0_0000" / "7.png").read_bytes() == b"another run's file, kept"
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["0_0000", "out.csv"]


def test_worker_processes_write_the_same_files(tmp_path):
    model = write_nnp(tmp_path / "m.nnp", identity_nntxt((2, 3)))
    values = np.random.RandomState(2).uniform(-1, 1, (40, 6)).astype(np.float32)
    data = _dataset(tmp_path / "data.csv", values)
    predict_csv(nncbridge.load(model), data, tmp_path / "threads" / "out.csv", batch_size=4)
    predict_csv(nncbridge.load(model, intra_op_num_threads=1), data, tmp_path / "procs" / "out.csv", batch_size=4,
                processes=1)
    assert _rows(tmp_path / "threads" / "out.csv") == _rows(tmp_path / "procs" / "out.csv")
    for r in range(40):
        assert (tmp_path / "threads" / "0_0000" / f"{r}.csv").read_text() == \
            (tmp_path / "procs" / "0_0000" / f"{r}.csv").read_text()


@pytest.mark.nnabla
@pytest.mark.parametrize("shape, rows", [((1, 4, 5), 1003), ((3, 2, 2), 5), ((2, 4, 5), 5), ((2, 3), 5), ((4,), 5)])
def test_same_csv_and_files_as_nnabla_cli_forward(tmp_path, shape, rows):
    model = write_nnp(tmp_path / "m.nnp", identity_nntxt(shape))
    values = np.random.RandomState(3).uniform(-0.2, 1.2, (rows, int(np.prod(shape)))).astype(np.float32)
    data = _dataset(tmp_path / "data.csv", values)
    cli = Path(sys.executable).parent / "nnabla_cli"
    (tmp_path / "nnabla").mkdir()
    done = subprocess.run([str(cli), "forward", "-c", str(model), "-d", str(data), "-o", str(tmp_path / "nnabla")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    predict_csv(nncbridge.load(model), data, tmp_path / "ours" / "output_result.csv")
    theirs = (tmp_path / "nnabla" / "output_result.csv").read_text(encoding="utf-8")
    assert (tmp_path / "ours" / "output_result.csv").read_text(encoding="utf-8") == theirs
    reference = sorted(p.relative_to(tmp_path / "nnabla") for p in (tmp_path / "nnabla").rglob("*")
                       if p.is_file() and p.name not in ("output_result.csv", "progress.txt"))
    ours = sorted(p.relative_to(tmp_path / "ours") for p in (tmp_path / "ours").rglob("*")
                  if p.is_file() and p.name != "output_result.csv")
    assert ours == reference
    for name in reference:
        if name.suffix == ".png":
            np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "ours" / name)),
                                          np.asarray(Image.open(tmp_path / "nnabla" / name)))
        else:
            assert (tmp_path / "ours" / name).read_text() == (tmp_path / "nnabla" / name).read_text()


@pytest.mark.nnabla
def test_a_convolutional_map_model_matches_nnabla_cli_forward_to_one_level(tmp_path):
    # A real network's float32 outputs differ from nnabla's by ~1e-7, so a value that sits on a
    # truncation boundary (x 255) can land one level apart; nothing else may differ.
    import nnabla as nn
    import nnabla.functions as F
    import nnabla.parametric_functions as PF
    from nnabla.utils.save import save

    digits = Path(__file__).resolve().parent.parent / "sample_projects" / "digits" / "data"
    rng = np.random.RandomState(0)
    nn.clear_parameters()
    x = nn.Variable((1, 1, 28, 28))
    h = F.relu(PF.convolution(x, 8, (3, 3), pad=(1, 1), name="conv1", rng=rng))
    y = F.sigmoid(PF.convolution(h, 3, (3, 3), pad=(1, 1), name="conv2", rng=rng) * 2.0)
    model = str(tmp_path / "maps.nnp")
    save(model, {"networks": [{"name": "MainRuntime", "batch_size": 1, "outputs": {"y'": y}, "names": {"x": x}}],
                 "executors": [{"name": "Executor", "network": "MainRuntime", "data": ["x"], "output": ["y'"]}]})
    nn.clear_parameters()
    cli = Path(sys.executable).parent / "nnabla_cli"
    (tmp_path / "nnabla").mkdir()
    done = subprocess.run([str(cli), "forward", "-c", model, "-d", str(digits / "test.csv"), "-o", str(tmp_path / "nnabla")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    predict_csv(nncbridge.load(model), digits / "test.csv", tmp_path / "ours" / "output_result.csv")
    theirs = (tmp_path / "nnabla" / "output_result.csv").read_text(encoding="utf-8")
    assert (tmp_path / "ours" / "output_result.csv").read_text(encoding="utf-8") == theirs
    pngs = sorted(p.relative_to(tmp_path / "nnabla") for p in (tmp_path / "nnabla").rglob("*.png"))
    assert len(pngs) == 297
    apart = total = 0
    for name in pngs:
        a = np.asarray(Image.open(tmp_path / "nnabla" / name), dtype=np.int16)
        b = np.asarray(Image.open(tmp_path / "ours" / name), dtype=np.int16)
        assert a.shape == b.shape == (28, 28, 3)
        assert np.abs(a - b).max() <= 1, name
        apart += int((a != b).sum())
        total += a.size
    assert apart <= total * 1e-4, f"{apart} of {total} pixel values differ by one level"


@pytest.mark.parametrize("shape, words", [((1, 4, 5), "y' is written as a PNG image per row"),
                                          ((2, 4, 5), "y' is written as 2 PNG images per row"),
                                          ((2, 3), "y' is written as a CSV file per row"), ((6,), None)])
def test_info_says_which_outputs_predict_writes_as_files(tmp_path, capsys, shape, words):
    from nncbridge.cli import main

    assert main(["info", str(write_nnp(tmp_path / "m.nnp", identity_nntxt(shape)))]) == 0
    said = [line.strip() for line in capsys.readouterr().out.splitlines() if line.strip().startswith("predict:")]
    assert said == ([f"predict: {words} (nnabla_cli forward's layout)"] if words else [])


def test_values_in_columns_instead_of_files(tmp_path):
    from nncbridge.cli import main

    model = write_nnp(tmp_path / "m.nnp", identity_nntxt((2, 2, 3)))
    values = np.random.RandomState(4).uniform(-1, 2, (3, 12)).astype(np.float32)
    data = _dataset(tmp_path / "data.csv", values)
    assert main(["predict", str(model), str(data), "-o", str(tmp_path / "out" / "o.csv"), "--values-in-columns",
                 "--quiet"]) == 0
    rows = _rows(tmp_path / "out" / "o.csv")
    assert rows[0][12:] == [f"y'__{i}" for i in range(12)]
    np.testing.assert_array_equal(np.array([r[12:] for r in rows[1:]], dtype=np.float32), values)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["o.csv"]


@pytest.mark.parametrize("shape", [(1, 0, 5), (0, 3)])
def test_empty_matrix_or_map_outputs_are_no_files(tmp_path, shape):
    model = write_nnp(tmp_path / "m.nnp", identity_nntxt(shape))
    np.save(tmp_path / "empty.npy", np.zeros(shape, np.float32))  # the only way to fill an empty input
    (tmp_path / "data.csv").write_text("x\nempty.npy\nempty.npy\n", encoding="utf-8")
    out = tmp_path / "out" / "o.csv"
    predict_csv(nncbridge.load(model), tmp_path / "data.csv", out)
    assert _rows(out) == [["x"], ["./empty.npy"], ["./empty.npy"]]
    assert [p.name for p in out.parent.iterdir()] == ["o.csv"]
