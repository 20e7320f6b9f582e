"""``posebridge convert``: Caffe prototxt + caffemodel to PyTorch weights (safetensors)."""

from __future__ import annotations

import argparse

from posebridge.converter.api import convert
from posebridge.converter.emit import write_python
from posebridge.errors import PosebridgeError
from posebridge.converter.weights_io import save_safetensors
from posebridge.prototxt import load_graph, load_weights

NAME = "convert"
HELP = "convert a Caffe net and its caffemodel to PyTorch weights (safetensors, no pickle)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prototxt", help="the net definition")
    parser.add_argument("caffemodel", help="the trained weights")
    parser.add_argument("-o", "--output", metavar="model.safetensors",
                        help="write the converted weights here (state_dict names follow the Caffe layers)")
    parser.add_argument("--emit-python", metavar="model.py",
                        help="also write a readable, standalone PyTorch module that loads the safetensors file")
    parser.add_argument("--class-name", default="ConvertedNet", help="class name in the emitted module")


def run(args: argparse.Namespace) -> int:
    graph = load_graph(args.prototxt)
    graph.check_supported()
    weights = load_weights(graph, args.caffemodel)
    model = convert(graph, weights)
    count = sum(p.numel() for p in model.parameters())
    print(f"converted {len(graph)} layers, {count} parameters from {args.caffemodel}")
    if weights.ignored:
        print(f"caffemodel layers not in the net (ignored): {', '.join(weights.ignored)}")
    if args.emit_python and not args.class_name.isidentifier():
        raise PosebridgeError(f"--class-name '{args.class_name}' is not a Python identifier")
    if args.output:
        save_safetensors(model, args.output, metadata={"prototxt": str(args.prototxt)})
        print(f"wrote {args.output}")
    if args.emit_python:
        write_python(model, args.emit_python, class_name=args.class_name)
        print(f"wrote {args.emit_python} (class {args.class_name})")
    return 0
