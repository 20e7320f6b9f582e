"""One image to OpenPose's people: preprocessing, the network, merging scales, peaks, assembly.

The order is OpenPose's (PoseExtractorCaffe): the image is warped to each scale's net input
size (top-left anchored, padded right/bottom), the net runs, every scale's maps are resized
(cubic) to scale 0's net input size and averaged, NMS finds the peaks (with OpenPose's
``0.5 / scaleNetToOutput`` offset), the greedy connector assembles people, and keypoints are
multiplied by ``scaleNetToOutput`` into image pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from posebridge.errors import PosebridgeError
from posebridge.runtime.backends import Backend
from posebridge.runtime.people import Person
from posebridge.runtime.postprocess import people_from_maps
from posebridge.runtime.preprocess import (
    DEFAULT_NET_RESOLUTION,
    DEFAULT_SCALE_GAP,
    DEFAULT_SCALE_NUMBER,
    nms_offset,
    prepare_inputs,
    scale_net_to_output,
)
from posebridge.runtime.skeletons import Skeleton, get_skeleton
from posebridge.runtime.upsample import average_scales


@dataclass
class PoseResult:
    """The people found in one image; maps (C, H, W) at scale 0's net input size when kept."""

    name: str
    image_size: tuple[int, int]  # (w, h)
    people: list[Person]
    skeleton: Skeleton
    maps: np.ndarray | None = field(default=None, repr=False)
    scale: float = 1.0  # image -> net input factor of scale 0


@dataclass
class PoseEstimator:
    """OpenPose inference for one backend. Call it on uint8 BGR (H, W, 3) images."""

    backend: Backend
    net_resolution: str = DEFAULT_NET_RESOLUTION
    scale_number: int = DEFAULT_SCALE_NUMBER
    scale_gap: float = DEFAULT_SCALE_GAP
    variant: str = "openpose"
    skeleton: Skeleton | None = None
    keep_maps: bool = False
    thresholds: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.skeleton is None:
            name = self.backend.family.skeleton
            if name is None:
                raise PosebridgeError(
                    f"cannot tell which skeleton the net outputs (family '{self.backend.family.name}'); "
                    "name one with --skeleton")
            self.skeleton = get_skeleton(name)
        if self.skeleton.paf_count == 0:
            raise PosebridgeError(f"{self.skeleton.name} is a single-person heatmap net (hand or face): run it "
                                  "on crops with --hand/--face, not as the body net")

    def net_maps(self, images: Sequence[np.ndarray]) -> list[tuple[np.ndarray, float, tuple[int, int]]]:
        """Per image: merged maps (C, H, W) at scale 0's net size, scale 0's factor, that net size.

        Images of the same size go through the network together, one batch per scale.
        """
        prepared = [prepare_inputs(image, net_resolution=self.net_resolution, scale_number=self.scale_number,
                                   scale_gap=self.scale_gap) for image in images]
        results: list[list[np.ndarray]] = [[] for _ in images]
        groups: dict[tuple, list[int]] = {}
        for index, scales in enumerate(prepared):
            groups.setdefault(tuple(s.net_size for s in scales), []).append(index)
        for members in groups.values():
            for scale_index in range(len(prepared[members[0]])):
                batch = np.concatenate([prepared[i][scale_index].tensor for i in members], axis=0)
                output = self.backend.infer(batch)
                for row, i in enumerate(members):
                    results[i].append(output[row])
        merged = []
        for scales, outputs in zip(prepared, results):
            width, height = scales[0].net_size
            merged.append((average_scales(outputs, (height, width)), scales[0].scale, scales[0].net_size))
        return merged

    def people(self, maps: np.ndarray, image_size: tuple[int, int], net_size: tuple[int, int]) -> list[Person]:
        """People in image pixels from merged maps at scale 0's net size."""
        skeleton = self.skeleton
        expected = skeleton.channel_count
        if maps.shape[0] != expected:
            raise PosebridgeError(f"the net outputs {maps.shape[0]} channels; the {skeleton.name} skeleton needs "
                                  f"{expected}")
        to_image = scale_net_to_output(image_size, net_size)
        options = dict(self.thresholds)
        if self.variant == "openpose":
            options.setdefault("peak_offset", nms_offset(to_image))
            options.setdefault("scale", to_image)
        people = people_from_maps(maps[: skeleton.heatmap_count], maps[skeleton.heatmap_count:], skeleton,
                                  variant=self.variant, **options)
        if self.variant != "openpose":  # the CVPR 2017 assembler returns net-input pixels
            for person in people:
                found = person.keypoints[:, 2] > 0
                person.keypoints[found, :2] *= np.float32(to_image)
        return people

    def estimate(self, images: Sequence[np.ndarray], names: Sequence[str] | None = None) -> list[PoseResult]:
        """The people of each image (a batch of frames of one size runs the net once per scale)."""
        names = list(names) if names is not None else [str(i) for i in range(len(images))]
        results = []
        for image, name, (maps, scale, net_size) in zip(images, names, self.net_maps(images)):
            image_size = (image.shape[1], image.shape[0])
            results.append(PoseResult(name=name, image_size=image_size,
                                      people=self.people(maps, image_size, net_size), skeleton=self.skeleton,
                                      maps=maps if self.keep_maps else None, scale=scale))
        return results

    def __call__(self, image: np.ndarray, name: str = "image") -> PoseResult:
        return self.estimate([image], [name])[0]
