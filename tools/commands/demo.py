"""``posebridge demo``: the whole chain on the built-in COCO net with synthetic weights."""

from __future__ import annotations

import argparse

NAME = "demo"
HELP = ("run every stage (synth, convert, parity vs OpenCV, ONNX, inference, report) on zoo:coco "
        "with synthetic weights, in about a minute")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="posebridge-demo", help="output folder (default ./posebridge-demo)")
    parser.add_argument("--image", help="a photo to run on (default: the bundled public-domain sample)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic weights (default 0)")


def run(args: argparse.Namespace) -> int:
    from posebridge.tools.demo import closing_text, run_demo

    result = run_demo(args.out, image=args.image, seed=args.seed)
    print(closing_text(result))
    return 0
