"""``posebridge synth``: write a caffemodel with every learnable blob filled (synthetic weights)."""

from __future__ import annotations

import argparse

from posebridge.prototxt import load_graph
from posebridge.prototxt.synth import INITS, synthesize, write_caffemodel
from posebridge.tools.commands._args import size_hw

NAME = "synth"
HELP = "write a real binary caffemodel with synthetic weights for a prototxt"


def _seed(text: str) -> int:
    """A non-negative integer seed (numpy's generators reject negative ones)."""
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got '{text}'")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prototxt", help="the net")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.caffemodel", help="caffemodel to write")
    parser.add_argument("--seed", type=_seed, default=0, help="random seed, a non-negative integer (default 0)")
    parser.add_argument("--init", choices=INITS, default="he",
                        help="he: variance-preserving (default); caffe: the prototxt's own fillers")
    parser.add_argument("--input-size", type=size_hw, metavar="HxW",
                        help="input size used to derive InnerProduct weight shapes")


def run(args: argparse.Namespace) -> int:
    graph = load_graph(args.prototxt)
    shapes = graph.input_shapes(args.input_size) if args.input_size else None
    blobs = synthesize(graph, seed=args.seed, init=args.init, input_shapes=shapes)
    write_caffemodel(args.output, graph, blobs)
    count = sum(a.size for arrays in blobs.values() for a in arrays)
    print(f"wrote {args.output}: {len(blobs)} layers with weights, {count} parameters ({args.init}, seed {args.seed})")
    return 0
