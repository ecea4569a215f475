"""The NNP protobuf schema, built at run time from a table of nnabla's field names and numbers.

Generated ``*_pb2`` modules are tied to the protobuf release that generated them, while
nncbridge must run on protobuf 3.20 (nnabla's pin) and 7.x alike.  A ``FileDescriptorProto``
assembled here and registered in a private ``DescriptorPool`` works on both, and yields
message classes that parse and print binary and text encodings with protobuf's own code.

Message and field names and numbers match nnabla's ``nnabla.proto``; the function and
solver parameter messages come from ``nnabla_schema.json`` (see tools/update_function_table.py).
The assembled descriptor is stored serialized as ``nnabla_schema.binpb`` (tools/store_descriptors.py),
which is what nncbridge loads.
"""
from __future__ import annotations

import functools
import json
import os
from typing import TYPE_CHECKING, Any

from ..util.descriptors import load_stored_descriptor

if TYPE_CHECKING:
    from google.protobuf import descriptor_pb2

PACKAGE_FILE = "nncbridge_nnabla.proto"

# message | field:number:type ...   ("*" = repeated, "map<K,V>" = map, "@oneof" suffix)
_CORE_MESSAGES = """
Shape | dim:1:*int64
Communicator |
Context | backends:1:*string array_class:2:string device_id:3:string backend:4:string compute_backend:5:string
NNablaProtoBuf | version:1:string global_config:2:GlobalConfig training_config:10:TrainingConfig network:100:*Network parameter:200:*Parameter dataset:300:*Dataset optimizer:400:*Optimizer monitor:500:*Monitor executor:600:*Executor
GlobalConfig | default_context:1:Context
TrainingConfig | max_epoch:1:int64 iter_per_epoch:2:int64 save_best:100:bool monitor_interval:200:int64
Network | name:1:string batch_size:10:int64 repeat_info:11:*RepeatInfo variable:100:*Variable function:200:*Function
RepeatInfo | id:1:string times:2:int64
RepeatParameter | repeat_id:1:string times:2:int64
RecurrentParameter | repeat_id:1:string length:2:int64 axis:3:int64
Variable | name:1:string type:2:string repeat_id:3:*string shape:20:Shape initializer:100:Initializer
Initializer | type:2:string multiplier:10:float
Parameter | variable_name:1:string shape:20:Shape data:100:*float need_grad:101:bool
Dataset | name:1:string type:2:string uri:10:string batch_size:20:int64 cache_dir:30:string overwrite_cache:31:bool create_cache_explicitly:32:bool shuffle:100:bool no_image_normalization:101:bool variable:200:*string
Optimizer | name:1:string order:3:int64 network_name:10:string dataset_name:20:*string solver:30:Solver update_interval:40:int64 data_variable:50:*DataVariable generator_variable:60:*GeneratorVariable loss_variable:70:*LossVariable parameter_variable:80:*ParameterVariable start_iter:100:int64 end_iter:101:int64
SolverStateParameter | shape:20:Shape data:100:*float
SolverState | t:1:uint32 state_parameter:2:map<string,SolverStateParameter>
Solver | type:2:string context:10:Context weight_decay:20:float states:40:map<string,SolverState> lr_scheduler_type:200:string polynomial_scheduler_param:210:PolynomialSchedulerParameter cosine_scheduler_param:211:CosineSchedulerParameter exponential_scheduler_param:212:ExponentialSchedulerParameter step_scheduler_param:213:StepSchedulerParameter custom_scheduler_param:299:CustomSchedulerParameter lr_warmup_scheduler_type:300:string linear_warmup_scheduler_param:310:LinearWarmupSchedulerParameter lr_decay:30:float lr_decay_interval:31:int64
PolynomialSchedulerParameter | max_iter:1:float power:2:float
CosineSchedulerParameter | max_iter:1:float
ExponentialSchedulerParameter | gamma:1:float iter_interval:2:int64
StepSchedulerParameter | gamma:1:float iter_steps:2:*int64
CustomSchedulerParameter | max_iter:1:float network_name:10:string data_variable:50:*DataVariable output_variable:80:*OutputVariable
LinearWarmupSchedulerParameter | warmup_iter:1:int64
DataVariable | variable_name:1:string data_name:3:string
GeneratorVariable | variable_name:1:string type:2:string multiplier:3:float
LossVariable | variable_name:1:string
ParameterVariable | variable_name:1:string learning_rate_multiplier:2:float
Monitor | name:1:string network_name:10:string dataset_name:20:*string data_variable:50:*DataVariable generator_variable:60:*GeneratorVariable monitor_variable:70:*MonitorVariable
MonitorVariable | variable_name:1:string type:2:string data_name:3:string multiplier:100:float
Executor | name:1:string network_name:10:string num_evaluations:20:int64 repeat_evaluation_type:21:string need_back_propagation:30:bool data_variable:50:*DataVariable generator_variable:60:*GeneratorVariable loss_variable:70:*LossVariable output_variable:80:*OutputVariable parameter_variable:90:*ParameterVariable no_image_normalization:101:bool
OutputVariable | variable_name:1:string type:2:string data_name:3:string
Function | name:1:string type:2:string repeat_id:3:*string context:10:Context input:20:*string output:30:*string repeat_param:100:RepeatParameter recurrent_param:101:RecurrentParameter
"""

@functools.lru_cache(maxsize=None)
def function_table() -> dict[str, Any]:
    """nnabla's function and solver tables (names, field numbers, inputs, arguments, defaults)."""
    # a file beside this module (as package-data installs it); importlib.resources would import tempfile,
    # random and more at every start of the command line
    with open(os.path.join(os.path.dirname(__file__), "nnabla_schema.json"), encoding="utf-8") as f:
        return json.load(f)


_SCALARS = {"int64": "TYPE_INT64", "uint32": "TYPE_UINT32", "float": "TYPE_FLOAT", "double": "TYPE_DOUBLE",
            "bool": "TYPE_BOOL", "string": "TYPE_STRING"}


def _add_field(msg: descriptor_pb2.DescriptorProto, name: str, number: int, type_spec: str,
               oneof_index: int | None = None) -> None:
    from google.protobuf.descriptor_pb2 import FieldDescriptorProto as fdp_field

    field = msg.field.add(name=name, number=number, json_name=_camel(name))
    repeated = type_spec.startswith("*") or type_spec.startswith("repeated ")
    base = type_spec.lstrip("*").replace("repeated ", "")
    if base.startswith("map<"):
        key_type, value_type = base[4:-1].split(",")
        entry_name = "".join(part.capitalize() for part in name.split("_")) + "Entry"
        entry = msg.nested_type.add(name=entry_name)
        entry.options.map_entry = True
        _add_field(entry, "key", 1, key_type)
        _add_field(entry, "value", 2, value_type)
        field.label = fdp_field.LABEL_REPEATED
        field.type = fdp_field.TYPE_MESSAGE
        field.type_name = f".{msg.name}.{entry_name}"
        return
    field.label = fdp_field.LABEL_REPEATED if repeated else fdp_field.LABEL_OPTIONAL
    if base in _SCALARS:
        field.type = getattr(fdp_field, _SCALARS[base])
    else:
        field.type = fdp_field.TYPE_MESSAGE
        field.type_name = "." + base
    if oneof_index is not None:
        field.oneof_index = oneof_index


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def build_file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """The schema assembled from the table (what ``nnabla_schema.binpb`` stores)."""
    from google.protobuf import descriptor_pb2

    fdp = descriptor_pb2.FileDescriptorProto(name=PACKAGE_FILE, syntax="proto3")
    messages: dict[str, descriptor_pb2.DescriptorProto] = {}
    for line in _CORE_MESSAGES.strip().splitlines():
        name, _, fields = line.partition("|")
        msg = fdp.message_type.add(name=name.strip())
        messages[msg.name] = msg
        for spec in fields.split():
            fname, number, ftype = spec.split(":", 2)
            _add_field(msg, fname, int(number), ftype)

    table = function_table()
    solver = messages["Solver"]
    solver.oneof_decl.add(name="parameter")
    for info in table["solvers"]:
        _add_field(solver, f"{info['snake_name']}_param", info["field"], f"{info['name']}Parameter", 0)
        msg = fdp.message_type.add(name=f"{info['name']}Parameter")
        for i, arg in enumerate(info["arguments"]):
            _add_field(msg, arg["name"], i + 1, arg["type"])

    function = messages["Function"]
    function.oneof_decl.add(name="parameter")
    for info in table["functions"]:
        if not info["has_message"]:
            continue
        _add_field(function, f"{info['snake_name']}_param", info["field"], f"{info['name']}Parameter", 0)
        msg = fdp.message_type.add(name=f"{info['name']}Parameter")
        for i, arg in enumerate(info["arguments"]):
            _add_field(msg, arg["name"], i + 1, arg["type"])
    return fdp


SERIALIZED_DESCRIPTOR = os.path.join(os.path.dirname(__file__), "nnabla_schema.binpb")


@functools.lru_cache(maxsize=None)
def _pool() -> tuple[Any, Any]:
    return load_stored_descriptor(SERIALIZED_DESCRIPTOR)


@functools.lru_cache(maxsize=None)
def message_class(name: str) -> type:
    """The message class for a message of nnabla.proto, e.g. ``message_class("NNablaProtoBuf")``."""
    pool, get_class = _pool()
    return get_class(pool.FindMessageTypeByName(name))  # type: ignore[no-any-return]


def new_nnp_message() -> Any:
    return message_class("NNablaProtoBuf")()


@functools.lru_cache(maxsize=None)
def _param_fields() -> dict[str, str]:
    return {info["name"]: f"{info['snake_name']}_param"
            for info in function_table()["functions"] if info["has_message"]}


def param_field_name(function_type: str) -> str | None:
    """The ``Function`` field holding a function type's arguments (None if it has none)."""
    return _param_fields().get(function_type)
