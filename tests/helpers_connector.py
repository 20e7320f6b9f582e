"""Test helpers for the post-processing: a loop-by-loop transcription of OpenPose's CPU connector
(bodyPartConnectorBase.cpp) used as the reference, and a topology oracle for scenes."""

from __future__ import annotations

import numpy as np

from posebridge.runtime.skeletons import Skeleton


def reference_score_ab(a, b, map_x, map_y, inter_threshold, inter_min_above_threshold) -> np.float32:
    """getScoreAB with float32 scalars, one sample at a time."""
    f = np.float32
    height, width = map_x.shape
    ax, ay = f(a[0]), f(a[1])
    dx, dy = f(b[0]) - ax, f(b[1]) - ay
    largest = max(abs(dx), abs(dy))
    samples = max(5, min(25, int(np.sqrt(f(5) * largest) + f(0.5))))
    norm = np.sqrt(dx * dx + dy * dy)
    if not float(norm) > 1e-6:
        return f(0)
    ux, uy = dx / norm, dy / norm
    step_x, step_y = dx / f(samples), dy / f(samples)
    total, count = f(0), 0
    for k in range(samples):
        mx = max(0, min(width - 1, int(ax + f(k) * step_x + f(0.5))))
        my = max(0, min(height - 1, int(ay + f(k) * step_y + f(0.5))))
        score = ux * map_x[my, mx] + uy * map_y[my, mx]
        if score > f(inter_threshold):
            total = f(total + score)
            count += 1
    if f(count) / f(samples) > f(inter_min_above_threshold):
        return f(total / f(count))
    return f(0)


def reference_connector(peaks, pafs, skeleton: Skeleton, *, inter_threshold, inter_min_above_threshold,
                        min_subset_cnt, min_subset_score, max_people=127, count_feet=False):
    """createPeopleVector + removePeopleBelowThresholds + peopleVectorToPeopleArray.

    Rows hold 1-based peak numbers (0: none) like OpenPose's offsets. Returns a list of
    (keypoints (K, 3) float32, subset score float32)."""
    f = np.float32
    parts = skeleton.part_count
    people = []  # [row (list of int), count, score]
    for pair_index, (part_a, part_b) in enumerate(skeleton.limbs):
        cand_a, cand_b = peaks[part_a], peaks[part_b]
        n_a, n_b = len(cand_a), len(cand_b)
        if n_a == 0 or n_b == 0:
            part, cands = (part_b, cand_b) if n_a == 0 else (part_a, cand_a)
            for i in range(1, len(cands) + 1):
                taken = any(row[part] == i for row, _, _ in people)
                if parts != 15 and taken:
                    continue
                row = [0] * parts
                row[part] = i
                people.append([row, 1, f(cands[i - 1][2])])
            continue
        channel_x, channel_y = skeleton.paf_channels[pair_index]
        all_connections = []
        for i in range(1, n_a + 1):
            for j in range(1, n_b + 1):
                score = reference_score_ab(cand_a[i - 1], cand_b[j - 1], pafs[channel_x], pafs[channel_y],
                                           inter_threshold, inter_min_above_threshold)
                if float(score) > 1e-6:
                    all_connections.append((float(score), i, j))
        all_connections.sort(reverse=True)
        connections = []
        used_a, used_b = [0] * n_a, [0] * n_b
        for score, i, j in all_connections:
            if not used_a[i - 1] and not used_b[j - 1]:
                connections.append((i, j, score))
                if len(connections) == min(n_a, n_b):
                    break
                used_a[i - 1] = used_b[j - 1] = 1
        if not connections:
            continue
        ear = (parts == 18 and pair_index in (17, 18)) or (parts in (19, 25, 59, 65) and pair_index in (18, 19))
        if pair_index == 0:
            for i, j, score in connections:
                row = [0] * parts
                row[part_a], row[part_b] = i, j
                people.append([row, 2, f(np.float64(f(cand_a[i - 1][2]) + f(cand_b[j - 1][2])) + score)])
        elif ear:
            for i, j, _ in connections:
                for person in people:
                    row = person[0]
                    if row[part_a] == i and row[part_b] == 0:
                        row[part_b] = j
                    elif row[part_b] == j and row[part_a] == 0:
                        row[part_a] = i
        else:
            for i, j, score in connections:
                score = f(score)
                for person in people:
                    if person[0][part_a] == i:
                        person[0][part_b] = j
                        person[1] += 1
                        person[2] = f(person[2] + f(f(cand_b[j - 1][2]) + score))
                        break
                else:
                    row = [0] * parts
                    row[part_a], row[part_b] = i, j
                    people.append([row, 2, f(f(f(cand_a[i - 1][2]) + f(cand_b[j - 1][2])) + score)])
    out = []
    for row, count, score in people:
        if parts == 25 and not count_feet:
            count -= sum(1 for part in range(19, 25) if row[part] > 0)
        if count >= min_subset_cnt and count > 0 and f(score) / f(count) >= f(min_subset_score):
            keypoints = np.zeros((parts, 3), dtype=np.float32)
            for part, number in enumerate(row):
                if number:
                    keypoints[part] = peaks[part][number - 1]
            out.append((keypoints, f(score)))
            if len(out) == max_people:
                break
    return out


def expected_groups(present: np.ndarray, skeleton: Skeleton, completing_limbs=(), uncounted_parts=(),
                    min_count: int = 3) -> list[set[int]]:
    """The part sets OpenPose's connector makes of one isolated person whose present parts all
    have peaks and PAFs: limbs in table order grow the group holding A or start a new group;
    completing limbs only fill in a missing end. Groups counting fewer than min_count are dropped."""
    groups: list[list] = []  # [parts set, count]
    for limb_index, (a, b) in enumerate(skeleton.limbs):
        if not (present[a] and present[b]):
            continue
        if limb_index in completing_limbs:
            for group in groups:
                if a in group[0] and b not in group[0]:
                    group[0].add(b)
                elif b in group[0] and a not in group[0]:
                    group[0].add(a)
            continue
        holder = next((g for g in groups if a in g[0]), None) if limb_index else None
        if holder is None:
            groups.append([{a, b}, 2])
        else:
            holder[0].add(b)
            holder[1] += 1
    kept = []
    for parts, count in groups:
        if count - len(parts & set(uncounted_parts)) >= min_count:
            kept.append(parts)
    return kept
