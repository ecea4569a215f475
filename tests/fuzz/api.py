"""Fuzz for ``Predictor.predict`` / ``predict_batches``: random Python values as inputs.

``python -m tests.fuzz.api --cases 100000 [--start 0] [--backend auto|nnabla]``; tests/test_fuzz_api.py
runs a short one. Values: arrays of every shape, dtype and layout (Fortran order, strided, masked),
scalars, strings, bytes, None, nested lists and dicts, image paths (good, wrong size, missing, a
folder, not an image), PIL images of every mode, generators, memoryviews. A failure is an exception
that is not an NncBridgeError, or a result that is not float32 shaped like the output (a leading
batch dimension unless one sample was given).
"""
from __future__ import annotations

import argparse
import collections
import random
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

SHAPES = [(), (1,), (2,), (3,), (1, 3), (2, 3), (3, 2), (1, 3, 2), (3, 3, 2), (2, 1, 3, 2), (3, 2, 3), (0, 3), (0,),
          (1, 1, 3, 2), (4, 5), (5, 4, 3), (1, 2)]
DTYPES: list[Any] = [np.float32, np.float64, np.float16, np.int8, np.uint8, np.int64, np.uint16, np.bool_,
                     np.complex64, object, "U3", "S2", "datetime64[s]"]


class Fixture:
    def __init__(self, folder: Path, backend: str = "auto") -> None:
        from PIL import Image

        import nncbridge
        from tests.models import affine_nntxt, identity_nntxt, write_nnp

        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        weights = {"Affine/affine/W": np.ones((2, 3), np.float32), "Affine/affine/b": np.zeros(3, np.float32)}
        self.predictors = {
            "vector": nncbridge.load(write_nnp(folder / "v.nnp", identity_nntxt((3,))), backend=backend),
            "gray": nncbridge.load(write_nnp(folder / "g.nnp", identity_nntxt((1, 3, 2))), backend=backend),
            "rgb": nncbridge.load(write_nnp(folder / "r.nnp", identity_nntxt((3, 3, 2))), backend=backend),
            "hw": nncbridge.load(write_nnp(folder / "hw.nnp", identity_nntxt((3, 2))), backend=backend),
            "affine": nncbridge.load(write_nnp(folder / "a.nnp", affine_nntxt(2, 3), weights), backend=backend),
        }
        Image.fromarray(np.zeros((3, 2), np.uint8)).save(folder / "g.png")
        Image.fromarray(np.zeros((3, 2, 3), np.uint8)).save(folder / "r.png")
        Image.fromarray(np.zeros((5, 4), np.uint8)).save(folder / "big.png")
        self.paths = [folder / "g.png", folder / "r.png", folder / "big.png", folder / "missing.png", folder,
                      folder / "g.nnp"]


def random_value(rng: random.Random, fx: Fixture, depth: int = 0) -> Any:
    from PIL import Image

    kind = rng.randrange(22)
    if kind < 8:
        try:
            array = np.zeros(rng.choice(SHAPES), dtype=rng.choice(DTYPES))
        except (TypeError, ValueError):
            array = np.zeros(rng.choice(SHAPES))
        if rng.random() < 0.3 and array.size and array.dtype.kind == "f":
            with np.errstate(over="ignore"):  # -1e30 in float16 is -inf, which is wanted too
                array.flat[0] = rng.choice([np.nan, np.inf, -1e30])
        if rng.random() < 0.2 and array.ndim > 1:
            array = np.asfortranarray(array)
        if rng.random() < 0.1 and array.ndim >= 1 and array.shape[0] > 1:
            array = array[::2]
        return array
    if kind == 8:
        return rng.choice([None, True, 1, 1.5, "x", b"x", 1j, [], {}, (), set(), object(), float("nan")])
    if kind == 9:
        return [random_value(rng, fx, depth + 1) for _ in range(rng.randrange(4))] if depth < 2 else 1
    if kind == 10:
        keys = ["x", "Input", "y", "", "x'", 1, None]
        return {rng.choice(keys): random_value(rng, fx, depth + 1) for _ in range(rng.randrange(3))} if depth < 2 else 1
    if kind == 11:
        return str(rng.choice(fx.paths))
    if kind == 12:
        return rng.choice(fx.paths[:3])
    if kind == 13:
        return Image.open(rng.choice(fx.paths[:3]))
    if kind == 14:
        modes = ["L", "RGB", "RGBA", "P", "I", "F", "1", "LA", "I;16", "CMYK"]
        return Image.new(rng.choice(modes), rng.choice([(2, 3), (4, 5), (0, 0), (1, 1)]))
    if kind == 15:
        return [[0.0] * 3] * rng.randrange(3)
    if kind == 16:
        return np.zeros(rng.choice([(3, 2, 3), (3, 2), (3, 2, 4), (3, 2, 1), (2, 3, 2, 3)]), np.uint8)
    if kind == 17:
        return (x for x in [np.zeros(3, np.float32)])
    if kind == 18:
        return np.float32(1.0)
    if kind == 19:
        return memoryview(b"abc")
    if kind == 20:
        return np.ma.masked_array(np.zeros(3, np.float32))
    return [fx.paths[0], fx.paths[0]]


def run_case(case: int, fx: Fixture) -> str:
    """'ok' or 'rejected'; raises on a failure."""
    from nncbridge.errors import NncBridgeError

    rng = random.Random(case)
    name = rng.choice(list(fx.predictors))
    predictor = fx.predictors[name]
    value = random_value(rng, fx)
    call = rng.choice(["predict", "predict resize", "predict_batches"])
    try:
        if call == "predict_batches":
            samples = value if isinstance(value, (list, tuple)) else [value]
            results = list(predictor.predict_batches(samples, batch_size=rng.choice([1, 2, 3])))
            for r in results:
                _check(r, predictor.outputs[0].shape, batch=False)
        else:
            result = predictor.predict(value, resize=call == "predict resize")
            _check(result, predictor.outputs[0].shape, batch=None)
        return "ok"
    except NncBridgeError:
        return "rejected"


def _check(result: Any, shape: tuple[int, ...], batch: bool | None) -> None:
    assert isinstance(result, np.ndarray) and result.dtype == np.float32, f"result is {type(result)}"
    if batch is None:  # one sample or a batch: either is acceptable for an arbitrary input
        assert result.shape == shape or result.shape[1:] == shape, f"result shape {result.shape}"
    else:
        assert result.shape == shape, f"result shape {result.shape}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--backend", default="auto")
    args = parser.parse_args()
    began = time.time()
    counts: collections.Counter[str] = collections.Counter()
    with tempfile.TemporaryDirectory(prefix="nncbridge-api-fuzz-") as tmp:
        fx = Fixture(Path(tmp), args.backend)
        for case in range(args.start, args.start + args.cases):
            try:
                counts[run_case(case, fx)] += 1
            except Exception:
                counts["failure"] += 1
                print(f"FAILURE case {case}: {traceback.format_exc().strip().splitlines()[-1]}", flush=True)
    print(f"{args.cases} cases in {time.time() - began:.0f} s: {dict(counts)}", flush=True)
    return 1 if counts["failure"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
