"""nncbridge as users get it: the wheel and sdist `python -m build` makes, the wheel installed beside
nnabla into a fresh virtual environment without breaking it, and the error a broken nnabla gives."""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT
from tests.reference import image_references

MNIST = "mnist-4or9-and-lenet"
DIGITS = ROOT / "sample_projects" / "digits" / "digits.nnp"


def _run(*args: str | os.PathLike[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """A command outside the checkout (so its nncbridge cannot be imported by accident)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"{done.args}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel and the sdist, built from the checkout as `python -m build` builds them."""
    out = tmp_path_factory.mktemp("dist")
    _ok(_run(sys.executable, "-m", "build", "--outdir", out, ROOT, cwd=out, timeout=600))
    return out


@pytest.mark.slow
def test_build_makes_a_wheel_and_an_sdist_twine_accepts(dist: Path) -> None:
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1
    assert "PASSED" in _ok(_run(sys.executable, "-m", "twine", "check", "--strict", *wheels, *sdists, cwd=dist))

    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "nncbridge").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    assert {"nncbridge/py.typed", "nncbridge/format/nnabla_schema.json", "nncbridge/format/nnabla_schema.binpb",
            "nncbridge/export/onnx_subset.binpb", "nncbridge/__init__.py"} <= sources

    with tarfile.open(sdists[0]) as tar:
        top = sdists[0].name[:-len(".tar.gz")]
        members = {m.name.removeprefix(top + "/") for m in tar.getmembers() if m.isfile()}
    assert {"README.md", "LICENSE", "pyproject.toml"} <= members
    assert sources <= members, sorted(sources - members)
    stray = sorted(m for m in members if m.split("/")[0] in ("tests", ".venvs", "benchmarks", "sample_projects", "tools"))
    assert not stray, stray

    with zipfile.ZipFile(wheels[0]) as whl:
        names = set(whl.namelist())
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = whl.read(info).decode()
        entry_points = whl.read(info.replace("METADATA", "entry_points.txt")).decode()
    assert sources <= names, sorted(sources - names)
    assert not any(n.startswith(("tests/", "benchmarks/", "sample_projects/")) for n in names)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "nncbridge = nncbridge.cli:console_main" in entry_points
    for dependency in ("numpy", "protobuf", "onnx", "onnxruntime", "h5py", "Pillow", "tqdm"):
        assert re.search(rf"^Requires-Dist: {dependency}\b", metadata, re.MULTILINE | re.IGNORECASE), dependency


def _versions(python: Path, cwd: Path, *names: str) -> dict[str, str]:
    code = ("import json, sys; from importlib.metadata import version; "
            "print(json.dumps({n: version(n) for n in sys.argv[1:]}))")
    return dict(json.loads(_ok(_run(python, "-c", code, *names, cwd=cwd))))


@pytest.mark.slow
@pytest.mark.nnabla
def test_wheel_beside_nnabla_in_a_fresh_venv_runs_info_convert_and_predict(dist: Path, tmp_path: Path,
                                                                            shared_exports: Path) -> None:
    """The way a user of nnabla installs: a new venv, nnabla, then nncbridge from the wheel (not the
    checkout) with the README's command for that case, in separate pip calls. nnabla must still
    import and run; info, convert and predict run on the repository's Console exports. (Runs in the
    nnabla environment only: it installs ~300 MB of packages, from pip's cache where it can.)"""
    from importlib.metadata import version

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    nncbridge_cli = env_dir / "bin" / "nncbridge"
    pip = (python, "-m", "pip", "install", "-q", "--no-compile")
    _ok(_run(*pip, f"nnabla=={version('nnabla')}", cwd=tmp_path, timeout=600))
    pinned = _versions(python, tmp_path, "numpy", "protobuf")
    # README, section "Install": pip install "nncbridge[nnabla]" (nncbridge found among the built wheels)
    _ok(_run(*pip, "--find-links", dist, "nncbridge[nnabla]", cwd=tmp_path, timeout=600))
    assert _versions(python, tmp_path, "numpy", "protobuf") == pinned  # pip kept nnabla's pins
    _ok(_run(python, "-c", "import nnabla", cwd=tmp_path))

    where = _ok(_run(python, "-c", "import nncbridge; print(nncbridge.__file__)", cwd=tmp_path))
    assert Path(where.strip()).is_relative_to(env_dir), where  # the wheel, not the checkout
    versions = _ok(_run(nncbridge_cli, "--version", cwd=tmp_path))
    installed = _versions(python, tmp_path, "numpy", "protobuf", "onnx", "onnxruntime")
    for name, number in installed.items():
        assert f"{name} {number}" in versions.splitlines(), versions
    assert f"nnabla {version('nnabla')}" in versions.splitlines(), versions

    model = shared_exports / MNIST / "lenet-10class-2017.nnp"
    info = _ok(_run(nncbridge_cli, "info", model, cwd=tmp_path))
    assert "Executor 'Executor' runs network 'MainRuntime'" in info and "(1, 28, 28)" in info

    onnx_path = tmp_path / "lenet.onnx"
    _ok(_run(nncbridge_cli, "convert", model, onnx_path, "--check", cwd=tmp_path))
    refs = image_references(shared_exports)["lenet-10class-2017.nnp"]
    shutil.copytree(shared_exports / MNIST / "images", tmp_path / "images")
    images = [tmp_path / "images" / name for name in refs]
    expected = np.stack(list(refs.values()))
    import onnxruntime

    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    pixels = np.stack([_gray(p) for p in images])[:, None] / np.float32(255)  # Console divides by 255
    np.testing.assert_allclose(session.run(None, {"Input": pixels})[0], expected, rtol=0, atol=1e-6)

    (tmp_path / "data.csv").write_text("x:image\n" + "".join(f"images/{n}\n" for n in refs), encoding="utf-8")
    for backend in ("onnxruntime", "nnabla"):
        out = tmp_path / f"{backend}.csv"
        _ok(_run(nncbridge_cli, "predict", model, tmp_path / "data.csv", "-o", out, "--backend", backend, cwd=tmp_path))
        with open(out, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        assert rows[0] == ["x:image"] + [f"y'__{i}" for i in range(10)]
        np.testing.assert_allclose(np.array([[float(v) for v in r[1:]] for r in rows[1:]]), expected, rtol=0, atol=1e-6)


def _gray(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("L"), dtype=np.float32)


# nnabla 1.39.0's own pins (its METADATA's Requires-Dist lines for numpy and protobuf)
NNABLA_METADATA = "Metadata-Version: 2.1\nName: nnabla\nVersion: 1.39.0\nRequires-Dist: numpy ~=1.26.0\n" \
                  "Requires-Dist: protobuf ~=3.20\nRequires-Dist: pillow >=9.1.0\n"
# what `import nnabla` raises once a later pip install lifted numpy to 2.x (issue 17)
ABI_ERROR = "numpy.dtype size changed, may indicate binary incompatibility. Expected 96 from C header, got 88 from PyObject"


def test_broken_nnabla_gives_a_backend_error_saying_what_happened_and_how_to_fix_it(tmp_path):
    fake = tmp_path / "site"
    (fake / "nnabla" / "utils").mkdir(parents=True)
    (fake / "nnabla" / "__init__.py").write_text(f"raise ValueError({ABI_ERROR!r})\n", encoding="utf-8")
    (fake / "nnabla" / "utils" / "__init__.py").write_text("", encoding="utf-8")
    (fake / "nnabla-1.39.0.dist-info").mkdir()
    (fake / "nnabla-1.39.0.dist-info" / "METADATA").write_text(NNABLA_METADATA, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": f"{fake}{os.pathsep}{ROOT}"}  # the fake shadows a real nnabla
    from importlib.metadata import version

    found = f"numpy {version('numpy')} and protobuf {version('protobuf')}"
    code = ("import sys, nncbridge\n"
            "try:\n    nncbridge.load(sys.argv[1], backend='nnabla')\n"
            "except nncbridge.BackendError as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", code, str(DIGITS)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    message = _ok(done).strip()
    assert message.startswith(f"nnabla is installed but cannot be imported (ValueError: {ABI_ERROR})"), message
    assert f"nnabla 1.39.0 requires numpy~=1.26.0 and protobuf~=3.20; this environment has {found}." in message
    assert 'repair it with pip install "nncbridge[nnabla]"' in message

    csv_path = ROOT / "sample_projects" / "digits" / "data" / "test.csv"
    done = subprocess.run([sys.executable, "-m", "nncbridge", "predict", str(DIGITS), str(csv_path), "-o",
                           str(tmp_path / "out.csv"), "--backend", "nnabla"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == f"nncbridge predict: error: {message}"
    assert not (tmp_path / "out.csv").exists()
