"""Regenerate ``prototxt/caffe_pb2.py`` from ``prototxt/caffe.proto`` with the pinned protoc.

Usage: ``python tools/regen_schema.py [--check]``. Without ``--check`` the module is rewritten
(atomically). With ``--check`` nothing is written; the exit code is 1 when the committed module
differs from a fresh generation, 2 when the pinned generator is missing or of another version.

The output is deterministic: protoc runs with the proto folder as its only include path, so the
module records ``caffe.proto`` (never an absolute path), and nothing else varies between runs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

PINNED_GENERATOR = ("grpcio-tools", "1.85.1")
REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = REPO_ROOT / "prototxt"
PROTO_NAME = "caffe.proto"
MODULE_NAME = "caffe_pb2.py"

EXIT_OK = 0
EXIT_STALE = 1
EXIT_NO_GENERATOR = 2


class GeneratorUnavailable(RuntimeError):
    """The pinned grpcio-tools is not installed (or another version is)."""


def generator_version() -> str | None:
    """The installed grpcio-tools version, or None when it is absent."""
    try:
        return metadata.version(PINNED_GENERATOR[0])
    except metadata.PackageNotFoundError:
        return None


def generate_module(proto_dir: Path = PROTO_DIR) -> bytes:
    """Run the pinned protoc on ``proto_dir/caffe.proto`` and return the generated module bytes."""
    name, pinned = PINNED_GENERATOR
    installed = generator_version()
    if installed != pinned:
        raise GeneratorUnavailable(f"{name}=={pinned} is required to generate {MODULE_NAME}; found {installed}")
    from grpc_tools import protoc  # imported late: a dev-only dependency

    with tempfile.TemporaryDirectory(prefix="posebridge-protoc-") as out_dir:
        args = ["grpc_tools.protoc", f"-I{proto_dir}", f"--python_out={out_dir}", str(proto_dir / PROTO_NAME)]
        status = protoc.main(args)
        if status != 0:
            raise RuntimeError(f"protoc failed on {proto_dir / PROTO_NAME} (exit {status})")
        return (Path(out_dir) / MODULE_NAME).read_bytes()


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if the module is stale")
    args = parser.parse_args(argv)
    target = PROTO_DIR / MODULE_NAME
    try:
        fresh = generate_module()
    except GeneratorUnavailable as exc:
        print(f"regen_schema: {exc}", file=sys.stderr)
        return EXIT_NO_GENERATOR
    if args.check:
        current = target.read_bytes() if target.exists() else b""
        if current != fresh:
            print(f"regen_schema: {target} is stale; run python tools/regen_schema.py", file=sys.stderr)
            return EXIT_STALE
        print(f"regen_schema: {target} is up to date")
        return EXIT_OK
    from posebridge.atomic import write_bytes_atomic

    write_bytes_atomic(target, fresh)
    print(f"regen_schema: wrote {target}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
