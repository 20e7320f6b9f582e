"""Reading model files from disk with one clear error for a missing, unreadable or empty file."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from posebridge.errors import FileAccessError, LimitExceededError


def read_file_bytes(path: str | os.PathLike, *, what: str, max_bytes: int) -> bytes:
    """The bytes of ``path``; raises FileAccessError / LimitExceededError naming the file."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise FileAccessError(f"{what} not found", file=str(path)) from None
    except OSError as error:
        raise FileAccessError(f"cannot read {what}: {error.strerror}", file=str(path)) from None
    if path.is_dir():
        raise FileAccessError(f"expected a {what} file, found a folder", file=str(path))
    if size == 0:
        raise FileAccessError(f"{what} is empty (0 bytes)", file=str(path))
    if size > max_bytes:
        raise LimitExceededError(
            f"{what} is {size} bytes, over the limit of {max_bytes} bytes", file=str(path))
    try:
        return path.read_bytes()
    except OSError as error:
        raise FileAccessError(f"cannot read {what}: {error.strerror}", file=str(path)) from None


MD5_CHUNK = 1 << 20


def file_md5(path: str | os.PathLike) -> str:
    """Hex MD5 of a file, read in 1 MiB chunks (how official weights are recognised)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while chunk := handle.read(MD5_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
