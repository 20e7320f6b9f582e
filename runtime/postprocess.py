"""Maps -> people: OpenPose's post-processing glue (peaks, then the connector).

openpose: src/openpose/pose/poseExtractorCaffe.cpp: the net output is resized x8 (cubic) to the
net input size, NMS runs on the K part channels with offset ``0.5 / scaleNetToOutput``, the
connector runs on those peaks and the resized PAFs, and keypoints are multiplied by
``scaleNetToOutput`` (net input pixels -> image pixels).
"""

from __future__ import annotations

import numpy as np

from posebridge.errors import PosebridgeError, ShapeError
from posebridge.runtime import assembler, assembler_cvpr2017
from posebridge.runtime.peaks import find_peaks
from posebridge.runtime.people import Person
from posebridge.runtime.skeletons import NET_STRIDE, POSE_MAX_PEOPLE, Skeleton
from posebridge.runtime.upsample import upsample_net_output

#: Post-processing variants: OpenPose's CPU connector, or the CVPR 2017 demo's.
VARIANTS = ("openpose", "cvpr2017")

_OPENPOSE_OPTIONS = {"nms_threshold", "inter_threshold", "inter_min_above_threshold", "min_subset_cnt",
                     "min_subset_score", "max_peaks", "max_people", "maximize_positives", "peak_offset", "scale"}


def _split_maps(heatmaps: np.ndarray, pafs: np.ndarray, skeleton: Skeleton) -> tuple[np.ndarray, np.ndarray]:
    heatmaps = np.asarray(heatmaps, dtype=np.float32)
    pafs = np.asarray(pafs, dtype=np.float32)
    if heatmaps.ndim != 3 or heatmaps.shape[0] not in (skeleton.part_count, skeleton.heatmap_count):
        raise ShapeError(f"heatmaps of shape {heatmaps.shape}: expected ({skeleton.part_count} or "
                         f"{skeleton.heatmap_count}, H, W) for {skeleton.name}")
    if pafs.shape != (skeleton.paf_count, *heatmaps.shape[1:]):
        raise ShapeError(f"PAFs of shape {pafs.shape}: expected ({skeleton.paf_count}, "
                         f"{heatmaps.shape[1]}, {heatmaps.shape[2]}) for {skeleton.name}")
    return heatmaps[: skeleton.part_count], pafs


def people_from_maps(heatmaps: np.ndarray, pafs: np.ndarray, skeleton: Skeleton, *, variant: str = "openpose",
                     **thresholds) -> list[Person]:
    """People from maps already at the resolution where keypoints are wanted.

    heatmaps: (K or K+1, H, W) float32 (a background channel is ignored); pafs: (2L, H, W).
    variant "openpose" (OpenPose's NMS + CPU connector) takes nms_threshold,
    inter_threshold, inter_min_above_threshold, min_subset_cnt, min_subset_score (None or absent:
    OpenPose's default for the skeleton), max_peaks, max_people (127), maximize_positives (False),
    peak_offset (added to peak x, y; default 0) and scale (keypoints x, y multiplied; default 1).
    variant "cvpr2017" takes the options of assembler_cvpr2017.people_from_maps_cvpr2017.
    Keypoints are (K, 3) x, y, score in map pixels (times scale); missing parts are 0, 0, 0.
    """
    if variant == "cvpr2017":
        return assembler_cvpr2017.people_from_maps_cvpr2017(heatmaps, pafs, skeleton, **thresholds)
    if variant != "openpose":
        raise PosebridgeError(f"unknown post-processing variant {variant!r}; known: {', '.join(VARIANTS)}")
    unknown = set(thresholds) - _OPENPOSE_OPTIONS
    if unknown:
        raise PosebridgeError(f"unknown option(s) {sorted(unknown)} for variant 'openpose'; "
                              f"known: {sorted(_OPENPOSE_OPTIONS)}")
    part_maps, pafs = _split_maps(heatmaps, pafs, skeleton)
    maximize_positives = bool(thresholds.get("maximize_positives", False))
    resolved = assembler.resolve_defaults(skeleton, maximize_positives, nms_threshold=thresholds.get("nms_threshold"),
                                          max_peaks=thresholds.get("max_peaks"))
    peaks = find_peaks(part_maps, resolved["nms_threshold"], max_peaks=int(resolved["max_peaks"]),
                       offset=thresholds.get("peak_offset", 0.0))
    return assembler.assemble(
        peaks, pafs, skeleton,
        inter_threshold=thresholds.get("inter_threshold"),
        inter_min_above_threshold=thresholds.get("inter_min_above_threshold"),
        min_subset_cnt=thresholds.get("min_subset_cnt"),
        min_subset_score=thresholds.get("min_subset_score"),
        max_people=int(thresholds.get("max_people", POSE_MAX_PEOPLE)),
        maximize_positives=maximize_positives,
        scale=float(thresholds.get("scale", 1.0)),
    )


def people_from_net_output(net_output: np.ndarray, skeleton: Skeleton, *, scale_net_to_output: float = 1.0,
                           stride: int = NET_STRIDE, variant: str = "openpose", **thresholds) -> list[Person]:
    """People from the raw net output at stride 8, as OpenPose's PoseExtractorCaffe does it.

    net_output: (1, C, h, w) or (C, h, w), heatmaps (with background) then PAFs.
    scale_net_to_output: image pixels per net-input pixel (OpenPose's mScaleNetToOutput); the
    maps are resized x stride (cubic), peaks get OpenPose's offset 0.5 / scale_net_to_output
    (openpose variant) and keypoints are multiplied by scale_net_to_output.
    """
    maps = np.asarray(net_output, dtype=np.float32)
    if maps.ndim == 4:
        if maps.shape[0] != 1:
            raise ShapeError(f"people_from_net_output: one image at a time, got a batch of {maps.shape[0]}")
        maps = maps[0]
    if maps.ndim != 3 or maps.shape[0] != skeleton.channel_count:
        raise ShapeError(f"net output of shape {tuple(np.shape(net_output))}: expected "
                         f"{skeleton.channel_count} channels for {skeleton.name}")
    if not scale_net_to_output > 0:
        raise PosebridgeError(f"scale_net_to_output must be > 0, got {scale_net_to_output}")
    upsampled = upsample_net_output(maps, stride)
    heatmaps, pafs = upsampled[: skeleton.heatmap_count], upsampled[skeleton.heatmap_count:]
    options = dict(thresholds)
    options.setdefault("scale", scale_net_to_output)
    if variant == "openpose":
        options.setdefault("peak_offset", float(np.float32(0.5 / scale_net_to_output)))
    return people_from_maps(heatmaps, pafs, skeleton, variant=variant, **options)
