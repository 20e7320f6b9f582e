"""``posebridge inspect``: every layer's type, bottoms, tops, output shape and weight shapes."""

from __future__ import annotations

import argparse

from posebridge.prototxt import infer_shapes, load_graph, load_weights
from posebridge.tools.commands._args import size_hw

NAME = "inspect"
HELP = "list every layer of a Caffe net with its type, bottoms, tops, output shape and weight shapes"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prototxt", help="the net (prototxt text, or a binary caffemodel's net)")
    parser.add_argument("caffemodel", nargs="?", help="weights to match onto the net and show")
    parser.add_argument("--input-size", type=size_hw, metavar="HxW",
                        help="input height and width (default: the prototxt's placeholder)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: the prototxt's)")
    parser.add_argument("--phase", default="TEST", choices=["TEST", "TRAIN"], help="net phase (default TEST)")


def _fmt(shape) -> str:
    return "?" if shape is None else "x".join(str(d) for d in shape)


def run(args: argparse.Namespace) -> int:
    graph = load_graph(args.prototxt, phase=args.phase)
    input_shapes = graph.input_shapes(args.input_size, args.batch)
    shapes = infer_shapes(graph, input_shapes)
    matched = load_weights(graph, args.caffemodel) if args.caffemodel else None
    print(f"net '{graph.name}' from {graph.source}: {len(graph)} layers, inputs "
          + ", ".join(f"{k} {_fmt(v)}" for k, v in input_shapes.items()))
    rows = [("layer", "type", "bottoms", "tops", "output", "weights")]
    for node in graph.nodes:
        weights = ""
        if matched is not None and node.name in matched.blobs:
            weights = " ".join(_fmt(a.shape) for a in matched.blobs[node.name])
        rows.append((node.name, node.type + (" (opaque)" if node.opaque else ""),
                     ",".join(node.caffe_bottoms) or "-", ",".join(node.caffe_tops) or "-",
                     " ".join(_fmt(shapes.get(t)) for t in node.tops) or "-", weights))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print("outputs: " + ", ".join(f"{graph.caffe_blob[o]} {_fmt(shapes.get(o))}" for o in graph.outputs))
    if matched is not None and matched.ignored:
        print(f"caffemodel layers not in the net (ignored): {', '.join(matched.ignored)}")
    for warning in graph.warnings:
        print(f"warning: {warning}")
    return 0
