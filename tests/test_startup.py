"""The command line imports only what a command needs: every module a process imported is listed by
`python -X importtime` (timings are not looked at; they are for benchmarks/bench_startup.py)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import nncbridge
from tests.conftest import ROOT

LENET = ROOT / "tests" / "data" / "console-exports" / "mnist-4or9-and-lenet" / "lenet-10class-2017.nnp"
SIN = ROOT / "tests" / "data" / "console-exports" / "sin-regression"
HEAVY = ("onnx", "onnxruntime", "PIL", "h5py", "tqdm", "nnabla")


def imported_packages(*cli_args: str | Path, cwd: Path) -> set[str]:
    """The top-level packages `python -m nncbridge ARGS` imported (the command must succeed)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "nncbridge", *map(str, cli_args)],
                          cwd=cwd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert len(lines) > 50, done.stderr[-3000:]  # importtime's own report, not an empty run
    return {line.rsplit("|", 1)[1].strip().split(".")[0] for line in lines}


def test_help_and_version_import_no_numerical_package(tmp_path):
    for args in (["--help"], ["--version"]):
        loaded = imported_packages(*args, cwd=tmp_path)
        assert "nncbridge" in loaded
        assert not loaded & {*HEAVY, "numpy", "google"}, (args, sorted(loaded & {*HEAVY, "numpy", "google"}))


@pytest.mark.parametrize("command", ["info", "check"])
def test_info_and_check_import_numpy_and_protobuf_only(tmp_path, command):
    loaded = imported_packages(command, LENET, cwd=tmp_path)
    assert {"numpy", "google"} <= loaded  # reading the model needs them
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_convert_imports_neither_onnx_nor_onnxruntime(tmp_path):
    loaded = imported_packages("convert", LENET, tmp_path / "lenet.onnx", cwd=tmp_path)
    assert (tmp_path / "lenet.onnx").stat().st_size > 1000
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    # h5py only when the parameters are in .h5, onnx only when its checker is asked for
    nncbridge.write(nncbridge.read(LENET), tmp_path / "lenet-h5.nnp", parameter_format="h5")
    loaded = imported_packages("convert", tmp_path / "lenet-h5.nnp", tmp_path / "h5.onnx", "--check", cwd=tmp_path)
    assert loaded & set(HEAVY) == {"h5py", "onnx"}
    assert (tmp_path / "h5.onnx").read_bytes() == (tmp_path / "lenet.onnx").read_bytes()


def test_predict_on_numbers_imports_no_image_or_progress_package(tmp_path):
    loaded = imported_packages("predict", SIN / "result.nnp", SIN / "sin_Validation.csv", "-o", tmp_path / "out.csv",
                               cwd=tmp_path)
    assert "onnxruntime" in loaded  # the backend runs it
    assert not loaded & {"onnx", "PIL", "h5py", "tqdm", "nnabla"}, sorted(loaded & set(HEAVY))


def test_installed_version_agrees_with_importlib_metadata():
    from importlib.metadata import version

    from nncbridge.util.packages import installed_version

    for name in ("numpy", "protobuf", "onnx", "onnxruntime", "Pillow", "h5py"):
        assert installed_version(name) == version(name), name
    assert installed_version("no-such-package-here") is None
