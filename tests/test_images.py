"""Image decoding: the optional imagecodecs path must give exactly what Pillow gives, or step aside."""
from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from nncbridge.dataset import images
from nncbridge.errors import ImageTooLargeError, InputError

pytest.importorskip("imagecodecs")
RNG = np.random.RandomState(7)


def _pillow_only(path, shape, normalize=True):
    decoder = images._png_decoder
    images._png_decoder = False
    try:
        return images.image_to_array(path, shape, normalize)
    finally:
        images._png_decoder = decoder


@pytest.mark.parametrize("mode, shape", [("L", (1, 9, 7)), ("L", (9, 7)), ("RGB", (3, 9, 7))])
@pytest.mark.parametrize("interlace", [False, True])
def test_fast_path_equals_pillow(tmp_path, mode, shape, interlace):
    pixels = RNG.randint(0, 256, (9, 7, 3) if mode == "RGB" else (9, 7)).astype(np.uint8)
    path = tmp_path / "x.png"
    Image.fromarray(pixels, mode).save(path, interlace=interlace)
    assert images._plain_png_pixels(path, shape) is not None
    fast = images.image_to_array(path, shape, True)
    np.testing.assert_array_equal(fast, _pillow_only(path, shape))
    # first principles: HWC -> CHW, uint8 / 255 in float64, then float32 (nnabla's arithmetic)
    expected = (pixels.astype(np.float64) / 255.0).astype(np.float32)
    expected = expected.transpose(2, 0, 1) if mode == "RGB" else expected.reshape(shape)
    np.testing.assert_array_equal(fast, expected)


@pytest.mark.parametrize("mode, shape", [
    ("RGB", (1, 9, 7)),   # colour file, grayscale input: Pillow converts
    ("L", (3, 9, 7)),     # grayscale file, colour input
    ("P", (1, 9, 7)),     # palette
    ("LA", (1, 9, 7)),    # with alpha
    ("RGBA", (3, 9, 7)),
    ("I;16", (1, 9, 7)),  # 16-bit
    ("L", (1, 7, 9)),     # another size
])
def test_other_layouts_are_left_to_pillow(tmp_path, mode, shape):
    path = tmp_path / "x.png"
    Image.new(mode, (7, 9)).save(path)
    assert images._plain_png_pixels(path, shape) is None


def test_other_formats_and_damaged_files_are_left_to_pillow(tmp_path):
    pixels = RNG.randint(0, 256, (9, 7)).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "x.bmp")
    assert images._plain_png_pixels(tmp_path / "x.bmp", (1, 9, 7)) is None
    Image.fromarray(pixels).save(tmp_path / "good.png")
    data = (tmp_path / "good.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    assert images._plain_png_pixels(tmp_path / "cut.png", (1, 9, 7)) is None
    with pytest.raises(InputError, match="cannot read image"):
        images.image_to_array(tmp_path / "cut.png", (1, 9, 7), True)
    (tmp_path / "named.png").write_bytes((tmp_path / "x.bmp").read_bytes())  # a BMP called .png
    np.testing.assert_array_equal(images.image_to_array(tmp_path / "named.png", (1, 9, 7), True),
                                  (pixels / 255.0).astype(np.float32)[None])


def test_declared_size_over_the_pixel_limit_is_not_decoded(tmp_path, monkeypatch):
    path = tmp_path / "x.png"
    Image.new("L", (7, 9)).save(path)
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 30)  # Pillow refuses above twice its limit
    assert images._plain_png_pixels(path, (1, 9, 7)) is None
    with pytest.raises(InputError, match="larger than 30 pixels"):
        images.image_to_array(path, (1, 9, 7), True)


def test_a_chunk_of_mixed_samples_is_scaled_per_sample_from_first_principles(tmp_path):
    from nncbridge.dataset.batch import _stack_samples
    from nncbridge.dataset.csv_io import Column, cell_to_array

    eight = RNG.randint(0, 256, (9, 7)).astype(np.uint8)
    sixteen = RNG.randint(0, 65536, (9, 7)).astype(np.uint16)
    Image.fromarray(eight, "L").save(tmp_path / "a.png")
    Image.fromarray(sixteen).save(tmp_path / "b.png")
    column = Column(0, "x:image", "x", None, "image")
    samples = [cell_to_array(name, column, tmp_path, (1, 9, 7)) for name in ("a.png", "b.png", "a.png")]
    assert samples[0].dtype == np.uint8 and samples[1].dtype.kind in "ui" and samples[1].dtype != np.uint8
    for normalize, scale8, scale16 in ((True, 255.0, 65535.0), (False, 1.0, 1.0)):
        batch = _stack_samples(samples, (1, 9, 7), normalize)
        first = (eight.astype(np.float64) / scale8).astype(np.float32)[None]
        second = (sixteen.astype(np.float64) / scale16).astype(np.float32)[None]
        assert batch.dtype == np.float32 and batch.shape == (3, 1, 9, 7)
        np.testing.assert_array_equal(batch, np.stack([first, second, first]))
        eights = _stack_samples([samples[0], samples[2]], (1, 9, 7), normalize)  # the one-step path
        np.testing.assert_array_equal(eights, np.stack([first, first]))


@pytest.mark.parametrize("name", ["x\0.png", "missing.png"])
def test_unopenable_paths_are_input_errors_on_both_paths(tmp_path, name):
    path = f"{tmp_path}/{name}"
    assert images._plain_png_pixels(path, (1, 9, 7)) is None
    with pytest.raises(InputError, match="cannot read image|not found"):
        images.image_to_array(path, (1, 9, 7), True)
    with pytest.raises(InputError, match="cannot read image|not found"):
        _pillow_only(path, (1, 9, 7))


def test_files_bigger_than_one_read_are_read_whole_up_to_the_limit(tmp_path, monkeypatch):
    pixels = RNG.randint(0, 256, (200, 300, 3)).astype(np.uint8)  # noise: the PNG stays ~180 KB
    path = tmp_path / "big.png"
    Image.fromarray(pixels, "RGB").save(path)
    assert path.stat().st_size > 2 * images._FIRST_READ
    np.testing.assert_array_equal(images._plain_png_pixels(path, (3, 200, 300)), pixels)
    monkeypatch.setattr(images, "_FAST_PATH_MAX_BYTES", path.stat().st_size - 1)
    assert images._plain_png_pixels(path, (3, 200, 300)) is None
    np.testing.assert_array_equal(images.load_pixels(path, (3, 200, 300)), pixels)  # Pillow's path


def test_a_device_named_like_a_png_is_refused(tmp_path):
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    assert images._plain_png_pixels(tmp_path / "zero.png", (1, 9, 7)) is None
    with pytest.raises(InputError, match="not a regular file"):
        images.image_to_array(tmp_path / "zero.png", (1, 9, 7), True)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_an_image_over_the_pixel_limit_but_under_pillows_own_is_refused_too(tmp_path, monkeypatch):
    # Pillow refuses at twice its limit only (and warns below); nncbridge refuses at the limit
    path = tmp_path / "x.bmp"  # not a plain PNG, so Pillow decodes it
    Image.new("L", (7, 9)).save(path)
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 40)
    with pytest.raises(ImageTooLargeError, match="7x9, larger than 40 pixels"):
        images.image_to_array(path, (1, 9, 7), True)


def test_image_bytes_and_file_objects_read_as_the_file_does(tmp_path):
    pixels = np.random.RandomState(5).randint(0, 256, (9, 7)).astype(np.uint8)
    path = tmp_path / "x.png"
    Image.fromarray(pixels).save(path)
    expected = (pixels / 255.0).astype(np.float32)[None]
    for source in (path, path.read_bytes(), io.BytesIO(path.read_bytes())):
        np.testing.assert_array_equal(images.image_to_array(source, (1, 9, 7), True), expected)
    with pytest.raises(InputError, match="the image is empty"):
        images.image_to_array(b"", (1, 9, 7), True)
    Image.fromarray(pixels).save(tmp_path / "x.bmp")
    with pytest.raises(InputError, match=r"cannot read image \(PNG accepted\)"):
        images.open_image((tmp_path / "x.bmp").read_bytes(), "upload", ("PNG",))
