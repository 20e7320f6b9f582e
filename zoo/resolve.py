"""``zoo:NAME`` wherever a prototxt path is accepted: the net written once to a cache file.

The cache folder is ``$XDG_CACHE_HOME/posebridge/zoo`` (``~/.cache/posebridge/zoo`` when unset),
or a per-user folder in the system temp directory when that cannot be written. Files are
written atomically and rewritten only when their text differs from the zoo's.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from posebridge.atomic import write_text_atomic
from posebridge.errors import FileAccessError
from posebridge.prototxt import Graph, graph_from_net
from posebridge.zoo.registry import ZOO_PREFIX, build, entry, prototxt_text

CACHE_ENV = "XDG_CACHE_HOME"
CACHE_SUBDIR = ("posebridge", "zoo")
PROTOTXT_SUFFIX = ".prototxt"


def is_zoo_ref(value: str | os.PathLike) -> bool:
    """True for a string of the form ``zoo:NAME`` (any case)."""
    return isinstance(value, str) and value.strip().lower().startswith(ZOO_PREFIX)


def cache_dir() -> Path:
    """Where resolved zoo prototxts are written."""
    base = os.environ.get(CACHE_ENV) or str(Path.home() / ".cache")
    return Path(base).joinpath(*CACHE_SUBDIR)


def _fallback_dir() -> Path:
    user = os.getuid() if hasattr(os, "getuid") else os.getpid()
    return Path(tempfile.gettempdir()) / f"posebridge-zoo-{user}"


def _write_if_changed(target: Path, text: str) -> None:
    try:
        if target.read_text(encoding="utf-8") == text:
            return
    except (OSError, UnicodeDecodeError):
        pass
    write_text_atomic(target, text)


def resolve(path_or_zoo: str | os.PathLike) -> Path:
    """The prototxt path for ``zoo:NAME`` (written to the cache), or ``path_or_zoo`` as a Path.

    Raises :class:`~posebridge.zoo.UnknownZooNetError` (a FileAccessError) for an unknown name,
    listing the known ones.
    """
    if not is_zoo_ref(path_or_zoo):
        return Path(path_or_zoo)
    name = entry(str(path_or_zoo)).name
    text = prototxt_text(name)
    errors = []
    for folder in (cache_dir(), _fallback_dir()):
        target = folder / f"{name}{PROTOTXT_SUFFIX}"
        try:
            _write_if_changed(target, text)
            return target
        except (OSError, FileAccessError) as error:  # atomic writes report OSErrors as FileAccessError
            reason = error.detail if isinstance(error, FileAccessError) else (error.strerror or error)
            errors.append(f"{folder}: {reason}")
    raise FileAccessError(f"cannot write the zoo prototxt ({'; '.join(errors)})", file=str(path_or_zoo))


def export(name: str, path: str | os.PathLike) -> Path:
    """Write the zoo net ``name`` as prototxt text to ``path`` (atomically); returns the path."""
    target = Path(path)
    write_text_atomic(target, prototxt_text(entry(name).name))
    return target


def graph(name: str) -> Graph:
    """The zoo net as a :class:`~posebridge.prototxt.Graph` (no file written); source ``zoo:NAME``."""
    chosen = entry(name)
    return graph_from_net(build(chosen.name), source=f"{ZOO_PREFIX}{chosen.name}")
