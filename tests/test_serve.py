"""``nncbridge serve``: a real server process on a free 127.0.0.1 port, spoken to with the unmodified
tritonclient (JSON and binary tensors) and httpx. Expected values are nnabla's reference outputs
(tests/data/console-exports/README.md) or Predictor's own preprocessing, never the server's output."""
from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from PIL import Image

import nncbridge
from tests.reference import image_references, sin_references
from tests.serve_helpers import BINARY, IMAGES, LENET, SIN, Server, client_fixture, png_bytes, server_fixture

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # gevent/geventhttpclient inside tritonclient

LENET_NAME, BINARY_NAME = "lenet", "binary"


server = server_fixture(f"{LENET_NAME}={LENET}", f"{BINARY_NAME}={BINARY}", str(SIN))
client = client_fixture()


@pytest.fixture(scope="module")
def references(shared_exports):
    return image_references(shared_exports)


def digit_pixels(name: str) -> np.ndarray:
    return np.asarray(Image.open(IMAGES / name), dtype=np.uint8)


def digits_batch(names: list[str]) -> np.ndarray:
    """The images as Console feeds them: 8-bit gray divided by 255, (N, 1, 28, 28)."""
    return np.stack([digit_pixels(n).astype(np.float64)[None] / 255.0 for n in names]).astype(np.float32)


IMAGE_NAMES = ["001.png", "002.png", "003.png", "004.png"]


# -- Open Inference Protocol v2 with tritonclient -------------------------------------------------------
def test_tritonclient_health_and_metadata(server):
    c = triton.InferenceServerClient(server.host_port)
    assert c.is_server_live() and c.is_server_ready()
    assert c.is_model_ready(LENET_NAME) and c.is_model_ready("result")
    assert not c.is_model_ready("nope")
    assert c.get_server_metadata()["name"] == "nncbridge"
    meta = c.get_model_metadata(LENET_NAME)
    # Console's variable names and per-sample shapes (the shared exports README), -1 for the batch
    assert meta["inputs"] == [{"name": "Input", "datatype": "FP32", "shape": [-1, 1, 28, 28]}]
    assert meta["outputs"] == [{"name": "Softmax", "datatype": "FP32", "shape": [-1, 10]}]
    assert c.get_model_metadata("result")["outputs"] == [{"name": "Affine_3", "datatype": "FP32", "shape": [-1, 1]}]
    config = c.get_model_config(BINARY_NAME)
    assert config["max_batch_size"] == 32 and config["input"][0]["dims"] == [1, 28, 28]
    names = {m["name"] for m in c.get_model_repository_index()}
    assert names == {LENET_NAME, BINARY_NAME, "result"}
    c.close()


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("model", [LENET_NAME, BINARY_NAME])
def test_tritonclient_infer_matches_nnabla(server, references, binary, model):
    refs = references["lenet-10class-2017.nnp" if model == LENET_NAME else "binary-4or9-2018.nnp"]
    output = "Softmax" if model == LENET_NAME else "Sigmoid"
    c = triton.InferenceServerClient(server.host_port)
    batch = digits_batch(IMAGE_NAMES)
    for rows in (batch, batch[2:3]):  # a batch of four in one request, and one sample
        tensor = triton.InferInput("Input", list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows, binary_data=binary)
        result = c.infer(model, [tensor], outputs=[triton.InferRequestedOutput(output, binary_data=binary)],
                         request_id="request-17")
        got = result.as_numpy(output)
        want = np.stack([refs[n] for n in IMAGE_NAMES])[: len(rows)] if len(rows) == 4 else refs["003.png"][None]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
        assert result.get_response()["id"] == "request-17"
        assert result.get_response()["model_name"] == model
    c.close()


def test_tritonclient_classification_extension(server, references):
    c = triton.InferenceServerClient(server.host_port)
    tensor = triton.InferInput("Input", [4, 1, 28, 28], "FP32")
    tensor.set_data_from_numpy(digits_batch(IMAGE_NAMES), binary_data=True)
    result = c.infer(LENET_NAME, [tensor], outputs=[triton.InferRequestedOutput("Softmax", class_count=2)])
    top = result.as_numpy("Softmax")
    refs = references["lenet-10class-2017.nnp"]
    for name, row in zip(IMAGE_NAMES, top):
        order = np.argsort(-refs[name])[:2]  # nnabla's two highest scores, highest first
        assert [int(item.decode().split(":")[1]) for item in row] == order.tolist()
        assert float(row[0].decode().split(":")[0]) == pytest.approx(refs[name][order[0]], abs=1e-6)
    c.close()


# -- the Console-friendly endpoint -------------------------------------------------------------------
def test_predict_png_body_and_multipart_match_nnabla(client, references):
    refs = references["lenet-10class-2017.nnp"]
    for name in IMAGE_NAMES:
        data = (IMAGES / name).read_bytes()
        raw = client.post(f"/predict/{LENET_NAME}", content=data, headers={"Content-Type": "image/png"})
        form = client.post(f"/predict/{LENET_NAME}", files={"x": (name, data, "image/png")})
        for response in (raw, form):
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["model_name"] == LENET_NAME and list(body["outputs"]) == ["y'"]
            np.testing.assert_allclose(body["outputs"]["y'"], refs[name], rtol=0, atol=1e-6)


def test_predict_json_vector_model_matches_nnabla(client, shared_exports):
    for x, _, want in sin_references(shared_exports)[:3]:
        for key in ("x", "Input"):  # data name or variable name
            response = client.post("/predict/result", json={key: [x]})
            assert response.status_code == 200, response.text
            assert response.json()["outputs"]["y'"] == pytest.approx([want], abs=1e-6)


def test_predict_jpeg_is_decoded_like_predictor(client, tmp_path):
    path = tmp_path / "digit.jpg"
    Image.open(IMAGES / "004.png").save(path, quality=90)
    want = nncbridge.load(LENET).predict(str(path))
    response = client.post(f"/predict/{LENET_NAME}", content=path.read_bytes(), headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 200, response.text
    assert np.array_equal(np.float32(response.json()["outputs"]["y'"]), want)


def test_models_listing_for_the_page(client):
    models = {m["name"]: m for m in client.get("/models").json()["models"]}
    assert models[LENET_NAME]["inputs"] == [{"name": "Input", "data_name": "x", "shape": [1, 28, 28],
                                             "image": True, "channels": 1}]
    assert models["result"]["inputs"][0]["image"] is False


def test_page_is_served_offline(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for asset in ("app.js", "style.css"):
        assert client.get(f"/{asset}").status_code == 200
    assert "http://" not in page.text and "https://" not in page.text  # nothing from a CDN
    assert "https://" not in client.get("/app.js").text


def test_metrics_count_requests_and_batches(client):
    client.post(f"/predict/{LENET_NAME}", content=(IMAGES / "001.png").read_bytes(), headers={"Content-Type": "image/png"})
    text = client.get("/metrics").text
    assert f'nncbridge_requests_total{{endpoint="predict",model="{LENET_NAME}",status="200"}}' in text
    assert f'nncbridge_batch_size_count{{model="{LENET_NAME}"}}' in text
    assert "nncbridge_request_duration_seconds_bucket" in text
    json.dumps(text)  # plain text


# -- a model with two inputs (an RGB image and a vector) and two outputs: preprocessing from first principles
TWO_INPUTS = """
network {
  name: "MainRuntime"
  batch_size: 1
  variable { name: "Image" type: "Buffer" shape: { dim: -1 dim: 3 dim: 8 dim: 6 } }
  variable { name: "Vector" type: "Buffer" shape: { dim: -1 dim: 2 } }
  variable { name: "ImageOut" type: "Buffer" shape: { dim: -1 dim: 3 dim: 8 dim: 6 } }
  variable { name: "VectorOut" type: "Buffer" shape: { dim: -1 dim: 2 } }
  function { name: "ImageOut" type: "Identity" input: "Image" output: "ImageOut" }
  function { name: "VectorOut" type: "Identity" input: "Vector" output: "VectorOut" }
}
executor {
  name: "Executor"
  network_name: "MainRuntime"
  data_variable { variable_name: "Image" data_name: "x" }
  data_variable { variable_name: "Vector" data_name: "x2" }
  output_variable { variable_name: "ImageOut" data_name: "y" }
  output_variable { variable_name: "VectorOut" data_name: "y2" }
}
"""


@pytest.fixture(scope="module")
def two_input_server(tmp_path_factory):
    from tests.models import write_nnp

    path = write_nnp(tmp_path_factory.mktemp("serve") / "pair.nnp", TWO_INPUTS)
    s = Server([str(path)])
    yield s
    s.stop()


def test_two_inputs_by_form_and_v2(two_input_server):
    rng = np.random.RandomState(5)
    pixels = rng.randint(0, 256, (8, 6, 3), dtype=np.uint8)
    png = png_bytes(Image.fromarray(pixels))
    # Console: 8-bit values times 1/255 (in float64, then float32), channels first
    want_image = (pixels.transpose(2, 0, 1).astype(np.float64) * (1.0 / 255.0)).astype(np.float32)
    with httpx.Client(base_url=two_input_server.url, timeout=30) as c:
        r = c.post("/predict/pair", files={"x": ("p.png", png, "image/png"), "x2": (None, "[1.5, -2]")})
        assert r.status_code == 200, r.text
        outputs = r.json()["outputs"]
        assert list(outputs) == ["y", "y2"]
        assert np.array_equal(np.float32(outputs["y"]), want_image)
        assert outputs["y2"] == [1.5, -2.0]
        gray = Image.fromarray(pixels[:, :, 0])  # a grayscale image for an RGB input: R = G = B
        r = c.post("/predict/pair", files={"Image": ("g.png", png_bytes(gray), "image/png"), "Vector": (None, "[0, 0]")})
        assert np.array_equal(np.float32(r.json()["outputs"]["y"]),
                              np.repeat(want_image[:1], 3, axis=0)), r.text
        r = c.post("/predict/pair", json={"x2": [1, 2], "x": want_image.tolist()})
        assert r.status_code == 200 and np.array_equal(np.float32(r.json()["outputs"]["y"]), want_image)
        r = c.post("/predict/pair", files={"x": ("p.png", png, "image/png")})
        assert r.status_code == 400 and "missing input(s) 'x2'" in r.json()["error"]
        r = c.post("/predict/pair", content=png, headers={"Content-Type": "image/png"})
        assert r.status_code == 400 and "2 inputs" in r.json()["error"]
    client = triton.InferenceServerClient(two_input_server.host_port)
    image = triton.InferInput("Image", [2, 3, 8, 6], "FP32")
    image.set_data_from_numpy(np.stack([want_image, want_image * 2]), binary_data=True)
    vector = triton.InferInput("Vector", [2, 2], "FP32")
    vector.set_data_from_numpy(np.float32([[1, 2], [3, 4]]), binary_data=False)
    result = client.infer("pair", [vector, image], outputs=[triton.InferRequestedOutput("VectorOut")])
    assert result.as_numpy("ImageOut") is None  # only the requested output comes back
    assert np.array_equal(result.as_numpy("VectorOut"), np.float32([[1, 2], [3, 4]]))
    client.close()


# -- the Python API ----------------------------------------------------------------------------------------
def test_create_app_in_process_with_a_predictor_and_page_dir(tmp_path):
    import asyncio

    from nncbridge.serve import create_app

    (tmp_path / "index.html").write_text("<h1>my digits page</h1>")
    (tmp_path / "extra.css").write_text("h1 {}")
    predictor = nncbridge.load(LENET)
    app = create_app({"digits": predictor}, page_dir=tmp_path, max_batch_size=4)

    async def use() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as c:
            assert (await c.get("/")).text == "<h1>my digits page</h1>"
            assert (await c.get("/extra.css")).text == "h1 {}"
            assert "nncbridge" in (await c.get("/app.js")).text  # the built-in page's files are still there
            assert (await c.get("/missing.js")).status_code == 404
            digit = (IMAGES / "002.png").read_bytes()
            r = await c.post("/predict/digits", content=digit, headers={"Content-Type": "image/png"})
            assert np.array_equal(np.float32(r.json()["outputs"]["y'"]), predictor.predict(str(IMAGES / "002.png")))

    asyncio.run(use())
    asyncio.run(use())  # a second event loop: the app serves on it too


def test_create_app_refuses_bad_settings(tmp_path):
    from nncbridge.serve import create_app

    with pytest.raises(nncbridge.InputError, match="cannot be used in a URL"):
        create_app({"my model": LENET})
    with pytest.raises(nncbridge.InputError, match="max_batch_size"):
        create_app({"m": LENET}, max_batch_size=0)
    with pytest.raises(nncbridge.InputError, match="no models"):
        create_app({})
    with pytest.raises(nncbridge.InputError, match="not a folder"):
        create_app({"m": LENET}, page_dir=tmp_path / "nope")
    with pytest.raises(nncbridge.FormatError):
        create_app({"m": tmp_path / "missing.nnp"})


def test_import_nncbridge_does_not_import_the_server():
    import subprocess
    import sys

    code = ("import sys, json, nncbridge, nncbridge.serve, nncbridge.cli; nncbridge.cli.build_parser(); "
            "print(json.dumps([m for m in ('fastapi', 'starlette', 'uvicorn', 'prometheus_client') if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_cli_errors_and_help():
    import subprocess
    import sys

    def run(*args):
        return subprocess.run([sys.executable, "-m", "nncbridge", "serve", *args], capture_output=True, text=True,
                              timeout=120)

    done = run("--help")
    assert done.returncode == 0 and "--max-batch-size" in done.stdout and "NNCBRIDGE_TOKEN" in done.stdout
    done = run("missing.nnp", "--port", "0")
    assert done.returncode == 2 and "missing.nnp" in done.stderr and "Traceback" not in done.stderr
    done = run(f"a={LENET}", f"a={BINARY}", "--port", "0")
    assert done.returncode == 2 and "two models are named 'a'" in done.stderr
    done = run(str(LENET), "--max-body", "lots")
    assert done.returncode == 2 and "not a size" in done.stderr


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_tritonclient_compressed_requests(server, references, algorithm):
    c = triton.InferenceServerClient(server.host_port)
    tensor = triton.InferInput("Input", [4, 1, 28, 28], "FP32")
    tensor.set_data_from_numpy(digits_batch(IMAGE_NAMES), binary_data=True)
    result = c.infer(LENET_NAME, [tensor], request_compression_algorithm=algorithm,
                     response_compression_algorithm=algorithm)  # the server may answer uncompressed
    refs = references["lenet-10class-2017.nnp"]
    np.testing.assert_allclose(result.as_numpy("Softmax"), np.stack([refs[n] for n in IMAGE_NAMES]), rtol=0, atol=1e-6)
    c.close()


def test_served_models_let_onnxruntime_threads_sleep():
    """onnxruntime's threads would spin between calls, taking the cores the event loop needs."""
    from nncbridge.serve import create_app

    app = create_app({"m": LENET})
    predictor = app.state.models["m"].predictor
    assert predictor.backend == "onnxruntime"
    session = predictor._backend.session
    assert session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
    x = digits_batch(IMAGE_NAMES)
    assert np.array_equal(predictor.predict(x), nncbridge.load(LENET).predict(x))
