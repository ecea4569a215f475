"""Fuzz for ``predict_csv``: random Console dataset CSVs against small models whose outputs are known.

``python -m tests.fuzz.datasets --cases 20000 [--start 0]`` runs a campaign; tests/test_fuzz_datasets.py
a short one. Each case writes a CSV (headers in several layouts, numbers, image cells naming good,
damaged, missing or odd files, quoting, BOM, CRLF, blank lines, bad UTF-8) and runs it through an
identity or vector model, on threads, with or without ``skip_errors``. Some models' outputs are maps
or matrices, which predict writes as PNG or CSV files: their names and contents are checked too
(PNG pixels: value × 255, clipped, truncated, as nnabla_cli forward writes them).

Each generated row is marked valid (its outputs are known from first principles: the numbers
themselves, or pixels / 255 in CHW order), invalid (it must stop the run, or be skipped), or
unknown (anything may happen, short of a failure). A failure is: an exception that is not an
NncBridgeError; an output or temporary file left behind by a failed run; a valid dataset refused;
an invalid row in the output; a valid row whose values differ from the expected ones.
``--processes-share`` runs some cases on a worker process (tasks of 2 rows, so the main process and
the worker both predict) instead of threads.
"""
from __future__ import annotations

import argparse
import csv
import io
import random
import re
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

VALID, INVALID, UNKNOWN = "valid", "invalid", "unknown"


@dataclass
class Row:
    cells: list[str]
    status: str
    expected: np.ndarray | None = None


@dataclass
class Case:
    model: str
    header: list[str]
    header_status: str
    rows: list[Row]
    data: bytes
    file_status: str  # INVALID when the bytes themselves are damaged (bad UTF-8)
    batch_size: int
    workers: int
    skip_errors: bool
    line_numbers: list[int] = field(default_factory=list)
    output_files: bool = True  # False: matrix and map outputs in columns (--values-in-columns)


# name: (input shape, normalize images)
MODELS: dict[str, tuple[tuple[int, ...], bool]] = {
    "vector": ((3,), True),
    "scalar": ((1,), True),
    "vector_file": ((3,), True),  # one column naming a CSV file of 3 numbers
    "gray": ((1, 3, 2), True),
    "rgb": ((3, 2, 3), True),
    "gray_raw": ((1, 3, 2), False),
    # unflattened outputs, which predict writes as files: PNG maps, CSV matrices
    "gray_png": ((1, 3, 2), True),
    "rgb_png": ((3, 2, 3), True),
    "hw_csv": ((3, 2), True),
}
FILE_OUTPUT_MODELS = {"gray_png", "rgb_png", "hw_csv"}


class Fixture:
    """Models, predictors and image files shared by every case of one process."""

    def __init__(self, folder: Path) -> None:
        from PIL import Image

        import nncbridge
        from tests.models import identity_nntxt, write_nnp

        self.folder = folder
        self.data = folder / "data"
        (self.data / "img").mkdir(parents=True)
        self.predictors = {}
        for name, (shape, normalize) in MODELS.items():
            flatten = len(shape) > 1 and name not in FILE_OUTPUT_MODELS
            path = write_nnp(folder / f"{name}.nnp", identity_nntxt(shape, no_image_normalization=not normalize,
                                                                  flatten=flatten))
            self.predictors[name] = nncbridge.load(path, intra_op_num_threads=1)
        rng = np.random.RandomState(0)
        # (relative path, status, pixels) per image kind and model layout
        self.images: dict[str, list[tuple[str, str, np.ndarray | None]]] = {"gray": [], "rgb": []}
        for layout, mode, shape in (("gray", "L", (3, 2)), ("rgb", "RGB", (2, 3, 3))):
            for i in range(4):
                pixels = rng.randint(0, 256, shape).astype(np.uint8)
                pixels[0, 0] = 0 if i % 2 else 255
                name = f"img/{layout}{i}.png"
                Image.fromarray(pixels, mode).save(self.data / name)
                self.images[layout].append((name, VALID, pixels))
            # Windows separators, which nnabla reads as slashes
            self.images[layout].append((f"img\\{layout}0.png", VALID, self.images[layout][0][2]))
            self.images[layout].append((f".\\img\\{layout}1.png", VALID, self.images[layout][1][2]))
            pixels = rng.randint(0, 256, shape).astype(np.uint8)
            for name in (f"img/{layout} with space.png", f"img/{layout},comma.png", f'img/{layout}"quote.png',
                         f"img/{layout}é.png"):
                Image.fromarray(pixels, mode).save(self.data / name)
                self.images[layout].append((name, VALID, pixels))
            Image.fromarray(pixels, mode).save(folder / f"outside_{layout}.png")
            self.images[layout].append((f"../outside_{layout}.png", VALID, pixels))
            self.images[layout].append((str(folder / f"outside_{layout}.png"), VALID, pixels))  # absolute
            other = rng.randint(0, 256, (shape[0] + 1,) + shape[1:]).astype(np.uint8)
            Image.fromarray(other, mode).save(self.data / f"img/{layout}_big.png")
            self.images[layout].append((f"img/{layout}_big.png", INVALID, None))
            Image.fromarray(pixels, mode).save(self.data / f"img/{layout}.bmp")
            self.images[layout].append((f"img/{layout}.bmp", VALID, pixels))
            Image.fromarray(pixels, mode).save(self.data / f"img/{layout}.jpg")
            self.images[layout].append((f"img/{layout}.jpg", UNKNOWN, None))  # lossy
            other_mode = "RGB" if mode == "L" else "L"
            Image.new(other_mode, (shape[1], shape[0])).save(self.data / f"img/{layout}_other_mode.png")
            self.images[layout].append((f"img/{layout}_other_mode.png", UNKNOWN, None))
        good = (self.data / "img/gray0.png").read_bytes()
        for name, content in (("empty.png", b""), ("cut.png", good[: len(good) // 2]), ("text.png", b"hello"),
                              ("flipped.png", good[:40] + bytes([good[40] ^ 0xFF]) + good[41:])):
            (self.data / "img" / name).write_bytes(content)
        (self.data / "img/dir.png").mkdir()
        self.broken = ["img/empty.png", "img/cut.png", "img/text.png", "img/dir.png", "img/missing.png",
                       "img/a\x00b.png", "img/" + "x" * 5000 + ".png"]
        self.unknown_images = ["img/flipped.png"]  # a flipped bit may still decode
        # CSV files of numbers for a (3,) input: (relative path, status, values)
        self.matrices: list[tuple[str, str, np.ndarray | None]] = []
        for name, text, status in (("row.csv", "1.5,-2,3e-3\n", VALID), ("column.csv", "1\n2\n3\n", VALID),
                                   ("bom.csv", "\ufeff4,5,6\r\n", VALID), ("blank.csv", "7,8,9\n\n", VALID),
                                   ("ragged.csv", "7,8\n9\n", INVALID),
                                   ("two.csv", "1,2\n", INVALID), ("four.csv", "1,2,3,4\n", INVALID),
                                   ("word.csv", "1,two,3\n", INVALID), ("empty.csv", "", INVALID),
                                   ("nan.csv", "nan,inf,-inf\n", VALID)):
            (self.data / "img" / name).write_text(text, encoding="utf-8")
            values = None
            if status == VALID:
                values = np.array([float(v) for v in text.lstrip("\ufeff").replace("\n", ",").split(",") if v.strip()],
                                  np.float32)
            self.matrices.append((f"img/{name}", status, values))
        self.matrices.append(("img\\" + self.matrices[0][0][len("img/"):], VALID, self.matrices[0][2]))
        # .npy arrays: their values as they are, whatever the dtype; never unpickled
        for name, array, status in (("f64.npy", np.array([0.25, -7.0, 1e-3]), VALID),
                                    ("u8.npy", np.array([[0], [128], [255]], np.uint8), VALID),
                                    ("be.npy", np.array([1, 2, 3], ">i4"), VALID),
                                    ("five.npy", np.ones(5), INVALID),
                                    ("objects.npy", np.array([1, None, "a"], dtype=object), INVALID),
                                    ("complex.npy", np.ones(3) + 1j, INVALID)):
            with open(self.data / "img" / name, "wb") as f:
                np.save(f, array, allow_pickle=array.dtype == object)
            self.matrices.append((f"img/{name}", status, array.astype(np.float32).ravel() if status == VALID else None))
        cut = (self.data / "img/f64.npy").read_bytes()[:-4]
        (self.data / "img/cut.npy").write_bytes(cut)
        self.matrices.append(("img/cut.npy", INVALID, None))
        (self.data / "img/latin1.csv").write_bytes(b"1,2,\xe93\n")
        self.matrices += [("img/latin1.csv", INVALID, None), ("img/missing.csv", INVALID, None),
                          ("img/dir.png", INVALID, None)]
        sixteen = rng.randint(0, 65536, (3, 2)).astype(np.uint16)
        Image.fromarray(sixteen).save(self.data / "img/gray16.png")
        self.images["gray"].append(("img/gray16.png", UNKNOWN, None))


def _number(rng: random.Random) -> tuple[str, str, float | None]:
    """A cell for a numeric column: (text, status, value)."""
    kind = rng.randrange(10)
    if kind < 5:
        value = float(np.float32(rng.uniform(-1e3, 1e3) * 10.0 ** rng.randint(-8, 8)))
        text = rng.choice([repr(value), f"{value:.9g}", f"{value:e}"])
        return text, VALID, float(text)
    if kind == 5:
        text = rng.choice(["0", "-0", "1", "nan", "inf", "-inf", "1e400", "-1e-400", "1E3", "+5"])
        return text, VALID, float(text)
    if kind == 6:
        return rng.choice(["abc", "", "--1", "1.2.3", "0x10", "nan!", "1,5", "e5"]), INVALID, None
    return rng.choice([" 1", "1 ", "１", "1_000", "\t2", "٣", "1\n2", '"3"']), UNKNOWN, None


def _image_cell(rng: random.Random, fx: Fixture, layout: str, shape: tuple[int, ...],
                normalize: bool) -> tuple[str, str, np.ndarray | None]:
    kind = rng.randrange(10)
    if kind < 6:
        name, status, pixels = rng.choice(fx.images[layout])
        if status != VALID or pixels is None:
            return name, status, None
        values = pixels.astype(np.float64) / (255.0 if normalize else 1.0)
        if values.ndim == 3:
            values = values.transpose(2, 0, 1)
        return name, VALID, values.astype(np.float32).reshape(shape)
    if kind < 8:
        return rng.choice(fx.broken), INVALID, None
    if kind == 8:
        return rng.choice(fx.unknown_images + ["img/gray0.PNG", "./img/gray0.png", "img//gray0.png", "img/"]), UNKNOWN, None
    return _number(rng)[0], UNKNOWN, None


def make_case(case: int, fx: Fixture) -> Case:
    rng = random.Random(case)
    model = rng.choice(list(MODELS))
    shape, normalize = MODELS[model]
    size = int(np.prod(shape))
    header_status = VALID
    extra = rng.choice([[], ["y:label"], ["#comment"], ["y:label", "z"]])
    if model == "vector":
        inputs = [f"x__{i}" for i in range(3)]
        rng.shuffle(inputs)
        if rng.random() < 0.1:
            inputs = inputs[:2]
            header_status = INVALID
        elif rng.random() < 0.1:
            inputs.append("x__3")
            header_status = INVALID
    elif model == "vector_file":
        inputs = [rng.choice(["x", "x:matrix"])]
    elif model == "scalar":
        inputs = [rng.choice(["x", "x:label", "x:value"])]
    else:
        inputs = [rng.choice(["x:image", "x"])]
    if rng.random() < 0.05:
        inputs = ["w:image"]
        header_status = INVALID
    header = inputs + extra
    rng.shuffle(header)
    rows = []
    for _ in range(rng.randint(0, 10)):
        cells = {}
        status = VALID
        expected = np.zeros(size, np.float32)
        if model in ("vector", "scalar"):
            for name in inputs:
                text, cell_status, value = _number(rng)
                cells[name] = text
                match = re.match(r"x__(\d+)$", name)
                index = int(match[1]) if match else 0
                if value is not None and index < size:
                    expected[index] = np.float32(value)
                status = _worst(status, cell_status)
        elif model == "vector_file":
            name, status, values = rng.choice(fx.matrices) if rng.random() < 0.9 else (_number(rng)[0], UNKNOWN, None)
            cells[inputs[0]] = name
            if values is not None:
                expected = values
        else:
            layout = "rgb" if model.startswith("rgb") else "gray"
            text, status, pixels = _image_cell(rng, fx, layout, shape, normalize)
            cells[inputs[0]] = text
            if pixels is not None:
                expected = pixels.ravel()
        for name in extra:
            cells[name] = rng.choice(["0", "7", "cat", "a,b", 'say "hi"', "line\nbreak", "", "é"])
        row_cells = [cells[h] for h in header]
        if rng.random() < 0.05 and len(row_cells) > 1:
            row_cells = row_cells[:-1]  # a short row
            status = _worst(status, UNKNOWN)
        rows.append(Row(row_cells, status, expected if status == VALID else None))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=rng.choice(["\n", "\r\n"]))
    writer.writerow(header)
    for row in rows:
        if rng.random() < 0.1:
            buffer.write("\n")  # a blank line: no row
        try:
            writer.writerow(row.cells)
        except csv.Error:  # Python 3.10 cannot write a NUL without an escape character
            row.cells = [c.replace("\x00", "") for c in row.cells]
            row.status = UNKNOWN
            writer.writerow(row.cells)
    text = buffer.getvalue()
    if rng.random() < 0.2:
        text = "\ufeff" + text
    data = text.encode("utf-8")
    file_status = VALID
    if rng.random() < 0.03 and len(data) > 10:
        at = rng.randrange(len(data))
        data = data[:at] + b"\xff" + data[at + 1:]
        file_status = INVALID
    case_ = Case(model, header, header_status, rows, data, file_status, rng.randint(1, 5), rng.randint(1, 3),
                 rng.random() < 0.5, output_files=rng.random() < 0.8)
    return case_


def _worst(a: str, b: str) -> str:
    order = {VALID: 0, UNKNOWN: 1, INVALID: 2}
    return a if order[a] >= order[b] else b


def run_case(case: int, fx: Fixture, workdir: Path, processes_share: float = 0.0) -> str:
    """'ok' or 'rejected'; raises AssertionError (with the case's story) on a failure.
    ``processes_share``: the fraction of cases run on a worker process (each starts one, ~0.5 s)."""
    from nncbridge.dataset import batch
    from nncbridge.errors import NncBridgeError

    c = make_case(case, fx)
    processes = 1 if random.Random(-case).random() < processes_share else 0
    dataset = fx.data / f"case{case}.csv"
    dataset.write_bytes(c.data)
    out_dir = workdir / f"out{case}"
    output = out_dir / "result.csv"
    try:
        try:
            task_rows, batch._PROCESS_TASK_ROWS = batch._PROCESS_TASK_ROWS, 2  # several tasks per case
            try:
                summary = batch.predict_csv(fx.predictors[c.model], dataset, output, batch_size=c.batch_size,
                                            output_files=c.output_files,
                                            workers=c.workers, skip_errors=c.skip_errors, processes=processes)
            finally:
                batch._PROCESS_TASK_ROWS = task_rows
        except NncBridgeError as e:
            leftovers = list(out_dir.glob("*")) if out_dir.exists() else []
            assert not leftovers, f"a failed run left files behind: {leftovers}"
            fatal = c.file_status != VALID or c.header_status != VALID
            assert fatal or any(r.status != VALID for r in c.rows), f"a valid dataset was refused: {e}"
            assert "Traceback" not in str(e)
            return "rejected"
        assert c.file_status == VALID, "a CSV with bad UTF-8 was accepted"
        assert c.header_status != INVALID, "an invalid header was accepted"
        _check_output(c, fx, dataset, output, summary)
        return "ok"
    finally:
        dataset.unlink()


def _check_output(c: Case, fx: Fixture, dataset: Path, output: Path, summary: Any) -> None:
    from PIL import Image

    from nncbridge.dataset.csv_io import output_layout

    with open(dataset, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        records = [(reader.line_num, cells) for cells in reader if cells]
    assert len(records) == len(c.rows), "the generator and csv.reader disagree on the rows"
    skipped = {int(m[1]) for message in summary.skipped for m in [re.search(r": line (\d+):", message)] if m}
    assert len(skipped) == len(summary.skipped), f"skipped rows without a line number: {summary.skipped}"
    if not c.skip_errors:
        assert not skipped
    kept = [row for (line, _), row in zip(records, c.rows) if line not in skipped]
    kept_numbers = [i for i, (line, _) in enumerate(records) if line not in skipped]  # data rows from 0
    for (line, _), row in zip(records, c.rows):
        if row.status == VALID:
            assert line not in skipped, f"valid row at line {line} was skipped: {summary.skipped}"
        if row.status == INVALID:
            assert line in skipped, f"invalid row at line {line} ({row.cells}) was not refused"
    with open(output, encoding="utf-8", newline="") as f:
        written = list(csv.reader(f))
    shape = fx.predictors[c.model].outputs[0].shape
    kind, width = output_layout(shape, c.output_files)
    assert written[0][: len(c.header)] == c.header and len(written[0]) == len(c.header) + width
    assert summary.rows == len(kept) == len(written) - 1
    files = {p.relative_to(output.parent) for p in output.parent.rglob("*") if p.is_file() and p != output}
    assert files == {Path(out[-1]) for out in written[1:]} if kind != "columns" else not files, \
        "the output folder holds other files than the rows' outputs"
    for number, row, out in zip(kept_numbers, kept, written[1:]):
        if kind != "columns":
            name = f"{number}.csv" if kind == "csv" else f"{number}.png"
            assert out[-1] == f"./0_{number // 1000:04d}/{name}", f"row {number}'s output is named {out[-1]}"
        if row.expected is None:
            continue
        if kind == "columns":
            values = np.array(out[-width:], dtype=np.float32)
            np.testing.assert_array_equal(values, row.expected, err_msg=f"row {row.cells}")
        elif kind == "csv":
            with open(output.parent / out[-1], encoding="utf-8", newline="") as f:
                matrix = np.array(list(csv.reader(f)), dtype=np.float32)
            np.testing.assert_array_equal(matrix, row.expected.reshape(shape), err_msg=f"row {row.cells}")
        else:
            # nnabla_cli forward's rule: value x 255 in float32, clipped, truncated to uint8
            sample = np.clip(row.expected.reshape(shape) * np.float32(255), 0, 255).astype(np.uint8)
            image = np.asarray(Image.open(output.parent / out[-1]))
            np.testing.assert_array_equal(image, sample.transpose(1, 2, 0) if shape[0] == 3 else sample[0],
                                          err_msg=f"row {row.cells}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=20_000)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--processes-share", type=float, default=0.0,
                        help="fraction of cases run with a worker process (slow: ~0.5 s each)")
    args = parser.parse_args()
    began = time.time()
    counts = {"ok": 0, "rejected": 0, "failure": 0}
    with tempfile.TemporaryDirectory(prefix="nncbridge-dataset-fuzz-") as tmp:
        fx = Fixture(Path(tmp) / "fixture")
        for case in range(args.start, args.start + args.cases):
            try:
                counts[run_case(case, fx, Path(tmp), args.processes_share)] += 1
            except Exception:
                counts["failure"] += 1
                print(f"FAILURE case {case}: {traceback.format_exc().strip().splitlines()[-1]}", flush=True)
            if (case - args.start + 1) % 1000 == 0:
                print(f"{case - args.start + 1} cases: {counts}", flush=True)
    print(f"{args.cases} cases in {time.time() - began:.0f} s: {counts}", flush=True)
    return 1 if counts["failure"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
