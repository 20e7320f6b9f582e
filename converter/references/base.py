"""What every reference returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ReferenceOutputs:
    """One reference run.

    ``layers[name]`` is the first top written by Caffe layer ``name`` (float32, N x C x H x W for
    image nets); ``skipped[name]`` says why a layer has no value here. ``label`` names the
    reference and its version (e.g. ``"OpenCV 4.14.0 dnn"``); ``aliases[name]`` is the name the
    reference itself uses for layer ``name`` where it differs; ``notes`` are run-wide remarks.
    """

    label: str
    layers: dict[str, np.ndarray]
    skipped: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
