"""Write a model as an ``.nnp`` archive nnabla can load: text network, protobuf or h5 parameters."""
from __future__ import annotations

import io
import os
import zipfile
from typing import Union

import numpy as np

from ..errors import FormatError
from ..model.graph import Model
from ..util.files import atomic_output
from .messages import add_parameters, model_to_message
from .schema import new_nnp_message

PathLike = Union[str, "os.PathLike[str]"]

NNP_VERSION = "0.1"
PARAMETER_FORMATS = ("protobuf", "h5")


def network_text(model: Model) -> str:
    """The model (without parameters) in protobuf text format, as ``network.nntxt``."""
    from google.protobuf import text_format

    return text_format.MessageToString(model_to_message(model))


def parameters_protobuf(model: Model) -> bytes:
    msg = new_nnp_message()
    add_parameters(model, msg)
    return msg.SerializeToString()


def parameters_h5(model: Model) -> bytes:
    """One dataset per parameter, with the ``need_grad`` and ``index`` attributes nnabla reads."""
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        for index, p in enumerate(model.parameters.values()):
            ds = h5.create_dataset(p.name, data=np.asarray(p.data, dtype=np.float32))
            ds.attrs["need_grad"] = bool(p.need_grad)
            ds.attrs["index"] = index
    return buffer.getvalue()


def write(model: Model, path: PathLike, parameter_format: str = "protobuf") -> None:
    """Write ``model`` to ``path`` as an ``.nnp`` zip; the file appears only once complete."""
    fmt = parameter_format.lower().lstrip(".")
    if fmt not in PARAMETER_FORMATS:
        raise FormatError(f"parameter format {parameter_format!r}: expected one of {', '.join(PARAMETER_FORMATS)}")
    members = {
        "nnp_version.txt": f"{NNP_VERSION}\n".encode(),
        "network.nntxt": network_text(model).encode("utf-8"),
        f"parameter.{fmt}": parameters_h5(model) if fmt == "h5" else parameters_protobuf(model),
    }
    with atomic_output(path, "wb") as f:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, data in members.items():
                archive.writestr(name, data)
