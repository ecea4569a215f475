"""Message classes from a serialized ``FileDescriptorProto`` stored in the package.

nncbridge makes its protobuf classes at run time (generated ``*_pb2`` modules are tied to one
protobuf release; it runs on 3.20 and 7.x). Assembling the descriptors with ``descriptor_pb2`` at
every start cost ~15 ms on Python 3.10, so ``tools/store_descriptors.py`` stores them assembled,
and tests keep each stored file equal to what its module assembles.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any


def load_stored_descriptor(path: str) -> tuple[Any, Callable[[Any], type]]:
    """A private pool holding the stored file, and the function making the class of one of its
    message descriptors."""
    from google.protobuf import descriptor_pool, message_factory

    pool = descriptor_pool.DescriptorPool()
    with open(path, "rb") as f:
        pool.AddSerializedFile(f.read())
    # protobuf 4+ has GetMessageClass; 3.x (nnabla's pin) only MessageFactory.GetPrototype.
    get_class = getattr(message_factory, "GetMessageClass", None) or \
        getattr(message_factory.MessageFactory(pool), "GetPrototype")
    return pool, get_class
