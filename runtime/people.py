"""The result of assembly: one detected person."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Person:
    """One person as OpenPose outputs it.

    keypoints: (K, 3) float32 rows of x, y (pixels of the maps given to the assembler, or of
    the image once mapped back) and the peak score; a missing part is 0, 0, 0.
    score: OpenPose's subset score (sum of the part scores and limb scores of the person).
    part_count: number of parts found.
    """

    keypoints: np.ndarray
    score: float
    part_count: int

    @property
    def mean_score(self) -> float:
        """score / part_count, the quantity OpenPose compares with minSubsetScore."""
        return self.score / self.part_count if self.part_count else 0.0

    def flat(self) -> list[float]:
        """x, y, c triples flattened, as in OpenPose's ``pose_keypoints_2d``."""
        return [float(v) for v in self.keypoints.reshape(-1)]
