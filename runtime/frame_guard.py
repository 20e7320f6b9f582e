"""Frames a pose estimator can take, the others reported and skipped, for batch runs.

A batch over a folder or a video must not stop at one bad frame. The media reader already
reports files it cannot decode (empty, corrupt, too large to decode); this guard reports
decoded frames the network cannot take: smaller than 2x2 pixels (OpenPose's scale factor
(n-1)/(size-1)), or so elongated that the net input would pass ``MAX_NET_INPUT_PIXELS``. The
check is the preprocessing's own (:func:`posebridge.runtime.preprocess.check_input_image`)
and allocates nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np

from posebridge.errors import InputMediaError, PosebridgeError
from posebridge.runtime.preprocess import check_input_image, net_input_sizes

#: An image size every sensible option set must accept; options that fail it are a user error.
REFERENCE_IMAGE_SIZE = (640, 480)

Frame = tuple[str, np.ndarray]


def check_options(estimator) -> None:
    """Raise PosebridgeError when the estimator's net_resolution / scale options are unusable for
    an ordinary 640x480 image (a user error, reported once, not per frame)."""
    net_input_sizes(REFERENCE_IMAGE_SIZE, net_resolution=estimator.net_resolution,
                    scale_number=estimator.scale_number, scale_gap=estimator.scale_gap)


def runnable_frames(frames: Iterable[Frame], estimator, on_error: Callable[[InputMediaError], None]) -> Iterator[Frame]:
    """``frames`` without those ``estimator`` would refuse; each refused one goes to ``on_error``.

    ``estimator`` is a :class:`posebridge.runtime.pipeline.PoseEstimator` (its net_resolution,
    scale_number and scale_gap are read). Raises PosebridgeError first if those options are
    unusable for any ordinary image.
    """
    check_options(estimator)
    for name, frame in frames:
        try:
            check_input_image(frame, net_resolution=estimator.net_resolution, scale_number=estimator.scale_number,
                              scale_gap=estimator.scale_gap)
        except PosebridgeError as error:
            on_error(InputMediaError(f"frame '{name}' cannot be run: {error}"))
            continue
        yield name, frame
