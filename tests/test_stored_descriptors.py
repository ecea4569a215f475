"""The protobuf descriptors nncbridge loads (stored by tools/store_descriptors.py) are the ones its
tables assemble, so a table edited without re-running the tool fails here."""
from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from nncbridge.export import onnx_proto
from nncbridge.format import schema


@pytest.mark.parametrize("module", [schema, onnx_proto], ids=lambda m: m.__name__)
def test_stored_descriptor_is_the_one_the_table_assembles(module):
    stored = descriptor_pb2.FileDescriptorProto.FromString(Path(module.SERIALIZED_DESCRIPTOR).read_bytes())
    assert stored == module.build_file_descriptor()


def test_every_function_with_arguments_has_its_parameter_field():
    function = schema.message_class("Function").DESCRIPTOR
    assert {f.name for f in function.oneofs_by_name["parameter"].fields} == \
        {f"{info['snake_name']}_param" for info in schema.function_table()["functions"] if info["has_message"]}
