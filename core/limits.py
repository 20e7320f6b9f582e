"""Resource limits checked before posebridge allocates anything a model file asks for.

Defaults are generous for real models (the largest official OpenPose caffemodel is 209 MB and
has 261 layers) and small enough that a hostile file cannot exhaust memory. Override them per
call, or process-wide with the environment variables named below.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value and value.isdigit() else default


@dataclass(frozen=True)
class Limits:
    """Upper bounds on what a model file may ask for."""

    max_prototxt_bytes: int = _env_int("POSEBRIDGE_MAX_PROTOTXT_BYTES", 32 * 1024 * 1024)
    max_caffemodel_bytes: int = _env_int("POSEBRIDGE_MAX_CAFFEMODEL_BYTES", 4 * 1024**3)
    max_layers: int = _env_int("POSEBRIDGE_MAX_LAYERS", 20_000)
    max_blob_elements: int = _env_int("POSEBRIDGE_MAX_BLOB_ELEMENTS", 1_000_000_000)
    max_activation_bytes: int = _env_int("POSEBRIDGE_MAX_ACTIVATION_BYTES", 16 * 1024**3)
    max_nesting_depth: int = _env_int("POSEBRIDGE_MAX_NESTING_DEPTH", 64)


DEFAULT_LIMITS = Limits()
