"""A PNG plot of forward time against input size, one line per backend, drawn with OpenCV.

One panel per net; x: input pixels (H x W, in megapixels), y: median milliseconds (min-max as
a vertical bar). No plotting library needed: lines, markers and text are cv2 drawing calls.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import cv2
import numpy as np

PANEL_SIZE = (620, 440)  # (w, h) of one panel
MARGIN = {"left": 78, "right": 20, "top": 40, "bottom": 56}
LEGEND_HEIGHT = 24
FONT = cv2.FONT_HERSHEY_SIMPLEX
BACKGROUND, AXIS, GRID, TEXT = (255, 255, 255), (60, 60, 60), (225, 225, 225), (30, 30, 30)
#: BGR colours per backend, in BACKENDS order; others cycle through the list.
COLOURS = ((40, 40, 200), (150, 100, 30), (30, 140, 240), (40, 160, 40), (180, 60, 150), (120, 120, 120), (0, 180, 200),
           (20, 20, 20), (200, 190, 40), (60, 90, 140))


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (about ``count`` of them)."""
    if high <= low:
        high = low + 1.0
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value <= high + step * 0.5:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _label(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e4 else f"{value:.0e}"


def _panel(title: str, series: dict[str, list[tuple[float, float, float, float]]], colours: dict[str, tuple]) -> np.ndarray:
    width, height = PANEL_SIZE
    image = np.full((height, width, 3), BACKGROUND, np.uint8)
    left, right, top, bottom = MARGIN["left"], width - MARGIN["right"], MARGIN["top"], height - MARGIN["bottom"]
    xs = [p[0] for points in series.values() for p in points]
    ys = [p[3] for points in series.values() for p in points]
    x_ticks = nice_ticks(0.0, max(xs) if xs else 1.0)
    y_ticks = nice_ticks(0.0, max(ys) if ys else 1.0)
    x_max, y_max = x_ticks[-1], y_ticks[-1]

    def to_pixel(x: float, y: float) -> tuple[int, int]:
        return (int(round(left + (right - left) * x / x_max)), int(round(bottom - (bottom - top) * y / y_max)))

    for tick in y_ticks:
        _, py = to_pixel(0, tick)
        cv2.line(image, (left, py), (right, py), GRID, 1)
        cv2.putText(image, _label(tick), (8, py + 5), FONT, 0.45, TEXT, 1, cv2.LINE_AA)
    for tick in x_ticks:
        px, _ = to_pixel(tick, 0)
        cv2.line(image, (px, top), (px, bottom), GRID, 1)
        cv2.putText(image, _label(tick), (px - 12, bottom + 18), FONT, 0.45, TEXT, 1, cv2.LINE_AA)
    cv2.rectangle(image, (left, top), (right, bottom), AXIS, 1)
    cv2.putText(image, title, (left, 26), FONT, 0.6, TEXT, 1, cv2.LINE_AA)
    cv2.putText(image, "input size (megapixels, batch 1)", (left + 120, height - 14), FONT, 0.45, TEXT, 1, cv2.LINE_AA)
    cv2.putText(image, "ms", (8, top - 12), FONT, 0.45, TEXT, 1, cv2.LINE_AA)
    for name, points in series.items():
        colour = colours[name]
        ordered = sorted(points)
        pixels = [to_pixel(x, y) for x, y, _, _ in ordered]
        for a, b in zip(pixels, pixels[1:]):
            cv2.line(image, a, b, colour, 2, cv2.LINE_AA)
        for (x, _, low, high), pixel in zip(ordered, pixels):
            cv2.line(image, to_pixel(x, low), to_pixel(x, high), colour, 1, cv2.LINE_AA)
            cv2.circle(image, pixel, 4, colour, -1, cv2.LINE_AA)
    return image


def _legend(names: Sequence[str], colours: dict[str, tuple], width: int) -> np.ndarray:
    rows = max(1, math.ceil(len(names) / 3))
    image = np.full((LEGEND_HEIGHT * rows + 8, width, 3), BACKGROUND, np.uint8)
    column_width = width // 3
    for index, name in enumerate(names):
        row, column = divmod(index, 3)
        x, y = 16 + column * column_width, 18 + row * LEGEND_HEIGHT
        cv2.line(image, (x, y - 5), (x + 28, y - 5), colours[name], 3, cv2.LINE_AA)
        cv2.putText(image, name, (x + 36, y), FONT, 0.5, TEXT, 1, cv2.LINE_AA)
    return image


def forward_plot(forward_rows: Sequence[dict], backend_order: Sequence[str] = ()) -> np.ndarray:
    """The plot (BGR uint8 image) of ``bench.json``'s forward rows."""
    nets = list(dict.fromkeys(row["net"] for row in forward_rows)) or ["(no data)"]
    names = list(dict.fromkeys([*[b for b in backend_order if any(r["backend"] == b for r in forward_rows)],
                                *[row["backend"] for row in forward_rows]]))
    colours = {name: COLOURS[index % len(COLOURS)] for index, name in enumerate(names)}
    panels = []
    for net in nets:
        series: dict[str, list[tuple[float, float, float, float]]] = {}
        for row in forward_rows:
            if row["net"] == net:
                megapixels = row["size"][0] * row["size"][1] / 1e6
                series.setdefault(row["backend"], []).append(
                    (megapixels, row["median_s"] * 1e3, row["min_s"] * 1e3, row["max_s"] * 1e3))
        panels.append(_panel(f"{net}: forward time per backend", series, colours))
    body = np.hstack(panels)
    return np.vstack([body, _legend(names, colours, body.shape[1])])


def write_forward_plot(path: str | os.PathLike, forward_rows: Sequence[dict], backend_order: Sequence[str] = ()) -> None:
    """Write the plot as PNG (atomically)."""
    from posebridge.atomic import write_bytes_atomic

    ok, encoded = cv2.imencode(".png", forward_plot(forward_rows, backend_order))
    if not ok:
        from posebridge.errors import PosebridgeError

        raise PosebridgeError("OpenCV could not encode the plot as PNG", file=os.fspath(path))
    write_bytes_atomic(path, encoded.tobytes())
