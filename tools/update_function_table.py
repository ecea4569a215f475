"""Regenerate ``nncbridge/format/nnabla_schema.json`` from nnabla's code-generator YAML.

nnabla describes every function (inputs, outputs, typed arguments with defaults) in
``build-tools/code_generator/functions.yaml`` and every solver in ``solvers.yaml``.
The protobuf field number of a function's parameter message is ``1001 + index`` of the
function in the flattened YAML (all functions counted, with or without arguments);
solver parameter fields are ``100 + index``.  This script extracts exactly those facts.

Then it stores the schema assembled from the new table (tools/store_descriptors.py).

Usage: python tools/update_function_table.py path/to/functions.yaml path/to/solvers.yaml
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
    import store_descriptors  # the schema assembled from the new table, stored beside it

    store_descriptors.main()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
