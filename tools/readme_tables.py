"""Tables in the README that are generated from the code, never written by hand.

``python -m posebridge.tools.readme_tables`` rewrites them in place; ``--check`` exits 1 when
the README is stale (a test runs the check). Each table sits between
``<!-- table:NAME -->`` and ``<!-- /table:NAME -->`` markers.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def supported_layers_table() -> str:
    """Markdown table of the Caffe layer types the converter supports, by family module, and which
    of them the ncnn export writes."""
    from posebridge.converter.ncnn_export import SUPPORTED_LAYERS as NCNN_LAYERS
    from posebridge.converter.registry import converter_module_of, supported_types
    from posebridge.prototxt.layer_types import category_of

    rows = ["| Caffe layer type | category | converter module | ncnn export |", "|---|---|---|---|"]
    for name in supported_types():
        module = converter_module_of(name).rsplit(".", 1)[-1]
        ncnn = "yes" if name in NCNN_LAYERS else "-"
        rows.append(f"| `{name}` | {category_of(name)} | `converter/layers/{module}.py` | {ncnn} |")
    return "\n".join(rows)


def skeletons_table() -> str:
    """Markdown table of the skeletons the runtime knows."""
    from posebridge.runtime.skeletons import SKELETONS

    rows = ["| skeleton | parts | limbs (PAF pairs) | heatmap channels | PAF channels |", "|---|---|---|---|---|"]
    for name, skeleton in SKELETONS.items():
        limbs = len(getattr(skeleton, "limbs", ()) or ())
        heat = getattr(skeleton, "heatmap_count", None) if limbs else None
        paf = getattr(skeleton, "paf_count", None) if limbs else None
        rows.append(f"| {name} | {len(skeleton.part_names)} | {limbs or '-'} | {heat or '-'} | {paf or '-'} |")
    return "\n".join(rows)


def commands_table() -> str:
    """Markdown table of the ``posebridge`` subcommands and what each does."""
    from posebridge.tools.cli import _command_modules

    rows = ["| command | what it does |", "|---|---|"]
    for module in _command_modules():
        rows.append(f"| `posebridge {module.NAME}` | {module.HELP} |")
    return "\n".join(rows)


TABLES: dict[str, Callable[[], str]] = {
    "commands": commands_table,
    "supported-layers": supported_layers_table,
    "skeletons": skeletons_table,
}


def render(text: str) -> str:
    """``text`` with every generated table replaced by its current content."""
    for name, build in TABLES.items():
        pattern = re.compile(rf"(<!-- table:{name} -->\n)(?:.*?\n)?(<!-- /table:{name} -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"README has no markers for table '{name}'")
        text = pattern.sub(lambda m: m.group(1) + build() + "\n" + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 when the README's tables are stale")
    args = parser.parse_args(argv)
    current = README.read_text(encoding="utf-8")
    fresh = render(current)
    if args.check:
        if fresh != current:
            print("README tables are stale: run python -m posebridge.tools.readme_tables", file=sys.stderr)
            return 1
        return 0
    README.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
