"""Argument types shared by the subcommands."""

from __future__ import annotations

import argparse
import re


def size_hw(text: str) -> tuple[int, int]:
    """Parse ``HxW`` (e.g. ``368x656``) into (height, width)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or int(match.group(1)) <= 0 or int(match.group(2)) <= 0:
        raise argparse.ArgumentTypeError(f"expected HxW with positive integers (e.g. 368x656), got '{text}'")
    return int(match.group(1)), int(match.group(2))
