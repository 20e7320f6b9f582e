"""bench_backends: timing loop, table layout and ratios, with stand-in backends (no real nets)."""

from __future__ import annotations

import numpy as np

from posebridge.tools.bench_backends import Timing, measure, table


def test_measure_warms_up_then_times_each_backend_and_compares_with_pytorch() -> None:
    calls: dict[str, int] = {"pytorch": 0, "onnxruntime": 0, "opencv": 0}

    def backend(name: str, offset: float):
        def forward(x: np.ndarray) -> np.ndarray:
            calls[name] += 1
            return x[:, :1] * 2 + offset
        return forward

    forwards = {"onnxruntime": backend("onnxruntime", 1e-3), "pytorch": backend("pytorch", 0.0),
                "opencv": backend("opencv", 0.0)}
    timings = measure(forwards, [(16, 24), (8, 8)], repeats=3)
    assert calls == {"pytorch": 8, "onnxruntime": 8, "opencv": 8}  # (1 warm-up + 3) x 2 sizes
    assert [(t.backend, t.size) for t in timings] == [
        ("onnxruntime", (16, 24)), ("pytorch", (16, 24)), ("opencv", (16, 24)),
        ("onnxruntime", (8, 8)), ("pytorch", (8, 8)), ("opencv", (8, 8))]
    assert all(len(t.seconds) == 3 for t in timings)
    by_name = {t.backend: t for t in timings if t.size == (16, 24)}
    assert by_name["pytorch"].relative_error == 0 and by_name["opencv"].relative_error == 0
    assert 0 < by_name["onnxruntime"].relative_error < 1e-2


def test_table_gives_medians_and_ratios_to_the_fastest() -> None:
    timings = [Timing("onnxruntime", (368, 656), (0.30, 0.10, 0.20), 1e-6),
               Timing("pytorch", (368, 656), (0.40, 0.40, 0.50), 0.0),
               Timing("opencv", (184, 184), (0.05, 0.05, 0.05), 2e-6)]
    lines = table(timings).splitlines()
    assert lines[2] == "| 1x3x368x656 | onnxruntime | 200 (300, 100, 200) | 1.00 | 1.0e-06 |"
    assert lines[3] == "| 1x3x368x656 | pytorch | 400 (400, 400, 500) | 2.00 | 0.0e+00 |"
    assert lines[4] == "| 1x3x184x184 | opencv | 50 (50, 50, 50) | 1.00 | 2.0e-06 |"
