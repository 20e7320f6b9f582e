"""The ``posebridge`` command line: a thin layer that parses arguments and calls the packages.

Every module in :mod:`posebridge.tools.commands` is one subcommand. It defines ``NAME``,
``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``. Any :class:`PosebridgeError`
becomes one line on stderr and exit code 2, with no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from posebridge import __version__
from posebridge.errors import PosebridgeError
from posebridge.tools import commands as commands_package

EXIT_USER_ERROR = 2


def _command_modules() -> list:
    modules = []
    for info in sorted(pkgutil.iter_modules(commands_package.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands_package.__name__}.{info.name}")
        if hasattr(module, "NAME") and hasattr(module, "run"):
            modules.append(module)
    return modules


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one subparser per command module."""
    parser = argparse.ArgumentParser(
        prog="posebridge",
        description="Convert, verify and run the CMU OpenPose Caffe models without Caffe.",
    )
    parser.add_argument("--version", action="version", version=f"posebridge {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules():
        sub = subparsers.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


#: Options whose values may start with "-" (``--net-resolution -1x368``), which argparse would
#: otherwise take for an option.
DASH_VALUED_OPTIONS = ("--net-resolution", "--net_resolution")


def _join_dash_values(argv: Sequence[str]) -> list[str]:
    """Turn ``--net-resolution -1x368`` into ``--net-resolution=-1x368``."""
    joined: list[str] = []
    items = list(argv)
    index = 0
    while index < len(items):
        item = items[index]
        if item in DASH_VALUED_OPTIONS and index + 1 < len(items) and items[index + 1][:2] not in ("--",):
            joined.append(f"{item}={items[index + 1]}")
            index += 2
            continue
        joined.append(item)
        index += 1
    return joined


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(_join_dash_values(sys.argv[1:] if argv is None else argv))
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return int(args._run(args) or 0)
    except PosebridgeError as error:
        print(f"posebridge {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"posebridge {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
