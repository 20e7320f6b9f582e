"""``posebridge parity``: compare every layer of the converted net with OpenCV dnn, Caffe or a golden file.

Exit codes: 0 every compared layer within tolerance; 1 some layer out of tolerance (the first
is named); 2 a user error (unreadable file, unsupported layer, reference unavailable).
"""

from __future__ import annotations

import argparse

from posebridge.atomic import write_text_atomic
from posebridge.converter.parity import DEFAULT_TOLERANCE, FAIL, RUNNERS, compare, format_table
from posebridge.errors import ParityError
from posebridge.tools.commands._args import size_hw

NAME = "parity"
HELP = "compare every layer's output of the converted net with a reference (OpenCV dnn, Caffe, golden .npz)"

EXIT_OK, EXIT_OUT_OF_TOLERANCE = 0, 1


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got '{text}'")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got '{text}'")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prototxt", help="the net definition")
    parser.add_argument("caffemodel", help="the weights")
    parser.add_argument("--reference", default="opencv", metavar="opencv|caffe|FILE.npz",
                        help="what to compare against: OpenCV dnn (default), pycaffe, or a golden .npz file")
    parser.add_argument("--input-size", type=size_hw, nargs="+", metavar="HxW",
                        help="one or more input sizes, one run each (default: the prototxt's size if usable, "
                             "else 368x368)")
    parser.add_argument("--batch", type=_positive_int, default=None, help="batch size N (default 1)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the uniform [-0.5, 0.5] input (default 0)")
    parser.add_argument("--tolerance", type=_non_negative_float, default=DEFAULT_TOLERANCE,
                        help=f"largest allowed max relative error per layer (default {DEFAULT_TOLERANCE:g})")
    parser.add_argument("--json", metavar="OUT.json", help="also write the full report as JSON")
    parser.add_argument("--failures-only", action="store_true", help="print only layers out of tolerance")


def run(args: argparse.Namespace) -> int:
    golden = args.reference not in RUNNERS
    if golden and (args.input_size or args.batch is not None or args.seed is not None):
        raise ParityError("a golden file fixes the input: --input-size, --batch and --seed do not apply",
                          file=args.reference)
    report = compare(args.prototxt, args.caffemodel, reference=args.reference, input_sizes=args.input_size,
                     batch=args.batch or 1, tolerance=args.tolerance, seed=0 if args.seed is None else args.seed)
    print(format_table(report, only={FAIL} if args.failures_only else None))
    if args.json:
        write_text_atomic(args.json, report.to_json())
        print(f"wrote {args.json}")
    return EXIT_OK if report.ok else EXIT_OUT_OF_TOLERANCE
