from __future__ import annotations

import pickle
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

import nncbridge
from nncbridge.errors import InputError
from tests.models import affine_nntxt, identity_nntxt, write_nnp

RNG = np.random.RandomState(0)
W = RNG.uniform(-1, 1, (4, 3)).astype(np.float32)
B = RNG.uniform(-1, 1, (3,)).astype(np.float32)


@pytest.fixture()
def affine_model(tmp_path):
    return write_nnp(tmp_path / "affine.nnp", affine_nntxt(4, 3), {"Affine/affine/W": W, "Affine/affine/b": B})


@pytest.fixture()
def image_model(tmp_path):
    return write_nnp(tmp_path / "image.nnp", identity_nntxt((1, 4, 5)))


def expected_affine(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float64) @ W.astype(np.float64) + B


def test_inputs_and_outputs_describe_the_executor(affine_model):
    p = nncbridge.load(affine_model)
    assert p.executor == "Executor" and p.backend in ("onnxruntime", "nnabla")
    assert [(i.name, i.data_name, i.shape, i.dtype) for i in p.inputs] == [("Input", "x", (4,), "float32")]
    assert [(o.name, o.data_name, o.shape) for o in p.outputs] == [("Affine", "y'", (3,))]


def test_single_sample_and_batch(affine_model):
    p = nncbridge.load(affine_model, backend="onnxruntime")
    x = RNG.uniform(-1, 1, (5, 4)).astype(np.float32)
    batch = p.predict(x)
    assert batch.shape == (5, 3)
    np.testing.assert_allclose(batch, expected_affine(x), atol=1e-6)
    one = p.predict(x[2])
    assert one.shape == (3,)
    np.testing.assert_allclose(one, expected_affine(x[2]), atol=1e-6)
    np.testing.assert_allclose(p.predict({"x": x}), batch)
    np.testing.assert_allclose(p.predict({"Input": x}), batch)
    assert p.predict(np.empty((0, 4), np.float32)).shape == (0, 3)


@pytest.mark.parametrize("bad, words", [
    (np.zeros((2, 5), np.float32), ["'Input'", "(4,)", "(2, 5)"]),
    (np.zeros((3,), np.float32), ["(4,)", "(3,)"]),
    (np.array(["a", "b", "c", "d"]), ["dtype"]),
    ({"z": np.zeros(4)}, ["unknown input 'z'"]),
])
def test_mismatches_name_the_input_and_the_shapes(affine_model, bad, words):
    p = nncbridge.load(affine_model)
    with pytest.raises(InputError) as e:
        p.predict(bad)
    for w in words:
        assert w in str(e.value)


def test_nan_propagates_rather_than_failing(affine_model):
    p = nncbridge.load(affine_model)
    out = p.predict(np.array([np.nan, 0, 0, 0], np.float32))
    assert np.isnan(out).all()


def test_images_are_divided_by_255_like_console(image_model, tmp_path):
    p = nncbridge.load(image_model)
    pixels = RNG.randint(0, 256, (4, 5)).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    expected = (pixels.astype(np.float64) * (1.0 / 255.0)).astype(np.float32)[None]
    np.testing.assert_array_equal(p.predict(str(tmp_path / "a.png")), expected)
    np.testing.assert_array_equal(p.predict(Image.open(tmp_path / "a.png")), expected)
    np.testing.assert_array_equal(p.predict(pixels), expected)
    assert p.predict([tmp_path / "a.png", tmp_path / "a.png"]).shape == (2, 1, 4, 5)
    rgb = np.stack([pixels] * 3, axis=-1)
    np.testing.assert_array_equal(p.predict(Image.fromarray(rgb)), expected)  # converted to grayscale
    encoded = (tmp_path / "a.png").read_bytes()  # an upload or a database field: the file's bytes
    np.testing.assert_array_equal(p.predict(encoded), expected)
    with open(tmp_path / "a.png", "rb") as f:
        np.testing.assert_array_equal(p.predict(f), expected)
    np.testing.assert_array_equal(p.predict([encoded, bytearray(encoded)]), np.stack([expected, expected]))
    with pytest.raises(InputError, match="cannot read image"):
        p.predict(b"not an image")


def test_image_bytes_for_an_input_that_takes_no_images_are_an_input_error(affine_model, tmp_path):
    Image.fromarray(np.zeros((4, 5), np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(InputError, match="does not take images"):
        nncbridge.load(affine_model).predict((tmp_path / "a.png").read_bytes())


@pytest.mark.parametrize("input_shape, array_shape, words", [
    ((3, 4, 5), (4, 5), "has 1 channel, the input needs 3"),     # a grayscale array for an RGB input
    ((3, 4, 5), (4, 5, 1), "has 1 channel, the input needs 3"),
    ((1, 4, 5), (4, 5, 3), "has 3 channels, the input needs 1"),
])
def test_image_arrays_with_the_wrong_channel_count_are_input_errors(tmp_path, input_shape, array_shape, words):
    p = nncbridge.load(write_nnp(tmp_path / "m.nnp", identity_nntxt(input_shape)))
    with pytest.raises(InputError, match=words):
        p.predict(np.zeros(array_shape, np.uint8))


def test_image_arrays_with_a_channel_axis_of_one_fill_a_grayscale_input(tmp_path):
    p = nncbridge.load(write_nnp(tmp_path / "m.nnp", identity_nntxt((1, 4, 5))))
    pixels = RNG.randint(0, 256, (4, 5)).astype(np.uint8)
    expected = (pixels.astype(np.float64) / 255.0).astype(np.float32)[None]
    np.testing.assert_array_equal(p.predict(pixels[:, :, None]), expected)


def test_no_image_normalization_keeps_0_255(tmp_path):
    path = write_nnp(tmp_path / "raw.nnp", identity_nntxt((1, 4, 5), no_image_normalization=True))
    pixels = RNG.randint(0, 256, (4, 5)).astype(np.uint8)
    np.testing.assert_array_equal(nncbridge.load(path).predict(pixels), pixels[None].astype(np.float32))


def test_wrong_image_size_is_an_error_unless_resize_is_asked(image_model, tmp_path):
    Image.fromarray(np.zeros((8, 10), np.uint8)).save(tmp_path / "big.png")
    p = nncbridge.load(image_model)
    with pytest.raises(InputError, match="10x8"):
        p.predict(tmp_path / "big.png")
    assert p.predict(tmp_path / "big.png", resize=True).shape == (1, 4, 5)


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00"])
def test_empty_and_truncated_images(image_model, tmp_path, content):
    (tmp_path / "bad.png").write_bytes(content)
    with pytest.raises(InputError, match="cannot read image"):
        nncbridge.load(image_model).predict(tmp_path / "bad.png")


def test_missing_image_file(image_model, tmp_path):
    with pytest.raises(InputError, match="not found"):
        nncbridge.load(image_model).predict(tmp_path / "nope.png")


def test_predict_batches_streams_in_order(affine_model):
    p = nncbridge.load(affine_model)
    x = RNG.uniform(-1, 1, (103, 4)).astype(np.float32)
    results = list(p.predict_batches((row for row in x), batch_size=10))
    assert len(results) == 103
    np.testing.assert_allclose(np.stack(results), expected_affine(x), atol=1e-6)


def test_pickle_rebuilds_from_the_source(affine_model):
    p = nncbridge.load(affine_model)
    q = pickle.loads(pickle.dumps(p))
    x = RNG.uniform(-1, 1, (2, 4)).astype(np.float32)
    np.testing.assert_array_equal(p.predict(x), q.predict(x))
    r = pickle.loads(pickle.dumps(nncbridge.load(affine_model.read_bytes())))
    np.testing.assert_array_equal(p.predict(x), r.predict(x))


def test_sixteen_threads_match_serial_calls(affine_model):
    p = nncbridge.load(affine_model, intra_op_num_threads=1)
    inputs = [RNG.uniform(-1, 1, (7, 4)).astype(np.float32) for _ in range(64)]
    serial = [p.predict(x) for x in inputs]
    barrier = threading.Barrier(16)

    def call(i: int) -> np.ndarray:
        if i < 16:
            barrier.wait()
        return p.predict(inputs[i])

    with ThreadPoolExecutor(16) as pool:
        parallel = list(pool.map(call, range(64)))
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)
