"""``posebridge zoo``: list the built-in OpenPose nets, or write one out as a prototxt."""

from __future__ import annotations

import argparse

from posebridge import zoo

NAME = "zoo"
HELP = "list the built-in OpenPose architectures (zoo:NAME) or export one as a prototxt"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="zoo_action", metavar="ACTION", required=True)
    actions.add_parser("list", help="the built-in nets with a one-line description each")
    export = actions.add_parser("export", help="write a built-in net as prototxt text")
    export.add_argument("name", metavar="NAME", help=f"one of: {', '.join(zoo.names())} (zoo: prefix allowed)")
    export.add_argument("-o", "--output", required=True, metavar="FILE.prototxt", help="file to write (atomically)")


def _list() -> int:
    rows = [(f"{zoo.ZOO_PREFIX}{name}", zoo.describe(name)) for name in zoo.names()]
    width = max(len(ref) for ref, _ in rows)
    print(f"{'NAME'.ljust(width)}  DESCRIPTION")
    for ref, text in rows:
        print(f"{ref.ljust(width)}  {text}")
    return 0


def _export(name: str, output: str) -> int:
    chosen = zoo.entry(name)
    path = zoo.export(chosen.name, output)
    net = zoo.build(chosen.name)
    print(f"wrote {path}: {zoo.ZOO_PREFIX}{chosen.name}, {len(net.layer)} layers, "
          f"output {chosen.output_channels} channels; official weights {chosen.weights_file} (MD5 {chosen.weights_md5})")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.zoo_action == "list":
        return _list()
    return _export(args.name, args.output)
