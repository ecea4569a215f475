"""nncbridge on a real two-node Ray cluster, on this machine and on loopback only.

Both nodes come from Ray's own multi-node test harness (``ray.cluster_utils.Cluster``) at 127.0.0.1:
with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 Ray keeps every address on loopback (without it, it swaps
127.0.0.1 for this machine's external address). The expected outputs are those of the local run.
"""
from __future__ import annotations

import csv
import ipaddress
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # read once, when Ray is first imported

import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

import nncbridge  # noqa: E402
import nncbridge.ray  # noqa: E402
from nncbridge.dataset.batch import predict_csv  # noqa: E402
from tests.models import identity_nntxt, write_nnp  # noqa: E402
from tests.serve_helpers import BINARY, IMAGES, LENET, Server  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "sample_projects" / "digits"
MODEL = DIGITS / "digits.nnp"
TEST_CSV = DIGITS / "data" / "test.csv"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    # ray.init makes SIGTERM raise SystemExit in this process; pytest's own handlers come back after
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        c.add_node(num_cpus=1)
        c.wait_for_nodes()
        ray.init(address=c.address, logging_level="ERROR", log_to_driver=False)
        yield c
    finally:
        ray.shutdown()
        c.shutdown()
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def _loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    return ipaddress.ip_address(host) in ipaddress.ip_network("127.0.0.0/8")


def _cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "nncbridge", *args], capture_output=True, text=True,
                            timeout=600, cwd=ROOT)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def _worker_pids() -> list[int]:
    """Processes of nncbridge's Ray actors (Ray titles them ``ray::RayWorker...``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"ray::RayWorker" in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:  # gone meanwhile
            pass
    return pids


def test_the_cluster_has_two_nodes_on_loopback_only(cluster):
    nodes = [n for n in ray.nodes() if n["Alive"]]
    assert len(nodes) == 2
    assert len({n["NodeID"] for n in nodes}) == 2
    for node in nodes:
        assert _loopback(node["NodeManagerAddress"]), node["NodeManagerAddress"]
        assert _loopback(f"{node['NodeManagerAddress']}:{node['ObjectManagerPort']}")
    assert _loopback(cluster.address)
    assert _loopback(ray.get_runtime_context().gcs_address)
    assert not cluster.webui_url  # no dashboard: nothing listens but what the tests use
    assert ray.cluster_resources()["CPU"] == 2


def test_predict_on_ray_writes_the_local_csv_byte_for_byte(cluster, tmp_path):
    _cli("predict", str(MODEL), str(TEST_CSV), "-o", str(tmp_path / "local.csv"))
    on_ray = _cli("predict", str(MODEL), str(TEST_CSV), "-o", str(tmp_path / "ray.csv"), "--ray", cluster.address,
                  "--batch-size", "16", "--json")
    assert (tmp_path / "ray.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
    assert '"rows": 297' in on_ray.stdout


def test_skipped_rows_and_errors_are_the_local_ones(cluster, tmp_path):
    bad = _many_digits(tmp_path / "bad.csv", 40)
    lines = bad.read_text().splitlines()
    lines[8] = "missing/none.png,3"
    lines[21] = "not an image at all,1"
    bad.write_text("\n".join(lines) + "\n")
    predictor = nncbridge.load(MODEL)
    local = predict_csv(predictor, bad, tmp_path / "local.csv", skip_errors=True, batch_size=4)
    remote = nncbridge.ray.predict_csv(predictor, bad, tmp_path / "ray.csv", skip_errors=True, batch_size=4)
    assert remote.skipped == local.skipped and len(local.skipped) == 2
    assert (tmp_path / "ray.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()

    with pytest.raises(nncbridge.NncBridgeError) as here:
        predict_csv(predictor, bad, tmp_path / "stop-local.csv")
    with pytest.raises(nncbridge.NncBridgeError) as there:
        nncbridge.ray.predict_csv(predictor, bad, tmp_path / "stop-ray.csv")
    assert str(there.value) == str(here.value) and "line 9" in str(here.value)
    assert not (tmp_path / "stop-ray.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "local.csv", "ray.csv"]  # nothing partial


def _many_digits(path: Path, rows: int) -> Path:
    """``rows`` rows cycling through the 297 test digits, by absolute path."""
    lines = TEST_CSV.read_text().splitlines()[1:]
    with open(path, "w", newline="") as f:
        f.write("x:image,y:label\n")
        for i in range(rows):
            image, label = lines[i % len(lines)].split(",")
            f.write(f"{TEST_CSV.parent / image},{label}\n")
    return path


def test_twenty_thousand_rows_spread_over_both_nodes(cluster, tmp_path):
    data = _many_digits(tmp_path / "many.csv", 20_000)
    predictor = nncbridge.load(MODEL, intra_op_num_threads=1)
    local = predict_csv(predictor, data, tmp_path / "local.csv", batch_size=128)
    remote = nncbridge.ray.predict_csv(predictor, data, tmp_path / "ray.csv", batch_size=128)
    assert local.rows == remote.rows == 20_000
    assert (tmp_path / "ray.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
    assert len(remote.nodes) == 2 and all(tasks > 0 for tasks in remote.nodes.values()), remote.nodes
    assert set(remote.nodes) == {n["NodeID"] for n in ray.nodes() if n["Alive"]}


def test_a_worker_killed_mid_run_is_restarted_and_every_row_written_once(cluster, tmp_path):
    data = _many_digits(tmp_path / "many.csv", 12_000)
    predictor = nncbridge.load(MODEL, intra_op_num_threads=1)
    predict_csv(predictor, data, tmp_path / "local.csv", batch_size=128)
    killed: list[int] = []
    written = [0]

    def progress(rows: int) -> None:
        written[0] += rows
        if not killed and written[0] >= 3_000:
            pids = _worker_pids()
            assert pids, "no RayWorker process found"
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    summary = nncbridge.ray.predict_csv(predictor, data, tmp_path / "ray.csv", batch_size=128, progress=progress)
    assert killed and killed[0] not in _worker_pids()
    assert summary.rows == 12_000
    assert (tmp_path / "ray.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()


def test_a_worker_lost_for_good_stops_the_run_without_output(cluster, tmp_path, monkeypatch):
    monkeypatch.setattr(nncbridge.ray.batch, "RETRIES", 0)
    data = _many_digits(tmp_path / "many.csv", 6_000)
    killed: list[int] = []

    def progress(rows: int) -> None:
        if not killed:
            killed.extend(_worker_pids()[:1])
            os.kill(killed[0], signal.SIGKILL)

    with pytest.raises(nncbridge.BackendError, match=r"^a worker process stopped unexpectedly \(Ray worker lost"):
        nncbridge.ray.predict_csv(nncbridge.load(MODEL), data, tmp_path / "out.csv", progress=progress)
    assert killed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["many.csv"]  # no output, nothing partial


@pytest.mark.parametrize("shape", [(2, 4, 5), (2, 3)])  # PNG per channel; a CSV matrix per row
def test_output_files_made_on_the_workers_arrive_beside_the_csv(cluster, tmp_path, shape):
    model = write_nnp(tmp_path / "m.nnp", identity_nntxt(shape))
    values = np.random.RandomState(1).uniform(-0.2, 1.2, (1_100, int(np.prod(shape)))).astype(np.float32)
    data = tmp_path / "data.csv"
    with open(data, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow([f"x__{i}" for i in range(values.shape[1])])
        writer.writerows(values.astype(str).tolist())
    predictor = nncbridge.load(model)
    predict_csv(predictor, data, tmp_path / "local" / "out.csv")
    remote = nncbridge.ray.predict_csv(predictor, data, tmp_path / "ray" / "out.csv", batch_size=50)
    assert len(remote.nodes) == 2

    def files(folder: Path) -> dict[str, bytes]:
        return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}

    local, on_ray = files(tmp_path / "local"), files(tmp_path / "ray")
    assert len(local) == 1 + 1_100 * (2 if len(shape) == 3 else 1)
    assert on_ray == local


# Ray Data's own DataContext() sets three fields it deprecates (Ray 2.60), whoever uses it
@pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")
def test_predict_dataset_adds_the_outputs_as_columns(cluster):
    predictor = nncbridge.load(MODEL)
    folder = TEST_CSV.parent
    ds = ray.data.read_csv(str(TEST_CSV)).rename_columns({"x:image": "x", "y:label": "label"})
    rows = nncbridge.ray.predict_dataset(ds, MODEL, root=folder, batch_size=40).take_all()
    assert len(rows) == 297
    rows.sort(key=lambda r: r["x"])
    expected = predictor.predict([str(folder / r["x"]) for r in rows])
    np.testing.assert_array_equal(np.stack([r["y'"] for r in rows]), expected)

    # The recipe in the README: images read by Ray Data itself, fed as uint8 pixels.
    images = ray.data.read_images(str(folder / "test"), mode="L", include_paths=True)
    rows = nncbridge.ray.predict_dataset(images, MODEL.read_bytes(), inputs={"x": "image"}).take_all()
    rows.sort(key=lambda r: r["path"])
    expected = predictor.predict([r["path"] if os.path.isabs(r["path"]) else "/" + r["path"] for r in rows])
    np.testing.assert_array_equal(np.stack([r["y'"] for r in rows]), expected)


def test_predict_dataset_names_a_missing_column(cluster):
    ds = ray.data.from_items([{"image": "a.png"}])
    with pytest.raises(nncbridge.InputError, match=r"no column 'x' for input 'Input'.*the dataset has: image"):
        nncbridge.ray.predict_dataset(ds, MODEL)


def _infer(server: Server, model: str, output: str, batch: np.ndarray, binary: bool,
           headers: dict[str, str] | None = None) -> tuple[np.ndarray, dict]:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(server.host_port)
    try:
        tensor = triton.InferInput("Input", list(batch.shape), "FP32")
        tensor.set_data_from_numpy(batch, binary_data=binary)
        # A copy each time: tritonclient adds the binary header's length to the dict it is given.
        result = client.infer(model, [tensor], outputs=[triton.InferRequestedOutput(output, binary_data=binary)],
                              headers=dict(headers or {}))
        return result.as_numpy(output), client.get_model_metadata(model, headers=dict(headers or {}))
    finally:
        client.close()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # gevent inside tritonclient
def test_serve_on_ray_answers_as_nncbridge_serve(cluster):
    from PIL import Image
    from ray import serve
    from tritonclient.utils import InferenceServerException

    batch = np.stack([np.asarray(Image.open(IMAGES / f"00{i}.png"), dtype=np.float32)[None] / 255 for i in range(1, 5)])
    models = [f"lenet={LENET}", f"binary={BINARY}"]
    here = Server(models)
    try:
        there = Server([*models, "--ray", cluster.address, "--replicas", "2"], env={"NNCBRIDGE_TOKEN": "s3cret"})
    except BaseException:
        here.stop()
        raise
    try:
        status = serve.status().applications["nncbridge"]
        assert status.status == "RUNNING"
        assert status.deployments["nncbridge"].replica_states == {"RUNNING": 2}
        token = {"Authorization": "Bearer s3cret"}  # from the environment of the command, in every replica
        for model, output in (("lenet", "Softmax"), ("binary", "Sigmoid")):
            for binary in (False, True):
                for rows in (batch, batch[1:2]):
                    assert_same = np.testing.assert_array_equal
                    want, want_meta = _infer(here, model, output, rows, binary)
                    got, got_meta = _infer(there, model, output, rows, binary, token)
                    assert_same(got, want)
                    assert got_meta == want_meta
        with pytest.raises(InferenceServerException, match="401|[Tt]oken|[Aa]uthoriz"):
            _infer(there, "lenet", "Softmax", batch, False)
    finally:
        assert there.stop() == 0, "".join(there.stderr)
        here.stop()
    assert "nncbridge" not in serve.status().applications


@pytest.mark.parametrize("command", ["predict", "serve"])
def test_without_ray_the_option_says_how_to_install_it(tmp_path, command):
    args = ["predict", str(MODEL), str(TEST_CSV), "-o", str(tmp_path / "o.csv"), "--ray"] if command == "predict" \
        else ["serve", str(MODEL), "--ray", "--replicas", "2"]
    code = f"import sys; sys.modules['ray'] = None\nfrom nncbridge.cli import main\nsys.exit(main({args!r}))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr == f'nncbridge {command}: error: Ray is not installed: pip install "nncbridge[ray]"\n'
    assert not (tmp_path / "o.csv").exists()


def test_nncbridge_ray_imports_ray_only_when_used():
    # Checking that Ray is installed must not import it either: the first import fixes which address
    # a local Ray gets (127.0.0.1 only if RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 is set by then).
    code = ("import sys, nncbridge.ray, nncbridge.cli.predict, nncbridge.cli.serve\n"
            "from nncbridge.ray.cluster import require_ray\nrequire_ray()\nprint('ray' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout == "False\n", result.stderr
