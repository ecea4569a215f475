"""Expansion of Console's loop constructs (Repeat, Recurrent, Delay) into a plain graph."""
from __future__ import annotations

from ..errors import ModelError
from .graph import Executor, Model, Network

LOOP_FUNCTIONS = {"RepeatStart", "RepeatEnd", "RecurrentInput", "RecurrentOutput", "Delay"}


def needs_expansion(network: Network) -> bool:
    return any(f.type in LOOP_FUNCTIONS or f.repeat_ids for f in network.functions)


def expand_network(model: Model, network: Network, executor: Executor | None = None) -> Network:
    if not needs_expansion(network):
        return network
    raise ModelError(f"network {network.name!r}: Repeat/Recurrent/Delay expansion is not implemented yet")
