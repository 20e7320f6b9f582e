"""Freed memory stays in the process once a backend opens: no fresh page faults per forward."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from posebridge.runtime import heap

pytestmark = pytest.mark.skipif(not heap.supported(), reason="mallopt thresholds are a glibc feature")

# Allocates (glibc malloc), touches and frees a 64 MiB block 10 times, before and after keep_freed_memory();
# prints the page faults of each phase.
PROBE = r"""
import ctypes, json, resource
from posebridge.runtime import heap

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = (ctypes.c_void_p,)
SIZE = 64 * 2**20

def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        block = libc.malloc(SIZE)
        ctypes.memset(block, 1, SIZE)
        libc.free(block)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

first = faults()
applied = heap.keep_freed_memory()
faults()  # the first block after the change still comes from the kernel
print(json.dumps({"applied": applied, "before": first, "after": faults()}))
"""


def _probe(env_value: str | None) -> dict:
    env = dict(os.environ)
    env.pop(heap.ENVIRONMENT, None)
    if env_value is not None:
        env[heap.ENVIRONMENT] = env_value
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_keeping_freed_memory_stops_the_page_faults():
    result = _probe(None)
    pages = 10 * 64 * 2**20 // 4096
    assert result["applied"] is True
    assert result["before"] >= pages // 2  # every 64 MiB block was mapped afresh
    assert result["after"] < pages // 50


def test_environment_variable_leaves_malloc_alone():
    result = _probe("0")
    assert result["applied"] is False
    assert result["after"] >= 10 * 64 * 2**20 // 4096 // 2


def test_opening_a_backend_applies_it(tmp_path):
    from helpers_bench import small_net
    from posebridge.converter.model_family import ModelFamily
    from posebridge.runtime.backends import TorchBackend

    TorchBackend(small_net(tmp_path), ModelFamily("x", "test", None, None, 0, None, None))
    assert heap._state.get("applied") is True
