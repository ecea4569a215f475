"""nncbridge: use Neural Network Console (.nnp) models from plain Python, without nnabla."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    BackendError,
    ConversionError,
    DatasetError,
    ExecutorNotFoundError,
    FormatError,
    InputError,
    ModelError,
    NncBridgeError,
    NncBridgeWarning,
    UnsafeArchiveError,
    UnsupportedFunctionError,
)

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .evaluation import Evaluation
    from .model.graph import Model
    from .model.validate import Problem
    from .predictor import Predictor, TensorInfo

__all__ = [
    "BackendError", "ConversionError", "DatasetError", "ExecutorNotFoundError", "FormatError", "InputError",
    "ModelError", "NncBridgeError", "NncBridgeWarning", "UnsafeArchiveError", "UnsupportedFunctionError",
    "read", "write", "check", "to_onnx", "load", "__version__",
    "Predictor", "TensorInfo", "Model", "Problem",
    "evaluate", "evaluate_predictions", "Evaluation",
]

# The classes the functions below return, for annotations and isinstance; imported on first use so
# that `import nncbridge` stays light.
_CLASS_MODULES = {"Predictor": "predictor", "TensorInfo": "predictor", "Model": "model.graph",
                  "Problem": "model.validate", "Evaluation": "evaluation"}


def __getattr__(name: str) -> Any:
    module = _CLASS_MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'nncbridge' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{module}", __name__), name)


def read(source: Any) -> Model:
    """Read an ``.nnp`` archive, loose NNP parts (list of paths) or a folder of parts."""
    from .format.reader import read as _read

    return _read(source)


def write(model: Model, path: Any, parameter_format: str = "protobuf") -> None:
    """Write a model as an ``.nnp`` archive (text network, ``protobuf`` or ``h5`` parameters)."""
    from .format.writer import write as _write

    _write(model, path, parameter_format)


def to_onnx(model_or_path: Any, executor: str | None = None, opset: int | None = None,
            batch_size: int | None = None) -> Any:
    """Convert one executor of a model to an ``onnx.ModelProto`` (see ``nncbridge convert``)."""
    from .export.onnx_export import to_onnx as _to_onnx

    return _to_onnx(model_or_path, executor, opset, batch_size)


def check(model_or_path: Any) -> list[Problem]:
    """Validate every network and executor; returns the problems and warnings found."""
    from .model.validate import check as _check

    return _check(model_or_path)


def load(path: Any, executor: str | None = None, backend: str = "auto", **options: Any) -> Predictor:
    """A Predictor for one executor of a model (``backend``: "auto", "onnxruntime" or "nnabla")."""
    from .predictor import load as _load

    return _load(path, executor=executor, backend=backend, **options)


def evaluate(model: Any, dataset: Any, output_dir: Any = None, *, task: str = "auto", batch_size: int = 64,
             workers: int | None = None, processes: int = 0, skip_errors: bool = False,
             progress: Any = None, plots: bool = True) -> Evaluation:
    """Run a model (path or Predictor) over a labelled dataset CSV and score each output ``y'``
    against its label ``y`` with Console's Evaluation-tab measures (see ``nncbridge evaluate``)."""
    from .evaluation import evaluate as _evaluate

    return _evaluate(model, dataset, output_dir, task=task, batch_size=batch_size, workers=workers,
                     processes=processes, skip_errors=skip_errors, progress=progress, plots=plots)


def evaluate_predictions(predictions: Any, output_dir: Any = None, *, task: str = "auto",
                         skip_errors: bool = False, plots: bool = True) -> Evaluation:
    """The same scores from an output CSV with labels (ours or Console's), without running a model."""
    from .evaluation import evaluate_predictions as _evaluate_predictions

    return _evaluate_predictions(predictions, output_dir, task=task, skip_errors=skip_errors, plots=plots)
