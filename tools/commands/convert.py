"""``posebridge convert``: Caffe prototxt + caffemodel to PyTorch weights (safetensors) and/or ONNX."""

from __future__ import annotations

import argparse

from posebridge.converter.api import convert
from posebridge.converter.emit import write_python
from posebridge.converter.onnx_export import CHECK_SIZES, DEFAULT_OPSET, export_onnx
from posebridge.errors import PosebridgeError
from posebridge.converter.weights_io import save_safetensors
from posebridge.prototxt import load_graph, load_weights

NAME = "convert"
HELP = ("convert a Caffe net and its caffemodel to PyTorch weights (safetensors, no pickle); also ONNX "
        "(--onnx) and ncnn (--ncnn), each checked against PyTorch before it is written")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prototxt", help="the net definition")
    parser.add_argument("caffemodel", help="the trained weights")
    parser.add_argument("-o", "--output", metavar="model.safetensors",
                        help="write the converted weights here (state_dict names follow the Caffe layers)")
    parser.add_argument("--emit-python", metavar="model.py",
                        help="also write a readable, standalone PyTorch module that loads the safetensors file")
    parser.add_argument("--class-name", default="ConvertedNet", help="class name in the emitted module")
    onnx_group = parser.add_argument_group("ONNX export")
    onnx_group.add_argument("--onnx", metavar="model.onnx",
                            help="also export ONNX (dynamic batch, height and width; checked with onnxruntime "
                                 "before it is written; metadata names the model family and channels)")
    onnx_group.add_argument("--split-outputs", action="store_true",
                            help="OpenPose nets: export 'heatmaps' and 'pafs' as two outputs instead of one")
    onnx_group.add_argument("--fp16", action="store_true",
                            help="fp16 weights and compute (fp32 input/output); prints its error against fp32")
    onnx_group.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (>= {DEFAULT_OPSET})")
    ncnn_group = parser.add_argument_group("ncnn export")
    ncnn_group.add_argument("--ncnn", metavar="model.param",
                            help="also export for ncnn: model.param (graph) and model.bin (float32 weights), "
                                 "checked against PyTorch first (Convolution, ReLU, PReLU, MAX pooling, Concat)")
    onnx_group.add_argument("--check-sizes", type=_sizes, default=CHECK_SIZES, metavar="HxW[,HxW...]",
                            help="input sizes the ONNX and ncnn exports are checked at, batch 2 (default: "
                                 + ",".join(f"{h}x{w}" for h, w in CHECK_SIZES) + ")")


def _sizes(text: str) -> tuple[tuple[int, int], ...]:
    """``"64x80,57x91"`` -> ((64, 80), (57, 91))."""
    sizes = []
    for item in text.split(","):
        height, sep, width = item.strip().lower().partition("x")
        if not sep or not height.isdigit() or not width.isdigit() or int(height) < 1 or int(width) < 1:
            raise argparse.ArgumentTypeError(f"'{item}' is not a size HxW (e.g. 57x91)")
        sizes.append((int(height), int(width)))
    return tuple(sizes)


def run(args: argparse.Namespace) -> int:
    if (args.split_outputs or args.fp16) and not args.onnx:
        raise PosebridgeError("--split-outputs and --fp16 apply to the ONNX export: give --onnx model.onnx")
    if args.ncnn and not args.ncnn.endswith(".param"):
        raise PosebridgeError(f"--ncnn names the graph file, which ends in .param (the weights go beside it in "
                              f".bin): got '{args.ncnn}'")
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
    if args.onnx:
        report = export_onnx(model, args.onnx, opset=args.opset, split_outputs=args.split_outputs, fp16=args.fp16,
                             sizes=args.check_sizes, prototxt=args.prototxt, caffemodel=args.caffemodel)
        print(report.summary())
    if args.ncnn:
        from posebridge.converter.ncnn_export import export_ncnn

        error = export_ncnn(model, args.ncnn, check_sizes=args.check_sizes)
        print(f"wrote {args.ncnn} and {args.ncnn[:-len('.param')]}.bin (ncnn; max relative error against "
              f"PyTorch {error:.1e} at {', '.join(f'{h}x{w}' for h, w in args.check_sizes)}, batch 2)")
    return 0
