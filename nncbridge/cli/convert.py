"""``nncbridge convert MODEL OUT.onnx``"""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help=".nnp file, folder of NNP parts, or a network file")
    p.add_argument("output", help="ONNX file to write")
    p.add_argument("--executor", help="executor to convert (default: the only runtime executor)")
    p.add_argument("--opset", type=int, help="ONNX opset (default: 18, the newest onnxruntime optimizes fully, or older if your onnxruntime needs it)")
    p.add_argument("--batch-size", type=int, help="fix the batch dimension (default: symbolic)")
    p.add_argument("--check", action="store_true",
                   help="also run onnx's full checker over the result before writing it (imports onnx)")


def run(args: argparse.Namespace) -> int:
    from ..export.onnx_export import check_with_onnx, save_onnx, to_onnx_message

    proto = to_onnx_message(args.model, args.executor, args.opset, args.batch_size)
    if args.check:
        check_with_onnx(proto, args.model)
    save_onnx(proto, args.output)
    graph = proto.graph
    print(f"wrote {args.output}: opset {proto.opset_import[0].version}, {len(graph.node)} nodes, "
          f"inputs {', '.join(i.name for i in graph.input)}, outputs {', '.join(o.name for o in graph.output)}")
    return 0
