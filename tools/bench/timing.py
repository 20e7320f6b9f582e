"""Timing helpers: warm-up then repetitions, summarised as median and min-max spread."""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    """Seconds of the timed runs (warm-up runs excluded)."""

    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def low(self) -> float:
        return min(self.seconds)

    @property
    def high(self) -> float:
        return max(self.seconds)

    def as_dict(self) -> dict[str, object]:
        return {"median_s": self.median, "min_s": self.low, "max_s": self.high, "runs_s": list(self.seconds)}


def time_once(function: Callable[[], object]) -> tuple[float, object]:
    """(seconds, result) of one call."""
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def time_calls(function: Callable[[], object], *, warmup: int, repeats: int) -> Summary:
    """``warmup`` untimed calls, then ``repeats`` timed ones."""
    for _ in range(warmup):
        function()
    return Summary(tuple(time_once(function)[0] for _ in range(repeats)))


def time_round_robin(functions: Mapping[str, Callable[[], object]], *, warmup: int,
                     repeats: int) -> dict[str, Summary]:
    """Each function warmed up, then timed in turns (one run of each per round).

    Turns spread a changing machine load over every function alike, which back-to-back blocks
    of runs do not.
    """
    for function in functions.values():
        for _ in range(warmup):
            function()
    runs: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            runs[name].append(time_once(function)[0])
    return {name: Summary(tuple(seconds)) for name, seconds in runs.items()}


@dataclass(frozen=True)
class CpuSample:
    """Wall clock and this process's CPU time (user + system, all threads) at one moment."""

    wall: float
    cpu: float

    @classmethod
    def now(cls) -> CpuSample:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return cls(time.perf_counter(), usage.ru_utime + usage.ru_stime)


def cpu_utilisation(start: CpuSample, end: CpuSample, cores: int) -> dict[str, float]:
    """CPU seconds used, wall seconds, and their ratio per core (1.0 = every core busy all the time)."""
    wall = max(end.wall - start.wall, 1e-9)
    cpu = end.cpu - start.cpu
    return {"wall_s": wall, "cpu_s": cpu, "cores_busy": cpu / wall, "utilisation": cpu / wall / max(cores, 1)}


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def median(values: Sequence[float]) -> float:
    return statistics.median(values)
