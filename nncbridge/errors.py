"""One exception family for everything nncbridge reports about models and inputs."""
from __future__ import annotations


class NncBridgeError(Exception):
    """Base class: every failure nncbridge reports on purpose is one of these."""


class FormatError(NncBridgeError):
    """The file (archive, network text, parameters) cannot be read as an NNP."""


class UnsafeArchiveError(FormatError):
    """The archive tries something hostile: path tricks, zip bombs, nested archives."""


class ModelError(NncBridgeError):
    """The model is readable but inconsistent (missing variables, bad shapes, cycles)."""


class ExecutorNotFoundError(ModelError):
    """The requested executor does not exist, or the choice is ambiguous."""


class UnsupportedFunctionError(NncBridgeError):
    """One or more layers cannot be converted or run."""


class ConversionError(NncBridgeError):
    """Exporting to ONNX failed."""


class BackendError(NncBridgeError):
    """A runtime backend is unavailable or failed."""


class InputError(NncBridgeError):
    """Data given to a predictor does not fit the model's inputs."""


class ImageTooLargeError(InputError):
    """An image has more pixels than nncbridge decodes (``nncbridge.dataset.images.MAX_IMAGE_PIXELS``)."""


class RequestError(InputError):
    """An HTTP request to the model server cannot be served; ``status`` is the HTTP status it gets."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class DatasetError(NncBridgeError):
    """A dataset CSV or one of its cells cannot be used."""


class NncBridgeWarning(UserWarning):
    """nncbridge runs a model differently from Console in a way that can change its results."""
