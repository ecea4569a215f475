"""``nncbridge info MODEL``: what a model needs and gives, for humans (or ``--json`` for scripts)."""
from __future__ import annotations

import argparse
import json
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="+", help=".nnp file, folder of NNP parts, or the parts themselves")
    p.add_argument("--json", action="store_true", help="print the description as JSON")
    p.add_argument("--executor", help="describe only this executor")


def run(args: argparse.Namespace) -> int:
    from ..describe import describe
    from ..errors import ExecutorNotFoundError

    source = args.model[0] if len(args.model) == 1 else args.model
    info = describe(source)
    if args.executor is not None:
        chosen = [e for e in info["executors"] if e["name"] == args.executor]
        if not chosen:
            names = ", ".join(e["name"] for e in info["executors"]) or "none"
            raise ExecutorNotFoundError(f"{info['path']}: no executor {args.executor!r}; executors: {names}")
        info["executors"] = chosen
    if args.json:
        print(json.dumps(info, indent=2, ensure_ascii=False))
    else:
        print(render(info))
    return 0


def shape_text(shape: list[int] | None) -> str:
    if shape is None:
        return "?"
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _size(nbytes: int) -> str:
    value = float(nbytes)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{nbytes} bytes"  # pragma: no cover


def _table(rows: list[list[str]], indent: str) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def render(info: dict[str, Any]) -> str:
    from ..dataset.csv_io import output_layout

    lines: list[str] = []
    fmt = info["format"]
    lines.append(f"Model: {info['path']}")
    encoding = {"text": "text", "binary": "binary protobuf"}.get(fmt["network_encoding"], fmt["network_encoding"])
    params = fmt["parameter_format"] or "none stored"
    network_files = [m["name"] for m in fmt["members"] if m["role"].startswith("network")]
    param_files = [m["name"] for m in fmt["members"] if m["role"].startswith("parameters")]
    if network_files:
        encoding += f" ({', '.join(network_files)})"
    if param_files and fmt["parameter_format"]:
        params += f" ({', '.join(param_files)})"
    lines.append(f"  format:   NNP {fmt['nnp_version'] or '(no nnp_version.txt)'}, network in {encoding}, "
                 f"parameters in {params}")
    if fmt["members"]:
        members = ", ".join(f"{m['name']}" + (" (ignored)" if m["role"].startswith("not needed") else "")
                            for m in fmt["members"])
        lines.append(f"  files:    {members}")
    for net in info["networks"]:
        used = ", ".join(net["used_by"]) or "not used"
        lines.append(f"  network:  {net['name']} ({net['layers']} layers; {used})")
    p = info["parameters"]
    lines.append(f"  parameters: {p['values']:,} values in {p['arrays']} arrays "
                 f"({_size(p['bytes'])} as float32)")

    for exe in info["executors"]:
        lines.append("")
        kind = "" if exe["runtime"] else " (training executor: needs back-propagation)"
        lines.append(f"Executor {exe['name']!r} runs network {exe['network']!r}{kind}")
        if "error" in exe:
            lines.append(f"  error: {exe['error']}")
            continue
        rows = [["inputs:", "", "", ""]]
        rows += [[f"  {i['variable']}", f"← {i['data_name'] or '?'}", shape_text(i["shape"]), i["dtype"]]
                 for i in exe["inputs"]]
        rows += [[f"  {g['variable']}", f"← generator {g['type']}", shape_text(g["shape"]), "float32"]
                 for g in exe["generators"]]
        if len(rows) == 1:
            rows.append(["  (none)", "", "", ""])
        rows.append(["outputs:", "", "", ""])
        rows += [[f"  {o['variable']}", f"→ {o['data_name'] or '?'}", shape_text(o["shape"]), o["dtype"]]
                 for o in exe["outputs"]]
        if not exe["outputs"]:
            rows.append(["  (none)", "", "", ""])
        lines += _table(rows, "  ")
        lines.append("  (shapes are per sample: a batch of N samples has shape (N, ...))")
        norm = exe["image_normalization"]
        if norm["divide_by_255"]:
            lines.append("  images:  8-bit image inputs are divided by 255 before feeding (Console's default)")
        else:
            who = (["the executor"] if norm["executor_no_image_normalization"] else []) + (
                ["the training datasets"] if norm["datasets_normalize"] and not any(norm["datasets_normalize"].values())
                else [])
            why = " and ".join(who) + (" sets" if len(who) == 1 else " set") + " no_image_normalization"
            lines.append(f"  images:  image inputs are fed as 0-255 values, not divided by 255 ({why})")
        for o in exe["outputs"]:
            kind, count = output_layout(tuple(o["shape"] or ()))
            if kind != "columns":
                files = "a CSV file" if kind == "csv" else "a PNG image" if count == 1 else f"{count} PNG images"
                lines.append(f"  predict: {o['data_name'] or o['variable']} is written as {files} per row "
                             "(nnabla_cli forward's layout)")
        lines.append("  layers:")
        rows = [["#", "name", "type", "output shape", "parameters"]]
        for n, layer in enumerate(exe["layers"], 1):
            note = "  (training only)" if layer["training_only"] else ""
            rows.append([str(n), layer["name"], layer["type"] + note, shape_text(layer["output_shape"]),
                         f"{layer['parameters']:,}"])
        lines += _table(rows, "    ")
        ep = exe["parameters"]
        lines.append(f"  parameters used: {ep['values']:,} values in {ep['arrays']} arrays ({_size(ep['bytes'])})")

    if info["datasets"]:
        lines.append("")
        lines.append("Datasets (as configured when the model was trained):")
        rows = []
        for d in info["datasets"]:
            norm = "no image normalization" if d["no_image_normalization"] else "images divided by 255"
            rows.append([d["name"], f"batch {d['batch_size']}", "shuffled" if d["shuffle"] else "in order", norm,
                         d["uri"]])
        lines += _table(rows, "  ")
    if info["warnings"]:
        lines.append("")
        lines += [f"warning: {w}" for w in info["warnings"]]
    return "\n".join(lines)
