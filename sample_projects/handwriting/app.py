"""The handwriting demo: draw a digit in a browser, watch the two sample models read it.

    pip install "nncbridge[serve]"
    python sample_projects/handwriting/app.py [--host 127.0.0.1] [--port 8000]

Serves ``nncbridge.serve.create_app`` with ``digits`` (``../digits/digits.nnp``) and ``siamese``
(``../siamese/siamese.nnp``) and this folder's ``page/`` at ``/``. The page talks to the server
only over HTTP: it posts the drawing to ``/handwriting/prepare``, which this file adds and which
returns the 28x28 PNG of :func:`prepare.prepare_drawing`; then it posts that PNG to the server's
own ``/predict/digits`` and ``/predict/siamese`` and finds the Siamese point's nearest gallery
digits in ``page/gallery.json`` (written by ``make_gallery.py``).
"""
from __future__ import annotations

import argparse
import io
import socket
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from prepare import NothingDrawn, prepare_drawing  # noqa: E402

MODELS = {"digits": HERE.parent / "digits" / "digits.nnp", "siamese": HERE.parent / "siamese" / "siamese.nnp"}
PREPARE_PATH = "/handwriting/prepare"
MAX_DRAWING_PIXELS = 4096 * 4096


def create_handwriting_app():
    """``create_app`` with both models and the page, plus the route that prepares a drawing."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.concurrency import run_in_threadpool

    from nncbridge.serve import create_app

    app = create_app({name: str(path) for name, path in MODELS.items()}, page_dir=HERE / "page")

    def prepared_png(body: bytes) -> Response:
        from PIL import Image

        try:
            drawing = Image.open(io.BytesIO(body), formats=["PNG"])
            if drawing.width * drawing.height > MAX_DRAWING_PIXELS:
                return JSONResponse({"error": f"the drawing is {drawing.width}x{drawing.height} pixels, "
                                              f"more than {MAX_DRAWING_PIXELS:,}"}, 413)
            drawing.load()
        except Exception as e:  # noqa: BLE001 - Pillow raises many types for damaged files
            return JSONResponse({"error": f"the body is not a PNG image ({type(e).__name__})"}, 400)
        try:
            prepared = prepare_drawing(drawing)
        except NothingDrawn as e:
            return JSONResponse({"error": str(e)}, 422)
        out = io.BytesIO()
        prepared.save(out, format="PNG")
        return Response(out.getvalue(), media_type="image/png")

    async def prepare(request: Request) -> Response:
        return await run_in_threadpool(prepared_png, await request.body())  # off the event loop

    app.add_route(PREPARE_PATH, prepare, methods=["POST"])  # the page's files only answer unmatched paths
    return app


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Serve the handwriting demo page with the two sample models.")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    ap.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    args = ap.parse_args(argv)
    try:
        import uvicorn
        app = create_handwriting_app()
    except ImportError as e:
        print(f"the handwriting demo needs the serve extra: pip install \"nncbridge[serve]\" ({e})", file=sys.stderr)
        return 2
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as e:
        print(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}", file=sys.stderr)
        return 2
    sock.listen(128)
    host, port = sock.getsockname()[:2]
    print(f"handwriting demo: open http://{host if ':' not in host else f'[{host}]'}:{port}/ (Ctrl+C to stop)",
          flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
