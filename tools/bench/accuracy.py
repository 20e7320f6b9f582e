"""What reduced precision (bf16, int8) does to the maps and to the people assembled from them.

Two measurements, each comparing people found from fp32 maps with people found from the
reduced-precision maps of the same input:

* **synthetic-weight nets on photos**: the same photo through the fp32 reference backend and
  through each other backend, with the full pipeline (``PoseEstimator``). Random weights make
  noisy maps with many weak peaks near the thresholds (about a hundred "people" per photo), so
  this is a stress test: any flip of a peak across a threshold shows.
* **ground-truth scenes** (:mod:`posebridge.runtime.scenes`, 1/5/20 standing people): the
  ideal net output of the scene, and the same output plus the error field the backend made on
  the synthetic net at the same input size (its difference from fp32, relative to the fp32
  maximum, resized to the scene's maps and scaled to their maximum). This carries the measured
  error pattern onto maps with real people in them.

:func:`compare_people` pairs people greedily by mean keypoint distance and counts keypoints found
in both within a tolerance, missing, or extra.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from posebridge.runtime.people import Person

#: Keypoints closer than this (image pixels) count as the same.
TOLERANCE_PX = 1.0
SCENE_PEOPLE = (1, 5, 20)


def _distance(a: Person, b: Person) -> float:
    both = (a.keypoints[:, 2] > 0) & (b.keypoints[:, 2] > 0)
    if not both.any():
        return float("inf")
    return float(np.linalg.norm(a.keypoints[both, :2] - b.keypoints[both, :2], axis=1).mean())


def compare_people(reference: Sequence[Person], candidate: Sequence[Person],
                   tolerance_px: float = TOLERANCE_PX) -> dict[str, float | int]:
    """Agreement of ``candidate`` people with ``reference`` people (same image, same pixels).

    People are paired greedily, closest mean keypoint distance first (over parts both have).
    Counts: keypoints present in both within ``tolerance_px`` (``same``), present in both but
    further apart (``moved``), present in the reference only (``missing``) or in the candidate
    only (``extra``, including those of unpaired people); ``max_shift_px`` over paired keypoints.
    """
    pairs = sorted(((_distance(a, b), i, j) for i, a in enumerate(reference) for j, b in enumerate(candidate)))
    used_ref, used_cand, matched = set(), set(), []
    for distance, i, j in pairs:
        if distance == float("inf") or i in used_ref or j in used_cand:
            continue
        used_ref.add(i)
        used_cand.add(j)
        matched.append((i, j))
    same = moved = missing = extra = 0
    shifts = [0.0]
    for i, j in matched:
        a, b = reference[i].keypoints, candidate[j].keypoints
        in_a, in_b = a[:, 2] > 0, b[:, 2] > 0
        both = in_a & in_b
        shift = np.linalg.norm(a[both, :2] - b[both, :2], axis=1)
        same += int((shift <= tolerance_px).sum())
        moved += int((shift > tolerance_px).sum())
        shifts.extend(shift.tolist())
        missing += int((in_a & ~in_b).sum())
        extra += int((in_b & ~in_a).sum())
    missing += sum(int((reference[i].keypoints[:, 2] > 0).sum()) for i in range(len(reference)) if i not in used_ref)
    extra += sum(int((candidate[j].keypoints[:, 2] > 0).sum()) for j in range(len(candidate)) if j not in used_cand)
    total = sum(int((p.keypoints[:, 2] > 0).sum()) for p in reference)
    return {"people_reference": len(reference), "people_candidate": len(candidate), "people_paired": len(matched),
            "keypoints_reference": total, "keypoints_same": same, "keypoints_moved": moved,
            "keypoints_missing": missing, "keypoints_extra": extra,
            "same_fraction": same / total if total else 1.0, "max_shift_px": float(max(shifts))}


def merge_counts(rows: Sequence[Mapping[str, float | int]]) -> dict[str, float | int]:
    """Sum the counts of several :func:`compare_people` results (fractions recomputed, max kept)."""
    keys = ("people_reference", "people_candidate", "people_paired", "keypoints_reference", "keypoints_same",
            "keypoints_moved", "keypoints_missing", "keypoints_extra")
    total = {key: sum(int(row[key]) for row in rows) for key in keys}
    total["same_fraction"] = total["keypoints_same"] / total["keypoints_reference"] if total["keypoints_reference"] else 1.0
    total["max_shift_px"] = max((float(row["max_shift_px"]) for row in rows), default=0.0)
    return total


def photo_agreement(backends: Mapping[str, object], reference: str, images: Sequence[np.ndarray], *,
                    net_resolution: str) -> dict[str, dict]:
    """Per backend (other than ``reference``): people agreement with the reference on ``images``."""
    from posebridge.runtime.pipeline import PoseEstimator

    people = {}
    for name, backend in backends.items():
        estimator = PoseEstimator(backend, net_resolution=net_resolution)
        people[name] = [estimator(image).people for image in images]
    return {name: merge_counts([compare_people(ref, cand) for ref, cand in zip(people[reference], found)])
            for name, found in people.items() if name != reference}


def error_field(output: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(output - reference) / max |reference|, float32, same shape."""
    scale = float(np.abs(reference).max()) or 1.0
    return ((output.astype(np.float64) - reference) / scale).astype(np.float32)


def _resize_field(field: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(1, C, h, w) -> (1, C, H, W) by bilinear resizing per channel (identity when equal)."""
    import cv2

    if field.shape[2:] == tuple(size):
        return field
    planes = [cv2.resize(plane, (size[1], size[0]), interpolation=cv2.INTER_LINEAR) for plane in field[0]]
    return np.stack(planes)[None]


def scene_agreement(skeleton_name: str, fields: Mapping[str, np.ndarray], input_size: tuple[int, int],
                    people_counts: Sequence[int] = SCENE_PEOPLE) -> list[dict]:
    """Rows per backend and crowd size: people from the clean scene output vs with the error field added."""
    from posebridge.runtime import scenes
    from posebridge.runtime.postprocess import people_from_net_output
    from posebridge.runtime.skeletons import get_skeleton

    skeleton = get_skeleton(skeleton_name)
    rows = []
    for count in people_counts:
        crowd = scenes.crowd(skeleton, count, input_size)
        clean = scenes.render_net_output(crowd, skeleton, input_size)
        scale = float(np.abs(clean).max())
        reference = people_from_net_output(clean, skeleton)
        for name, field in fields.items():
            if field.shape[1] != clean.shape[1]:
                continue
            noisy = clean + _resize_field(field, clean.shape[2:]) * scale
            found = people_from_net_output(noisy.astype(np.float32), skeleton)
            rows.append({"skeleton": skeleton.name, "people": count, "backend": name,
                         **compare_people(reference, found)})
    return rows


def photos_for_accuracy(count: int, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """The shared OpenPose sample photos (when present) and the runtime's bundled photo, up to ``count``.

    ``size`` (w, h) resizes them (quick runs)."""
    import cv2

    from posebridge.shared_data import SAMPLE_IMAGES, shared_path
    from posebridge.tools.bench.media import bundled_photo

    images = []
    for relative in SAMPLE_IMAGES:
        path = shared_path(relative)
        if path is not None:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                images.append(image)
    images.append(bundled_photo())
    images = images[:max(count, 1)]
    if size is not None:
        images = [cv2.resize(image, size, interpolation=cv2.INTER_AREA) for image in images]
    return images

