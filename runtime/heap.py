"""Keep freed memory inside the process (glibc), so that a forward pass does not fault in fresh pages.

glibc's ``malloc`` serves large blocks (above a threshold that adapts up to 32 MiB) with
``mmap`` and gives them back to the kernel when freed, and it trims the top of the heap once
128 KiB or more is free. A network's activations are allocated and freed on every forward, so
each forward asks the kernel for hundreds of megabytes of zeroed pages again: about 160,000
page faults per BODY_25 forward at 368 x 656, a fifth of its time on 2 cores (1,080 ms against
860 ms once they are kept; OpenCV dnn gains alike, 950 ms against 870 ms).

:func:`keep_freed_memory` raises both thresholds with ``mallopt`` (what ``MALLOC_MMAP_THRESHOLD_``
and ``MALLOC_TRIM_THRESHOLD_`` do at start-up; PyTorch's CPU performance guide suggests jemalloc
or tcmalloc for the same reason). The cost: memory once used stays with the process until it
exits (its resident size stays at its peak). The runtime's backends call it when they open;
set ``POSEBRIDGE_KEEP_FREED_MEMORY=0`` to leave malloc as it is. Elsewhere than glibc it does
nothing.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

#: mallopt parameter numbers (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Blocks at least this large still come from mmap (and go back to the kernel when freed).
MMAP_THRESHOLD = 1 << 30
#: Free memory at the top of the heap kept before trimming (the largest value mallopt takes).
TRIM_THRESHOLD = (1 << 31) - 1
ENVIRONMENT = "POSEBRIDGE_KEEP_FREED_MEMORY"

_state: dict[str, bool] = {}


def supported() -> bool:
    """True on Linux with glibc, where ``mallopt`` exists."""
    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; True when they are raised."""
    if "applied" in _state:
        return _state["applied"]
    applied = False
    if os.environ.get(ENVIRONMENT, "1").strip().lower() not in ("0", "false", "no", "off") and supported():
        try:
            mallopt = ctypes.CDLL(None).mallopt
        except (OSError, AttributeError):
            mallopt = None
        if mallopt is not None:
            mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
            mallopt.restype = ctypes.c_int
            applied = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    _state["applied"] = applied
    return applied
