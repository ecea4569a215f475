"""Conversion between NNablaProtoBuf messages and the in-memory model."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..model.graph import (
    DataVariable,
    Dataset,
    Executor,
    Function,
    GeneratorVariable,
    Model,
    Monitor,
    MonitorVariable,
    Network,
    Optimizer,
    OutputVariable,
    Variable,
)
from .schema import new_nnp_message, param_field_name

_MESSAGE = 11  # FieldDescriptor.TYPE_MESSAGE
_REPEATED = 3  # FieldDescriptor.LABEL_REPEATED


def _is_repeated(fd: Any) -> bool:
    flag = getattr(fd, "is_repeated", None)  # protobuf >= 6; ``label`` is gone in 7
    return bool(flag) if flag is not None else fd.label == _REPEATED


def message_to_dict(msg: Any) -> dict[str, Any]:
    """Plain values of a message's fields; Shape becomes a tuple, absent sub-messages None."""
    out: dict[str, Any] = {}
    for fd in msg.DESCRIPTOR.fields:
        value = getattr(msg, fd.name)
        if fd.type == _MESSAGE:
            if _is_repeated(fd):
                if fd.message_type.GetOptions().map_entry:
                    continue  # solver states: irrelevant to inference
                out[fd.name] = [message_to_dict(v) for v in value]
            elif fd.message_type.name == "Shape":
                out[fd.name] = tuple(int(d) for d in value.dim) if msg.HasField(fd.name) else None
            else:
                out[fd.name] = message_to_dict(value) if msg.HasField(fd.name) else None
        elif _is_repeated(fd):
            out[fd.name] = list(value)
        else:
            out[fd.name] = value
    return out


def dict_to_message(values: dict[str, Any], msg: Any) -> None:
    for fd in msg.DESCRIPTOR.fields:
        value = values.get(fd.name)
        if value is None:
            continue
        if fd.type == _MESSAGE:
            if fd.message_type.name == "Shape" and not _is_repeated(fd):
                getattr(msg, fd.name).SetInParent()
                getattr(msg, fd.name).dim.extend(int(d) for d in value)
            elif _is_repeated(fd):
                container = getattr(msg, fd.name)
                for item in value:
                    dict_to_message(item, container.add())
            else:
                getattr(msg, fd.name).SetInParent()
                dict_to_message(value, getattr(msg, fd.name))
        elif _is_repeated(fd):
            getattr(msg, fd.name).extend(value)
        else:
            setattr(msg, fd.name, value)


def _function_params(f: Any) -> dict[str, Any]:
    which = f.WhichOneof("parameter")
    return message_to_dict(getattr(f, which)) if which else {}


def _data_vars(items: Any) -> list[DataVariable]:
    return [DataVariable(d.variable_name, d.data_name) for d in items]


def _generator_vars(items: Any) -> list[GeneratorVariable]:
    return [GeneratorVariable(g.variable_name, g.type, g.multiplier) for g in items]


def network_from_message(net: Any) -> Network:
    variables: dict[str, Variable] = {}
    for v in net.variable:
        variables[v.name] = Variable(
            name=v.name,
            type=v.type or "Buffer",
            shape=tuple(int(d) for d in v.shape.dim),
            repeat_ids=tuple(v.repeat_id),
            initializer=message_to_dict(v.initializer) if v.HasField("initializer") else None,
        )
    functions = [
        Function(
            name=f.name,
            type=f.type,
            inputs=list(f.input),
            outputs=list(f.output),
            params=_function_params(f),
            repeat_ids=tuple(f.repeat_id),
            repeat_param=message_to_dict(f.repeat_param) if f.HasField("repeat_param") else None,
            recurrent_param=message_to_dict(f.recurrent_param) if f.HasField("recurrent_param") else None,
        )
        for f in net.function
    ]
    return Network(
        name=net.name,
        variables=variables,
        functions=functions,
        batch_size=int(net.batch_size),
        repeat_info={r.id: int(r.times) for r in net.repeat_info},
    )


def model_from_message(msg: Any) -> Model:
    """Everything but parameters (the reader adds those, having checked them)."""
    model = Model(version=msg.version)
    if msg.HasField("global_config"):
        model.global_config = message_to_dict(msg.global_config)
    if msg.HasField("training_config"):
        model.training_config = message_to_dict(msg.training_config)
    for net in msg.network:
        model.networks[net.name] = network_from_message(net)
    for e in msg.executor:
        model.executors[e.name] = Executor(
            name=e.name,
            network=e.network_name,
            data=_data_vars(e.data_variable),
            outputs=[OutputVariable(o.variable_name, o.data_name, o.type) for o in e.output_variable],
            generators=_generator_vars(e.generator_variable),
            losses=[x.variable_name for x in e.loss_variable],
            parameters=[x.variable_name for x in e.parameter_variable],
            num_evaluations=int(e.num_evaluations),
            repeat_evaluation_type=e.repeat_evaluation_type,
            need_back_propagation=e.need_back_propagation,
            no_image_normalization=e.no_image_normalization,
        )
    for d in msg.dataset:
        model.datasets[d.name] = Dataset(
            name=d.name, uri=d.uri, type=d.type, batch_size=int(d.batch_size), cache_dir=d.cache_dir,
            overwrite_cache=d.overwrite_cache, create_cache_explicitly=d.create_cache_explicitly,
            shuffle=d.shuffle, no_image_normalization=d.no_image_normalization, variables=list(d.variable))
    for o in msg.optimizer:
        model.optimizers[o.name] = Optimizer(
            name=o.name, network=o.network_name, datasets=list(o.dataset_name),
            solver=message_to_dict(o.solver), order=int(o.order), update_interval=int(o.update_interval),
            start_iter=int(o.start_iter), end_iter=int(o.end_iter), data=_data_vars(o.data_variable),
            generators=_generator_vars(o.generator_variable),
            losses=[x.variable_name for x in o.loss_variable],
            parameters=[(x.variable_name, x.learning_rate_multiplier) for x in o.parameter_variable])
    for m in msg.monitor:
        model.monitors[m.name] = Monitor(
            name=m.name, network=m.network_name, datasets=list(m.dataset_name), data=_data_vars(m.data_variable),
            generators=_generator_vars(m.generator_variable),
            monitor_variables=[MonitorVariable(v.variable_name, v.type, v.data_name, v.multiplier)
                               for v in m.monitor_variable])
    return model


def model_to_message(model: Model, include_parameters: bool = False) -> Any:
    msg = new_nnp_message()
    msg.version = model.version
    if model.global_config:
        dict_to_message(model.global_config, msg.global_config)
        msg.global_config.SetInParent()
    if model.training_config:
        dict_to_message(model.training_config, msg.training_config)
        msg.training_config.SetInParent()
    for net in model.networks.values():
        n = msg.network.add(name=net.name, batch_size=net.batch_size)
        for rid, times in net.repeat_info.items():
            n.repeat_info.add(id=rid, times=times)
        for v in net.variables.values():
            pv = n.variable.add(name=v.name, type=v.type)
            pv.repeat_id.extend(v.repeat_ids)
            pv.shape.dim.extend(v.shape)
            if v.initializer is not None:
                dict_to_message(v.initializer, pv.initializer)
                pv.initializer.SetInParent()
        for f in net.functions:
            pf = n.function.add(name=f.name, type=f.type)
            pf.repeat_id.extend(f.repeat_ids)
            pf.input.extend(f.inputs)
            pf.output.extend(f.outputs)
            field_name = param_field_name(f.type)
            if field_name is not None and f.params:
                target = getattr(pf, field_name)
                target.SetInParent()
                dict_to_message(f.params, target)
            if f.repeat_param is not None:
                pf.repeat_param.SetInParent()
                dict_to_message(f.repeat_param, pf.repeat_param)
            if f.recurrent_param is not None:
                pf.recurrent_param.SetInParent()
                dict_to_message(f.recurrent_param, pf.recurrent_param)
    for d in model.datasets.values():
        msg.dataset.add(name=d.name, uri=d.uri, type=d.type, batch_size=d.batch_size, cache_dir=d.cache_dir,
                        overwrite_cache=d.overwrite_cache, create_cache_explicitly=d.create_cache_explicitly,
                        shuffle=d.shuffle, no_image_normalization=d.no_image_normalization).variable.extend(d.variables)
    for o in model.optimizers.values():
        po = msg.optimizer.add(name=o.name, network_name=o.network, order=o.order, update_interval=o.update_interval,
                               start_iter=o.start_iter, end_iter=o.end_iter)
        po.dataset_name.extend(o.datasets)
        dict_to_message(o.solver, po.solver)
        po.solver.SetInParent()
        _add_bindings(po, o.data, o.generators, o.losses)
        for name, mult in o.parameters:
            po.parameter_variable.add(variable_name=name, learning_rate_multiplier=mult)
    for m in model.monitors.values():
        pm = msg.monitor.add(name=m.name, network_name=m.network)
        pm.dataset_name.extend(m.datasets)
        _add_bindings(pm, m.data, m.generators, [])
        for mv in m.monitor_variables:
            pm.monitor_variable.add(variable_name=mv.variable, type=mv.type, data_name=mv.data_name,
                                    multiplier=mv.multiplier)
    for e in model.executors.values():
        pe = msg.executor.add(name=e.name, network_name=e.network, num_evaluations=e.num_evaluations,
                              repeat_evaluation_type=e.repeat_evaluation_type,
                              need_back_propagation=e.need_back_propagation,
                              no_image_normalization=e.no_image_normalization)
        _add_bindings(pe, e.data, e.generators, e.losses)
        for out in e.outputs:
            pe.output_variable.add(variable_name=out.variable, data_name=out.data_name, type=out.type)
        for name in e.parameters:
            pe.parameter_variable.add(variable_name=name)
    if include_parameters:
        add_parameters(model, msg)
    return msg


def add_parameters(model: Model, msg: Any) -> None:
    for p in model.parameters.values():
        pp = msg.parameter.add(variable_name=p.name, need_grad=p.need_grad)
        pp.shape.dim.extend(p.data.shape)
        pp.data.extend(np.asarray(p.data, dtype=np.float32).ravel().tolist())


def _add_bindings(target: Any, data: list[DataVariable], generators: list[GeneratorVariable],
                  losses: list[str]) -> None:
    for d in data:
        target.data_variable.add(variable_name=d.variable, data_name=d.data_name)
    for g in generators:
        target.generator_variable.add(variable_name=g.variable, type=g.type, multiplier=g.multiplier)
    for name in losses:
        target.loss_variable.add(variable_name=name)
