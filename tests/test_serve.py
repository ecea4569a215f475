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
from tests.serve_helpers import BINARY, IMAGES, LENET, SIN, Server

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # gevent/geventhttpclient inside tritonclient

LENET_NAME, BINARY_NAME = "lenet", "binary"


@pytest.fixture(scope="module")
def server():
    s = Server([f"{LENET_NAME}={LENET}", f"{BINARY_NAME}={BINARY}", str(SIN)])
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


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
