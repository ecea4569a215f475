"""The public Predictor: one executor of a Console model, behind an interchangeable backend."""
from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from .dataset.images import image_channels, image_to_array, is_image_shape, pixels_to_input
from .errors import FormatError, InputError, NncBridgeError, NncBridgeWarning
from .model.graph import divides_images_by_255

ModelSource = Union[str, "os.PathLike[str]", bytes]


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of a predictor."""

    name: str
    """The Console variable name (``Input``, ``Softmax``)."""
    data_name: str
    """The dataset column it is fed from or written to (``x``, ``y'``)."""
    shape: tuple[int, ...]
    """Shape of one sample (no batch dimension)."""
    dtype: str = "float32"
    function: str = ""
    """For an output, the type of the layer that computes it (``Softmax``, ``Sigmoid``, ``Affine``);
    empty for inputs."""

    @property
    def accepts_images(self) -> bool:
        return is_image_shape(self.shape)


def load(path: ModelSource, executor: str | None = None, backend: str = "auto", **options: Any) -> Predictor:
    return Predictor(path, executor=executor, backend=backend, **options)


class Predictor:
    """Runs one executor of a model. Thread-safe; picklable (it is rebuilt from its source).

    ``options`` go to the backend, e.g. ``intra_op_num_threads=1`` for onnxruntime.
    """

    def __init__(self, source: ModelSource, executor: str | None = None, backend: str = "auto",
                 **options: Any) -> None:
        from .format.reader import read
        from .model.expand import expand_network
        from .model.validate import repeated_evaluation_warning
        from .runtime import create_backend

        if isinstance(source, (bytes, bytearray)):
            self._source: ModelSource = bytes(source)
        else:
            self._source = os.fspath(source)
        self._executor_name = executor
        self._backend_name = backend
        self._options = dict(options)
        model = read(self._source)
        exe = model.executor(executor)
        network = expand_network(model, model.networks[exe.network], exe) if exe.network in model.networks else None
        if network is None:
            from .errors import ModelError

            raise ModelError(f"{model.source.path}: executor {exe.name!r} names a missing network {exe.network!r}")
        self.executor: str = exe.name
        self.normalize_images: bool = divides_images_by_255(model, exe)
        self.inputs: list[TensorInfo] = [
            TensorInfo(d.variable, d.data_name, _sample_shape(network.variables[d.variable].shape))
            for d in exe.data if d.variable in network.variables]
        if len(self.inputs) != len(exe.data):
            missing = [d.variable for d in exe.data if d.variable not in network.variables]
            raise InputError(f"{model.source.path}: executor {exe.name!r} input {missing[0]!r} is not in network {network.name!r}")
        repeated = repeated_evaluation_warning(exe, network)
        if repeated:
            warnings.warn(f"{model.source.path}: {repeated}", NncBridgeWarning, stacklevel=3)
        self._backend = create_backend(backend, model, exe, self._source, self._options)
        self.backend: str = self._backend.name
        producers = {name: f.type for f in network.functions for name in f.outputs}
        self.outputs: list[TensorInfo] = [
            TensorInfo(o.variable, o.data_name, _sample_shape(network.variables[o.variable].shape)
                       if o.variable in network.variables else (), function=producers.get(o.variable, ""))
            for o in exe.outputs]
        self._by_name = {i.name: i for i in self.inputs} | {i.data_name: i for i in self.inputs if i.data_name}

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, self._rebuild_arguments())

    def _rebuild_arguments(self, single_threaded: bool = False, portable: bool = False) -> tuple[Any, ...]:
        """What ``_rebuild`` needs to make this predictor again (in another process, say);
        ``single_threaded`` asks onnxruntime for one intra-op thread unless the caller chose;
        ``portable`` gives the model as ``.nnp`` bytes (for another machine) instead of a path."""
        options = dict(self._options)
        if single_threaded and self.backend == "onnxruntime":
            options.setdefault("intra_op_num_threads", 1)
        return (self.nnp_bytes() if portable else self._source, self._executor_name, self._backend_name, options)

    def nnp_bytes(self) -> bytes:
        """The model as ``.nnp`` archive bytes (a zip file's own bytes; loose parts written as one
        archive), to build the same predictor where the file is not: ``Predictor(p.nnp_bytes(),
        executor=p.executor)``."""
        import tempfile
        import zipfile

        from .format.reader import read
        from .format.writer import write

        if isinstance(self._source, bytes):
            return self._source
        if zipfile.is_zipfile(self._source):
            try:
                return Path(self._source).read_bytes()
            except OSError as e:
                raise FormatError(f"{self._source}: cannot read: {e.strerror}") from None
        with tempfile.TemporaryDirectory(prefix="nncbridge-") as folder:
            archive = Path(folder, "model.nnp")
            write(read(self._source), archive)
            return archive.read_bytes()

    def __repr__(self) -> str:
        ins = ", ".join(f"{i.name}←{i.data_name}{list(i.shape)}" for i in self.inputs)
        outs = ", ".join(f"{o.name}→{o.data_name}{list(o.shape)}" for o in self.outputs)
        return f"<Predictor {self.executor!r} backend={self.backend} inputs: {ins}; outputs: {outs}>"

    # -- prediction ---------------------------------------------------------------------------------
    def predict(self, data: Any, *, resize: bool = False) -> Any:
        """Predict one sample or a batch.

        ``data``: a numpy array (one sample shaped like the input, or a batch with a leading
        dimension), an image path / encoded image bytes / binary file object / ``PIL.Image`` /
        uint8 HWC array for image inputs, a list of
        such samples (a batch), or a dict keyed by variable or data name for several inputs.
        Returns a numpy array for one output, else a dict keyed by output variable name; a single
        sample gives results without the batch dimension.
        """
        ready = self._ready_array(data)
        feeds, single = ready if ready is not None else self._prepare(data, resize)
        results = self._run(feeds)
        if single:
            results = [r[0] for r in results]
        if len(results) == 1:
            return results[0]
        return {o.name: r for o, r in zip(self.outputs, results)}

    def _ready_array(self, data: Any) -> tuple[dict[str, np.ndarray], bool] | None:
        """Feeds for a contiguous float32 array already shaped like the only input (or a batch of
        it), skipping the general conversion; the same result as ``_prepare`` gives."""
        if type(data) is not np.ndarray or data.dtype != np.float32 or not data.flags.c_contiguous \
                or len(self.inputs) != 1:
            return None
        info = self.inputs[0]
        if data.shape == info.shape:
            return {info.name: data[None]}, True
        if data.shape[1:] == info.shape:
            return {info.name: data}, False
        return None

    def predict_batches(self, samples: Iterable[Any], batch_size: int = 64, *, resize: bool = False) -> Iterator[Any]:
        """Predict a stream of single samples, ``batch_size`` at a time; yields one result per sample."""
        if batch_size < 1:
            raise InputError(f"batch_size must be positive, got {batch_size}")
        chunk: list[Any] = []
        for sample in samples:
            chunk.append(sample)
            if len(chunk) == batch_size:
                yield from self._predict_chunk(chunk, resize)
                chunk = []
        if chunk:
            yield from self._predict_chunk(chunk, resize)

    def _predict_chunk(self, chunk: list[Any], resize: bool) -> Iterator[Any]:
        per_input: dict[str, list[np.ndarray]] = {i.name: [] for i in self.inputs}
        for sample in chunk:
            for info, value in self._assign(sample).items():
                per_input[info.name].append(self.sample_array(info, value, resize))
        results = self._run({name: np.stack(arrays) for name, arrays in per_input.items()})
        for i in range(len(chunk)):
            if len(results) == 1:
                yield results[0][i]
            else:
                yield {o.name: r[i] for o, r in zip(self.outputs, results)}

    def run_batch(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run prepared float32 batches keyed by variable name; outputs in the executor's order."""
        return self._run(dict(feeds))

    def _run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        batch = next(iter(feeds.values())).shape[0] if feeds else 0
        if batch == 0:
            return [np.empty((0,) + o.shape, dtype=np.float32) for o in self.outputs]
        return self._backend.run(feeds)

    def _assign(self, data: Any) -> dict[TensorInfo, Any]:
        if isinstance(data, Mapping):
            assigned: dict[TensorInfo, Any] = {}
            for key, value in data.items():
                info = self._by_name.get(key)
                if info is None:
                    raise InputError(f"unknown input {key!r}; inputs: " +
                                     ", ".join(f"{i.name} (data {i.data_name!r})" for i in self.inputs))
                assigned[info] = value
            missing = [i.name for i in self.inputs if i not in assigned]
            if missing:
                raise InputError(f"missing input(s) {', '.join(missing)}")
            return assigned
        if len(self.inputs) != 1:
            raise InputError(f"this model has {len(self.inputs)} inputs "
                             f"({', '.join(i.name for i in self.inputs)}): pass a dict keyed by name")
        return {self.inputs[0]: data}

    def _prepare(self, data: Any, resize: bool) -> tuple[dict[str, np.ndarray], bool]:
        feeds: dict[str, np.ndarray] = {}
        singles = set()
        for info, value in self._assign(data).items():
            batch, single = self.batch_array(info, value, resize)
            feeds[info.name] = batch
            singles.add(single)
        if len(singles) > 1:
            raise InputError("give every input as one sample, or every input as a batch")
        sizes = {a.shape[0] for a in feeds.values()}
        if len(sizes) > 1:
            raise InputError(f"inputs have different batch sizes: {sorted(sizes)}")
        return feeds, singles.pop()

    def batch_array(self, info: TensorInfo, value: Any, resize: bool = False) -> tuple[np.ndarray, bool]:
        """``value`` as a float32 batch for input ``info``, and whether it was a single sample."""
        if isinstance(value, (list, tuple)) and value and not _is_number(value[0]):
            arrays = [self.sample_array(info, v, resize) for v in value]
            return np.stack(arrays), False
        if isinstance(value, (list, tuple)) and not value:
            return np.empty((0,) + info.shape, dtype=np.float32), False
        if _is_single_image(value):
            return self.sample_array(info, value, resize)[None], True
        array = _as_numeric(info, value)
        if info.accepts_images and array.dtype == np.uint8:
            hw = info.shape[-2:]
            if array.shape[:2] == hw and array.ndim <= 3:
                return self.sample_array(info, array, resize)[None], True
            if array.ndim >= 3 and array.shape[1:3] == hw:
                return np.stack([self.sample_array(info, a, resize) for a in array]), False
        if array.shape == info.shape:
            return _float32(info, array)[None], True
        if array.shape[1:] == info.shape:
            return _float32(info, array), False
        raise InputError(f"input {info.name!r} (data {info.data_name!r}) expects shape {info.shape} for one sample "
                         f"or (N, {', '.join(map(str, info.shape))}) for a batch; got {array.shape}")

    def sample_array(self, info: TensorInfo, value: Any, resize: bool = False) -> np.ndarray:
        """One sample for input ``info`` as float32 in the input's shape."""
        what = f"input {info.name!r} (data {info.data_name!r})"
        if _is_single_image(value):
            if not info.accepts_images:
                raise InputError(f"{what} has shape {info.shape}, which does not take images")
            return image_to_array(value, info.shape, self.normalize_images, resize, what)
        array = _as_numeric(info, value)
        if info.accepts_images and array.dtype == np.uint8 and array.shape != info.shape:
            if array.shape[:2] != info.shape[-2:] or array.ndim > 3:
                if resize and array.ndim in (2, 3):
                    from PIL import Image

                    return image_to_array(Image.fromarray(array), info.shape, self.normalize_images, True, what)
                raise InputError(f"{what}: image array of shape {array.shape} does not match the input's "
                                 f"{info.shape[-2]}x{info.shape[-1]} (HxW)")
            channels, given = image_channels(info.shape), array.shape[2] if array.ndim == 3 else 1
            if given != channels:
                raise InputError(f"{what}: image array has {given} channel{'s' * (given != 1)}, "
                                 f"the input needs {channels}")
            return pixels_to_input(array, info.shape, self.normalize_images)
        if array.dtype == np.uint8 and info.accepts_images:
            return pixels_to_input(array.transpose(1, 2, 0) if array.ndim == 3 else array, info.shape,
                                   self.normalize_images)
        if array.shape != info.shape:
            raise InputError(f"{what} expects shape {info.shape} per sample, got {array.shape}")
        return _float32(info, array)


def _rebuild(source: ModelSource, executor: str | None, backend: str, options: dict[str, Any]) -> Predictor:
    return Predictor(source, executor=executor, backend=backend, **options)


def _sample_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(d) for d in shape[1:])


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.number, bool))


def _is_single_image(value: Any) -> bool:
    """A path, encoded image bytes (an upload, a database field), a binary file object or a PIL image."""
    if isinstance(value, (str, Path, os.PathLike, bytes, bytearray, memoryview)) or hasattr(value, "read"):
        return True
    try:
        from PIL import Image

        return isinstance(value, Image.Image)
    except ImportError:  # pragma: no cover
        return False


def _as_numeric(info: TensorInfo, value: Any) -> np.ndarray:
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as e:
        raise InputError(f"input {info.name!r}: cannot make an array of {type(value).__name__}: {e}") from None
    if array.dtype.kind not in "biuf":
        raise InputError(f"input {info.name!r} (data {info.data_name!r}) needs numbers, got dtype {array.dtype}")
    return array


def _float32(info: TensorInfo, array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.float32)


__all__ = ["Predictor", "TensorInfo", "load", "NncBridgeError"]
