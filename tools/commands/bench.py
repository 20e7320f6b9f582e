"""``posebridge bench``: measure loading, forward, post-processing and end to end against the peers."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys

from posebridge.errors import PosebridgeError
from posebridge.tools.commands._args import size_hw

NAME = "bench"
HELP = ("benchmark: loading, network forward per backend (OpenCV dnn, PyTorch, onnxruntime, ncnn, bf16, int8), "
        "post-processing and end to end; writes bench.json, bench.md and forward.png")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, fewer repetitions: a few minutes (checks that everything runs)")
    parser.add_argument("--out", default="bench-results", metavar="DIR",
                        help="folder for bench.json, bench.md, forward.png (default ./bench-results)")
    parser.add_argument("--work", metavar="DIR",
                        help="keep the synthetic caffemodels, ONNX exports and media here and reuse them "
                             "(default: a temporary folder)")
    parser.add_argument("--nets", nargs="+", metavar="NET", help="zoo body nets (default: coco body_25)")
    parser.add_argument("--sizes", nargs="+", type=size_hw, metavar="HxW", help="forward input sizes")
    parser.add_argument("--backends", nargs="+", metavar="NAME", help="forward backends (default: all)")
    parser.add_argument("--repeats", type=int, help="timed runs per forward (default 5, quick 2)")
    parser.add_argument("--threads", type=int, help="threads per backend (default: every usable CPU)")
    parser.add_argument("--only", nargs="+", metavar="SECTION",
                        help="sections to run: loading forward accuracy postprocess end_to_end (default: all)")


def config_from_args(args: argparse.Namespace):
    """The BenchConfig that the options describe."""
    from posebridge.tools.bench import FULL, QUICK, SECTIONS
    from posebridge.tools.bench.forward import BACKENDS

    config = QUICK if args.quick else FULL
    changes = {}
    if args.nets:
        changes["nets"] = tuple(args.nets)
        changes["loading_net"] = args.nets[0]
    if args.sizes:
        changes["sizes"] = tuple(args.sizes)
    if args.backends:
        unknown = [b for b in args.backends if b not in BACKENDS]
        if unknown:
            raise PosebridgeError(f"unknown backend(s) {unknown}; known: {', '.join(BACKENDS)}")
        changes["backends"] = tuple(args.backends)
        changes["e2e_backends"] = tuple(b for b in config.e2e_backends if b in args.backends)
    if args.repeats is not None:
        if args.repeats < 1:
            raise PosebridgeError(f"--repeats must be at least 1, got {args.repeats}")
        changes["repeats"] = args.repeats
    if args.threads is not None:
        if args.threads < 1:
            raise PosebridgeError(f"--threads must be at least 1, got {args.threads}")
        changes["threads"] = args.threads
    if args.only:
        unknown = [s for s in args.only if s not in SECTIONS]
        if unknown:
            raise PosebridgeError(f"unknown section(s) {unknown}; known: {', '.join(SECTIONS)}")
        changes["sections"] = tuple(args.only)
    return dataclasses.replace(config, **changes)


def check_output_folder(folder: str) -> None:
    """Make ``folder`` and prove it takes a file now: a FileAccessError before a 12-minute run, not after."""
    import tempfile
    from pathlib import Path

    from posebridge.errors import FileAccessError

    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise FileAccessError(f"the output folder cannot be made or written to ({error.strerror or error})",
                              file=str(folder)) from None


def run(args: argparse.Namespace) -> int:
    from posebridge.tools.bench import run_bench, write_results
    from posebridge.tools.bench.report import markdown

    config = config_from_args(args)
    check_output_folder(args.out)
    command = "posebridge bench " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if sys.argv[1:2] == ["bench"] \
        else "posebridge bench" + (" --quick" if args.quick else "")
    results = run_bench(config, work=args.work, command=command.strip(),
                        log=lambda line: print(line, file=sys.stderr, flush=True))
    paths = write_results(results, args.out)
    print(markdown(results))
    print(f"wrote {paths['json']}, {paths['markdown']}, {paths['plot']}")
    return 0
