"""Store the protobuf descriptors nncbridge assembles, serialized, where the package loads them.

    python tools/store_descriptors.py

Run it after changing a message table (``nncbridge/format/schema.py``, ``nnabla_schema.json``,
``nncbridge/export/onnx_proto.py``); tests fail while a stored file differs from its table.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nncbridge.export import onnx_proto  # noqa: E402
from nncbridge.format import schema  # noqa: E402

MODULES = (schema, onnx_proto)


def main() -> None:
    schema.function_table.cache_clear()  # a table rewritten in this process
    for module in MODULES:
        data = module.build_file_descriptor().SerializeToString(deterministic=True)
        Path(module.SERIALIZED_DESCRIPTOR).write_bytes(data)
        print(f"wrote {module.SERIALIZED_DESCRIPTOR}: {len(data)} bytes")


if __name__ == "__main__":
    main()
