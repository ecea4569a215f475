"""The handwriting demo (sample_projects/handwriting): the drawing's preparation against the
training recipe, the committed gallery against its script, the app as a real server process, and
the page in a real browser (Playwright driving Chromium) reading digits drawn with pointer strokes.

Set HANDWRITING_SCREENSHOT=sample_projects/handwriting/screenshot.png to refresh the README's
screenshot (otherwise it goes to a temporary folder).
"""
from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import nncbridge

from .handwriting_strokes import DIGIT_STROKES, place, render

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "sample_projects" / "handwriting"
DIGITS = ROOT / "sample_projects" / "digits"


def _load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


prepare = _load_module(DEMO / "prepare.py", "handwriting_prepare")
recipe = _load_module(ROOT / "sample_projects" / "make_digit_pngs.py", "make_digit_pngs_for_handwriting")


def _test_split() -> tuple[np.ndarray, np.ndarray]:
    """The 297 test digits as scikit-learn's 8x8 grids (grey levels 0..16) and their labels."""
    pytest.importorskip("sklearn")
    images, labels, _, test_idx = recipe.split_indices()
    return images[test_idx], labels[test_idx]


def _grid_drawn_large(grid: np.ndarray, rng: np.random.RandomState, canvas: int = 400) -> Image.Image:
    """An 8x8 grid drawn large and sharp (each cell a square of its grey level, like the black-and-
    white bitmap it was counted from) somewhere on a black canvas."""
    size = 8 * int(rng.randint(12, 46))
    big = Image.fromarray(np.rint(grid * 255 / 16).astype(np.uint8), mode="L").resize((size, size), Image.NEAREST)
    out = Image.new("L", (canvas, canvas), 0)
    out.paste(big, tuple(int(v) for v in rng.randint(0, canvas - size + 1, 2)))
    return out


# ---- prepare_drawing against the training recipe ----------------------------------------------
def test_recipe_source_drawn_large_comes_back_as_the_recipe_image():
    """A test digit's 8x8 grid drawn large anywhere on a canvas and prepared is the recipe's 28x28
    image of it, pixel for pixel, whenever the digit's ink is centred in its grid (prepare_drawing
    centres it) and its ink covers 22-40 % of it (else the strokes are widened or thinned); the
    others are read like the originals: the recognizer's accuracy on all 297 stays >= 97 %."""
    grids, labels = _test_split()
    rng = np.random.RandomState(0)
    prepared, centred, identical = [], 0, 0
    for grid in grids:
        image = np.asarray(prepare.prepare_drawing(_grid_drawn_large(grid, rng)))
        prepared.append(image)
        columns = np.flatnonzero(grid.max(axis=0) > 0)
        if 8 - (columns[-1] - columns[0] + 1) == 2 * columns[0] and 0.22 <= grid.mean() / 16 <= 0.40:
            centred += 1
            identical += np.array_equal(image, np.asarray(recipe.digit_to_image(grid)))
    assert centred > 200 and identical >= 0.97 * centred, (centred, identical)
    scores = nncbridge.load(DIGITS / "digits.nnp").predict(np.stack(prepared))
    assert float((scores.argmax(axis=1) == labels).mean()) >= 0.97


def test_prepared_image_has_the_recipe_layout():
    """Ink only inside the 20x20 box at (4, 4), touching its top and bottom (the training digits
    fill the box's height), centred left to right."""
    drawing = render(place(DIGIT_STROKES[0], 20, 60, 150), (300, 300), 14)
    prepared = np.asarray(prepare.prepare_drawing(drawing))
    assert prepared.shape == (28, 28) and prepared.dtype == np.uint8
    assert prepared[:4].max() == 0 and prepared[24:].max() == 0
    assert prepared[:, :4].max() == 0 and prepared[:, 24:].max() == 0
    rows = np.flatnonzero(prepared.max(axis=1) > 0)
    assert rows[0] == 4 and rows[-1] == 23
    columns = np.flatnonzero(prepared.max(axis=0) > 0)
    assert abs((columns[0] + columns[-1]) / 2 - 13.5) <= 1.0


def test_prepared_image_does_not_depend_on_where_or_how_large_the_digit_is_drawn():
    a = np.asarray(prepare.prepare_drawing(render(place(DIGIT_STROKES[5], 10, 10, 120), (320, 320), 12)), float)
    b = np.asarray(prepare.prepare_drawing(render(place(DIGIT_STROKES[5], 90, 40, 240), (320, 320), 24)), float)
    assert np.abs(a - b).mean() < 4


def test_thin_and_thick_strokes_come_out_like_the_training_digits():
    """Ink covers about 30 % of the 8x8 grid in the training digits; pens from hairline to marker
    end up in the range prepare_drawing aims for."""
    shares = []
    for pen in (3, 10, 24, 40):
        prepared = np.asarray(prepare.prepare_drawing(render(place(DIGIT_STROKES[8], 60, 20, 260), (320, 320), pen)))
        shares.append(prepared[4:24, 4:24].mean() / 255)
    assert all(0.15 < s < 0.5 for s in shares), shares
    assert max(shares) - min(shares) < 0.2, shares


def test_transparent_canvas_is_ink_on_black():
    opaque = render(place(DIGIT_STROKES[7], 40, 40, 200), (300, 300), 16)
    transparent = Image.new("RGBA", opaque.size, (0, 0, 0, 0))
    transparent.putalpha(opaque)
    white = Image.new("RGBA", opaque.size, (255, 255, 255, 255))
    transparent = Image.composite(white, transparent, opaque)
    np.testing.assert_array_equal(np.asarray(prepare.prepare_drawing(transparent)),
                                  np.asarray(prepare.prepare_drawing(opaque)))


def test_nothing_drawn_is_an_error():
    with pytest.raises(prepare.NothingDrawn):
        prepare.prepare_drawing(Image.new("L", (100, 100), 0))
    with pytest.raises(prepare.NothingDrawn):
        prepare.prepare_drawing(Image.new("RGBA", (100, 100), (255, 255, 255, 0)))


# ---- the committed gallery ----------------------------------------------------------------------
def test_committed_gallery_is_what_make_gallery_writes(tmp_path):
    pytest.importorskip("sklearn")
    maker = _load_module(DEMO / "make_gallery.py", "handwriting_make_gallery")
    json_path, sprite_path = maker.write_gallery(tmp_path)
    made = json.loads(json_path.read_text(encoding="utf-8"))
    committed = json.loads((DEMO / "page" / "gallery.json").read_text(encoding="utf-8"))
    assert {k: v for k, v in made.items() if k != "points"} == {k: v for k, v in committed.items() if k != "points"}
    # onnxruntime builds differ in the last bits; the file keeps 5 decimals
    np.testing.assert_allclose(np.array(made["points"]), np.array(committed["points"]), rtol=0, atol=2e-5)
    np.testing.assert_array_equal(np.asarray(Image.open(sprite_path)), np.asarray(Image.open(DEMO / "page" / "gallery.png")))
    # the labels are those of the training split the Siamese sample was trained and measured on
    assert committed["count"] == 1500 and np.bincount(committed["labels"]).tolist() == \
        [149, 152, 148, 153, 151, 152, 151, 149, 145, 150]


@pytest.mark.nnabla
def test_committed_gallery_points_are_nnabla_s(tmp_path):
    """The map's points against nnabla's own forward pass of siamese.nnp on the same digits."""
    import nnabla as nn

    pytest.importorskip("sklearn")
    nn.clear_parameters()
    maker = _load_module(DEMO / "make_gallery.py", "handwriting_make_gallery")
    digits, _ = maker.gallery_images()
    theirs = nncbridge.load(maker.MODEL, backend="nnabla").predict(digits)
    committed = json.loads((DEMO / "page" / "gallery.json").read_text(encoding="utf-8"))["points"]
    np.testing.assert_allclose(np.array(committed), theirs, rtol=0, atol=1e-4)


# ---- the app as a real process ------------------------------------------------------------------
def _get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _post(url: str, body: bytes, content_type: str = "image/png") -> tuple[int, bytes, str]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("Content-Type", "")


@pytest.fixture(scope="module")
def app_url():
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    process = subprocess.Popen([sys.executable, str(DEMO / "app.py"), "--host", "127.0.0.1", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = process.stdout.readline()  # "handwriting demo: open http://127.0.0.1:PORT/ ..."
        assert "http://127.0.0.1:" in line, line + process.stdout.read() if process.poll() is not None else line
        url = line.split("open ", 1)[1].split()[0].rstrip("/")
        deadline = time.monotonic() + 60
        while _get(f"{url}/v2/health/ready")[0] != 200:
            assert process.poll() is None and time.monotonic() < deadline, "the app did not get ready"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_app_serves_page_models_and_prepare_route(app_url):
    status, page = _get(f"{app_url}/")
    assert status == 200 and b'<canvas id="pad"' in page
    for name in ("gallery.json", "gallery.png", "app.js", "style.css"):
        assert _get(f"{app_url}/{name}")[0] == 200, name
    status, body = _get(f"{app_url}/v2/models/digits")
    assert status == 200 and json.loads(body)["name"] == "digits"
    drawing = render(place(DIGIT_STROKES[4], 50, 40, 220), (320, 320), 18)
    status, prepared, content_type = _post(f"{app_url}/handwriting/prepare", _png(drawing))
    assert status == 200 and content_type == "image/png"
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(prepared))),
                                  np.asarray(prepare.prepare_drawing(drawing)))
    status, body, _ = _post(f"{app_url}/predict/digits", prepared)
    assert status == 200 and int(np.argmax(json.loads(body)["outputs"]["y'"])) == 4
    status, body, _ = _post(f"{app_url}/predict/siamese", prepared)
    assert status == 200 and len(json.loads(body)["outputs"]["y'"]) == 2


def test_prepare_route_rejects_blank_and_broken_drawings(app_url):
    status, body, _ = _post(f"{app_url}/handwriting/prepare", _png(Image.new("L", (50, 50), 0)))
    assert status == 422 and "nothing is drawn" in json.loads(body)["error"]
    status, body, _ = _post(f"{app_url}/handwriting/prepare", b"not a png")
    assert status == 400 and "not a PNG" in json.loads(body)["error"]
    status, body, _ = _post(f"{app_url}/handwriting/prepare", _png(Image.new("1", (5000, 4000), 0)))
    assert status == 413 and "5000x4000" in json.loads(body)["error"]


# ---- the page in a real browser -----------------------------------------------------------------
def _chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser"),
                      "/usr/bin/chromium"):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install '.[test]')")
    executable = _chromium()
    if executable is None:
        pytest.skip("NO BROWSER: Chromium was not found (apt-get install chromium, or set CHROMIUM=/path); "
                    "the handwriting page was NOT tested in a browser")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


def _open(browser, url: str, **context_options):
    context = browser.new_context(viewport={"width": 1400, "height": 860}, device_scale_factor=1, **context_options)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{url}/")
    page.wait_for_selector("body[data-ready='true']", timeout=30_000)
    return context, page, errors


@pytest.fixture(scope="module")
def browser_page(browser, app_url):
    context, page, errors = _open(browser, app_url)
    yield page
    assert errors == []
    context.close()


def _strokes_on_pad(page, digit: int) -> list[list[tuple[float, float]]]:
    """The digit's strokes in page coordinates, 72 % of the pad's height, centred."""
    box = page.locator("#pad").bounding_box()
    height = box["height"] * 0.72
    strokes = place(DIGIT_STROKES[digit], box["width"] / 2 - height / 2, box["height"] * 0.14, height)
    return [[(box["x"] + x, box["y"] + y) for x, y in stroke] for stroke in strokes]


def _wait_for_answers(page) -> None:
    page.wait_for_function("document.body.dataset.analysed !== undefined && "
                           "document.body.dataset.analysed === document.body.dataset.requested", timeout=20_000)


def _draw(page, digit: int) -> None:
    """Draw with the mouse (pointer events of type "mouse")."""
    for stroke in _strokes_on_pad(page, digit):
        page.mouse.move(*stroke[0])
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(x, y)
        page.mouse.up()
    _wait_for_answers(page)


def _draw_by_touch(page, digit: int) -> None:
    """Draw with a finger: raw touch input through the DevTools protocol (pointer events of type
    "touch"), a second finger resting on the pad meanwhile, which the page must ignore."""
    session = page.context.new_cdp_session(page)
    corner = page.locator("#pad").bounding_box()
    rest = {"x": corner["x"] + 6, "y": corner["y"] + corner["height"] - 6, "id": 2}
    for stroke in _strokes_on_pad(page, digit):
        points = [{"x": x, "y": y, "id": 1} for x, y in stroke]
        session.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [points[0]]})
        session.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [points[0], rest]})
        for point in points[1:]:
            session.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point, rest]})
        session.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": [rest]})
        session.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    session.detach()
    _wait_for_answers(page)


def test_page_reads_digits_drawn_with_pointer_strokes(browser_page, tmp_path):
    page = browser_page
    read, voted = [], []
    for digit in range(10):
        page.click("#clear")
        _draw(page, digit)
        read.append(int(page.inner_text("#prediction")))
        voted.append(int(page.inner_text("#siamese-prediction")))
        assert page.locator("#scores .score").count() == 10
        assert page.locator("#neighbours .neighbour").count() == 5
        assert page.locator("#embedding #drawn-point").count() == 1
        assert page.locator("#embedding .gallery circle").count() == 1500
    print(f"drew 0-9: the recognizer read {read}, the Siamese neighbours voted {voted}")
    correct_read = sum(r == d for d, r in enumerate(read))
    correct_voted = sum(v == d for d, v in enumerate(voted))
    assert correct_read >= 9 and correct_voted >= 8, f"recognizer read {read}, Siamese voted {voted}"

    page.hover("#embedding .gallery circle >> nth=0", force=True)
    tip = page.inner_text("#map-tip").split()  # "training digit 716: a 4" (the dot on top where we point)
    labels = json.loads((DEMO / "page" / "gallery.json").read_text(encoding="utf-8"))["labels"]
    assert page.is_visible("#map-tip") and labels[int(tip[2].rstrip(":")) - 1] == int(tip[-1]), tip

    page.click("#clear")
    _draw(page, 3)
    shot = Path(os.environ.get("HANDWRITING_SCREENSHOT") or tmp_path / "screenshot.png")
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_clear_resets_everything(browser_page):
    page = browser_page
    _draw(page, 2)
    assert page.inner_text("#prediction") != ""
    page.click("#clear")
    assert page.inner_text("#prediction") == "" and page.inner_text("#siamese-prediction") == ""
    assert page.locator("#neighbours .neighbour").count() == 0
    assert page.locator("#embedding #drawn-point").count() == 0
    widths = page.eval_on_selector_all("#scores .fill", "bars => bars.map(b => b.style.width)")
    assert len(widths) == 10 and all(w in ("", "0px", "0%") for w in widths), widths
    ink = page.evaluate("""() => { const c = document.getElementById('pad');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let lit = 0; for (let i = 0; i < d.length; i += 4) lit += d[i] > 0; return lit; }""")
    assert ink == 0


def test_page_reads_a_digit_drawn_with_a_finger(browser, app_url):
    context, page, errors = _open(browser, app_url, has_touch=True)
    try:
        _draw_by_touch(page, 4)
        assert page.inner_text("#prediction") == "4" and page.locator("#embedding #drawn-point").count() == 1
        assert errors == []
    finally:
        context.close()
