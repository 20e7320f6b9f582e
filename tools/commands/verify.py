"""``posebridge verify``: is a caffemodel one of the official OpenPose weights, byte for byte?

Exit status: 0 for an official caffemodel (and, with ``--prototxt``, weights that fit that
net); 1 for any other file (not official, or not fitting the net): it may still be a fine
fine-tuned model, but it is not the published one; 2 for a user error (missing or empty file,
bad prototxt), as every posebridge command.
"""

from __future__ import annotations

import argparse

from posebridge import zoo
from posebridge.errors import PosebridgeError
from posebridge.prototxt import load_graph, load_weights
from posebridge.prototxt.integrity import verify_caffemodel

NAME = "verify"
HELP = "check a caffemodel's MD5 against the official OpenPose weights and say which model it is"
EXIT_OFFICIAL, EXIT_NOT_OFFICIAL = 0, 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("caffemodel", help="the weights file to check")
    parser.add_argument("--prototxt", metavar="NET",
                        help="also read the weights onto this net (a file or zoo:NAME) and say whether they fit "
                             "(a file smaller than the net's weights is reported as truncated)")


def _official_line(entries) -> str:
    first = entries[0]
    nets = " or ".join(f"{zoo.ZOO_PREFIX}{e.name}" for e in entries)
    return (f"official OpenPose {first.title} weights (models/{first.weights}, {first.family} family); "
            f"prototxt: {nets}")


def run(args: argparse.Namespace) -> int:
    graph = load_graph(args.prototxt) if args.prototxt else None
    result = verify_caffemodel(args.caffemodel)
    print(f"{result.path}: {result.size} bytes, MD5 {result.md5}")
    if result.known:
        print(_official_line(result.official))
    else:
        known = ", ".join(sorted({e.title for e in zoo.ENTRIES}))
        print(f"unknown: not one of the official OpenPose weights ({known})")
        for note in result.notes:
            print(f"  {note}")
    fits = True
    if graph is not None:
        try:
            matched = load_weights(graph, args.caffemodel)
        except PosebridgeError as error:
            fits = False
            print(f"does not fit {args.prototxt}: {error}")
        else:
            print(f"fits {args.prototxt}: {len(matched.blobs)} layers with weights")
    return EXIT_OFFICIAL if result.known and fits else EXIT_NOT_OFFICIAL
