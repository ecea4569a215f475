"""Regenerate ``nncbridge/format/nnabla_schema.json`` from nnabla's code-generator YAML.

nnabla describes every function (inputs, outputs, typed arguments with defaults) in
``build-tools/code_generator/functions.yaml`` and every solver in ``solvers.yaml``.
The protobuf field number of a function's parameter message is ``1001 + index`` of the
function in the flattened YAML (all functions counted, with or without arguments);
solver parameter fields are ``100 + index``.  This script extracts exactly those facts.

It also writes the schema nncbridge assembles from the table, serialized, as
``nnabla_schema.binpb`` beside it (``--descriptor-only`` rewrites just that file).

Usage: python tools/update_function_table.py path/to/functions.yaml path/to/solvers.yaml
       python tools/update_function_table.py --descriptor-only
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "nncbridge" / "format" / "nnabla_schema.json"


def _ordered_yaml(path: str) -> dict:
    import yaml

    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)  # dicts keep insertion order on Python 3.7+


def main(functions_yaml: str, solvers_yaml: str) -> None:
    functions = []
    for category, entries in _ordered_yaml(functions_yaml).items():
        for name, info in entries.items():
            functions.append(
                {
                    "name": name,
                    "snake_name": info["snake_name"],
                    "category": category,
                    "field": 1001 + len(functions),
                    "has_message": "arguments" in info,
                    "inputs": [
                        {
                            "name": key,
                            "optional": bool(spec.get("optional", False)),
                            "variadic": bool(spec.get("variadic", False)),
                            "parameter": bool(spec.get("parameter", False)),
                        }
                        for key, spec in (info.get("inputs") or {}).items()
                    ],
                    "outputs": [
                        {"name": key, "variadic": bool(spec.get("variadic", False))}
                        for key, spec in (info.get("outputs") or {}).items()
                    ],
                    "arguments": [
                        {
                            "name": key,
                            "type": spec["type"],
                            "default": None if spec.get("default") is None else str(spec["default"]),
                            **({"choices": list(spec["available_values"])} if "available_values" in spec else {}),
                        }
                        for key, spec in (info.get("arguments") or {}).items()
                    ],
                }
            )
    solvers = [
        {
            "name": name,
            "snake_name": info["snake_name"],
            "field": 100 + i,
            "arguments": [{"name": k, "type": v["type"]} for k, v in (info.get("arguments") or {}).items()],
        }
        for i, (name, info) in enumerate(_ordered_yaml(solvers_yaml).items())
    ]
    OUT.write_text(json.dumps({"functions": functions, "solvers": solvers}, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT}: {len(functions)} functions, {len(solvers)} solvers")
    write_serialized_descriptor()


def write_serialized_descriptor() -> None:
    """The schema assembled from OUT, serialized beside it (what nncbridge loads at start)."""
    sys.path.insert(0, str(OUT.parents[2]))
    from nncbridge.format import schema

    schema.function_table.cache_clear()
    data = schema.build_file_descriptor().SerializeToString(deterministic=True)
    Path(schema.SERIALIZED_DESCRIPTOR).write_bytes(data)
    print(f"wrote {schema.SERIALIZED_DESCRIPTOR}: {len(data)} bytes")


if __name__ == "__main__":
    if sys.argv[1:] == ["--descriptor-only"]:
        write_serialized_descriptor()
    elif len(sys.argv) != 3:
        sys.exit(__doc__)
    else:
        main(sys.argv[1], sys.argv[2])
