"""Tiny NNP files written from text for tests (networks in Console's nntxt layout)."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from nncbridge.format.schema import new_nnp_message


def parameter_protobuf(params: dict[str, np.ndarray]) -> bytes:
    msg = new_nnp_message()
    for name, value in params.items():
        p = msg.parameter.add(variable_name=name, need_grad=True)
        p.shape.dim.extend(value.shape)
        p.data.extend(np.asarray(value, dtype=np.float32).ravel().tolist())
    return msg.SerializeToString()


def write_nnp(path: Path, nntxt: str, params: dict[str, np.ndarray] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("nnp_version.txt", "0.1\n")
        z.writestr("network.nntxt", nntxt)
        if params:
            z.writestr("parameter.protobuf", parameter_protobuf(params))
    return path


def identity_nntxt(shape: tuple[int, ...], no_image_normalization: bool = False, flatten: bool = False) -> str:
    """The input as the output; ``flatten`` reshapes it to one vector (so that nnabla_cli forward and
    predict write its values in columns, not as image or matrix files)."""
    dims = " ".join(f"dim: {d}" for d in (-1, *shape))
    flag = "true" if no_image_normalization else "false"
    output, layers = "Identity", ""
    if flatten:
        output = "Reshape"
        layers = f"""
  variable {{ name: "Reshape" type: "Buffer" shape: {{ dim: -1 dim: {int(np.prod(shape))} }} }}
  function {{
    name: "Reshape" type: "Reshape" input: "Identity" output: "Reshape"
    reshape_param {{ shape: {{ dim: -1 dim: {int(np.prod(shape))} }} inplace: true }}
  }}"""
    return f"""
network {{
  name: "MainRuntime"
  batch_size: 1
  variable {{ name: "Input" type: "Buffer" shape: {{ {dims} }} }}
  variable {{ name: "Identity" type: "Buffer" shape: {{ {dims} }} }}
  function {{ name: "Identity" type: "Identity" input: "Input" output: "Identity" }}{layers}
}}
executor {{
  name: "Executor"
  network_name: "MainRuntime"
  no_image_normalization: {flag}
  data_variable {{ variable_name: "Input" data_name: "x" }}
  output_variable {{ variable_name: "{output}" data_name: "y'" }}
}}
"""


def affine_nntxt(in_features: int, out_features: int) -> str:
    return f"""
network {{
  name: "MainRuntime"
  batch_size: 1
  variable {{ name: "Input" type: "Buffer" shape: {{ dim: -1 dim: {in_features} }} }}
  variable {{ name: "Affine/affine/W" type: "Parameter" shape: {{ dim: {in_features} dim: {out_features} }} }}
  variable {{ name: "Affine/affine/b" type: "Parameter" shape: {{ dim: {out_features} }} }}
  variable {{ name: "Affine" type: "Buffer" shape: {{ dim: -1 dim: {out_features} }} }}
  function {{
    name: "Affine" type: "Affine"
    input: "Input" input: "Affine/affine/W" input: "Affine/affine/b" output: "Affine"
    affine_param {{ base_axis: 1 }}
  }}
}}
executor {{
  name: "Executor"
  network_name: "MainRuntime"
  data_variable {{ variable_name: "Input" data_name: "x" }}
  output_variable {{ variable_name: "Affine" data_name: "y'" }}
}}
"""
