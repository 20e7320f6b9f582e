"""``posebridge report``: an architecture report of a Caffe net (self-contained HTML, Markdown or JSON)."""

from __future__ import annotations

import argparse
from pathlib import Path

from posebridge.atomic import write_text_atomic
from posebridge.prototxt import load_graph, load_weights
from posebridge.prototxt.analysis import DEFAULT_INPUT_SIZE, analyze
from posebridge.tools.commands._args import size_hw
from posebridge.tools.report import FORMATS, render_report
from posebridge.tools.report.formatting import shape_text, total_text

NAME = "report"
HELP = ("write an architecture report of a Caffe net: graph, OpenPose structure, per-layer shapes, "
        "parameters, MACs, memory and receptive field (one self-contained HTML file, or md/json)")
_SUFFIXES = {"html": ".html", "md": ".md", "json": ".json"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prototxt", help="the net (prototxt text, or a binary caffemodel's net)")
    parser.add_argument("caffemodel", nargs="?", help="weights: adds per-layer statistics and flags")
    parser.add_argument("-o", "--output", metavar="PATH",
                        help="file to write (default: report.html / report.md / report.json)")
    parser.add_argument("--input-size", type=size_hw, metavar="HxW",
                        help=f"input height and width (default: the prototxt's, or "
                             f"{DEFAULT_INPUT_SIZE[0]}x{DEFAULT_INPUT_SIZE[1]} when it declares a placeholder)")
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="html (default), md or json; guessed from the -o suffix when not given")
    parser.add_argument("--phase", default="TEST", choices=["TEST", "TRAIN"], help="net phase (default TEST)")


def _format_of(args: argparse.Namespace) -> str:
    if args.format:
        return args.format
    if args.output:
        suffix = Path(args.output).suffix.lower()
        for fmt, known in _SUFFIXES.items():
            if suffix == known or (fmt == "md" and suffix == ".markdown"):
                return fmt
    return "html"


def run(args: argparse.Namespace) -> int:
    fmt = _format_of(args)
    output = Path(args.output) if args.output else Path(f"report{_SUFFIXES[fmt]}")
    graph = load_graph(args.prototxt, phase=args.phase)
    weights = load_weights(graph, args.caffemodel) if args.caffemodel else None
    analysis = analyze(graph, input_size=args.input_size, weights=weights)
    write_text_atomic(output, render_report(analysis, fmt))
    totals = analysis.totals
    inputs = ", ".join(shape_text(s) for s in analysis.input_shapes.values()) or "no Input layer (data layers)"
    print(f"wrote {output} ({fmt}): {totals.layers} layers, {total_text(totals.params, totals.unknown_params)} "
          f"parameters, {total_text(totals.macs, totals.unknown_macs)} MACs, input {inputs}")
    for warning in analysis.warnings:
        print(f"warning: {warning}")
    return 0
