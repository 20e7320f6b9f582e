"""OpenPose's CPU body-part connector (openpose: src/openpose/net/bodyPartConnectorBase.cpp,
``connectBodyPartsCpu`` -> ``createPeopleVector``, ``removePeopleBelowThresholds``,
``peopleVectorToPeopleArray``), rewritten with numpy for the limb scores.

Limb score (``getScoreAB``), for a candidate A -> B in map pixels:
``n = max(5, min(25, intRound(sqrt(5 * max(|dx|, |dy|)))))`` samples at ``A + k (B - A) / n``,
k = 0..n-1, rounded with ``int(v + 0.5)`` and clamped to the map; a sample counts when
PAF . unit(B - A) > inter_threshold; the limb is accepted when count / n > inter_min_above_threshold
and scores the mean of the counted samples; coincident peaks (|B - A| <= 1e-6) score 0.

Assembly, limb types in table order:

- one side has no peaks: each peak of the other side that no person holds yet becomes a
  one-part person (MPI, 15 parts: every peak, without that check);
- otherwise the pairs scoring > 1e-6 are sorted by (score, i, j) descending and taken greedily,
  each peak once, up to min(nA, nB) connections;
- first limb type: every connection starts a person (score = both peak scores + limb score);
- the ear-shoulder limb types (COCO 17, 18; BODY_25 18, 19) only complete people: a person
  holding A without B gets B and vice versa (neither count nor score change);
- other limb types: the first person holding A gets B (count + 1, score + B's peak + limb score),
  else the pair starts a new person.

A person is kept when count >= min_subset_cnt and score / count >= min_subset_score, where for
BODY_25 the count leaves out the 6 foot parts (unless maximize_positives), stopping at max_people.

Arithmetic is float32 like OpenPose's (``T = float``), with the same summation order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from posebridge.errors import PosebridgeError, ShapeError
from posebridge.runtime.people import Person
from posebridge.runtime.skeletons import POSE_MAX_PEOPLE, AssemblerDefaults, Skeleton

#: Samples along a limb: max(MIN, min(MAX, intRound(sqrt(FACTOR * max(|dx|, |dy|))))).
MIN_SAMPLES = 5
MAX_SAMPLES = 25
SAMPLES_FACTOR = 5.0
#: Connections and norms at or below these are ignored (``scoreAB > 1e-6``, ``vectorNorm > 1e-6``).
MIN_CONNECTION_SCORE = 1e-6
MIN_LIMB_NORM = 1e-6

#: Defaults with OpenPose's ``--maximize_positives`` (poseParameters.cpp, getPoseDefault*):
#: NMS 0.02 (MPI keeps 0.6 / 0.3), inter threshold 0.01, min above 0.75, count 2, score 0.05.
MAXIMIZE_POSITIVES = {"nms_threshold": 0.02, "inter_threshold": 0.01, "inter_min_above_threshold": 0.75,
                      "min_subset_cnt": 2, "min_subset_score": 0.05}


@dataclass(frozen=True)
class ConnectorRules:
    """The model-specific branches of createPeopleVector / removePeopleBelowThresholds, which
    OpenPose selects by the number of body parts."""

    completing_limbs: tuple[int, ...] = ()   # limb indices that only fill in a missing end
    check_unmatched_taken: bool = True       # one-part people only for peaks nobody holds yet
    uncounted_parts: tuple[int, ...] = ()    # parts left out of the final count


#: Keyed by part count: 18 (COCO), 15 (MPI), 25 (BODY_25); OpenPose uses the same numbers.
CONNECTOR_RULES: dict[int, ConnectorRules] = {
    18: ConnectorRules(completing_limbs=(17, 18)),
    15: ConnectorRules(check_unmatched_taken=False),
    25: ConnectorRules(completing_limbs=(18, 19), uncounted_parts=tuple(range(19, 25))),
}


def connector_rules(skeleton: Skeleton) -> ConnectorRules:
    """The special cases OpenPose applies to this skeleton (none for unknown part counts)."""
    return CONNECTOR_RULES.get(skeleton.part_count, ConnectorRules())


def resolve_defaults(skeleton: Skeleton, maximize_positives: bool = False, **given: float | int | None) -> dict:
    """Thresholds with None replaced by OpenPose's default for the skeleton (or the
    maximize-positives default); unknown names raise."""
    base = skeleton.defaults
    known = set(AssemblerDefaults.__dataclass_fields__)
    unknown = set(given) - known
    if unknown:
        raise PosebridgeError(f"unknown threshold(s) {sorted(unknown)}; known: {sorted(known)}")
    resolved = {}
    for name in known:
        value = given.get(name)
        if value is None:
            value = getattr(base, name)
            if maximize_positives and name in MAXIMIZE_POSITIVES:
                keeps_mpi_nms = name == "nms_threshold" and skeleton.part_count == 15
                value = value if keeps_mpi_nms else MAXIMIZE_POSITIVES[name]
        resolved[name] = value
    return resolved


def _allowed_failures(inter_min_above_threshold: float) -> np.ndarray:
    """For n samples, the most samples that may fail while count / n > the threshold (float32);
    -1 when even n of n does not pass. Indexed by n (0..MAX_SAMPLES)."""
    threshold = np.float32(inter_min_above_threshold)
    allowed = np.full(MAX_SAMPLES + 1, -1, dtype=np.int64)
    for n in range(MIN_SAMPLES, MAX_SAMPLES + 1):
        for failures in range(n + 1):
            if np.float32(n - failures) / np.float32(n) > threshold:
                allowed[n] = failures
    return allowed


def _sample_count(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    largest = np.maximum(np.abs(dx), np.abs(dy))
    rounded = (np.sqrt(np.float32(SAMPLES_FACTOR) * largest) + np.float32(0.5)).astype(np.int64)
    return np.maximum(MIN_SAMPLES, np.minimum(MAX_SAMPLES, rounded))


def _sample_dots(ax, ay, stepx, stepy, ux, uy, channel_x, channel_y, k, pafs_flat, height, width):
    """PAF . unit vector at sample k of each pair; all arguments broadcast together, float32."""
    k = np.asarray(k, dtype=np.float32)
    px = ax + k * stepx
    py = ay + k * stepy
    mx = np.clip((px + np.float32(0.5)).astype(np.int64), 0, width - 1)
    my = np.clip((py + np.float32(0.5)).astype(np.int64), 0, height - 1)
    offset = my * width + mx
    area = height * width
    return ux * pafs_flat[channel_x * area + offset] + uy * pafs_flat[channel_y * area + offset]


def score_pairs(a_xy: np.ndarray, b_xy: np.ndarray, channel_x: np.ndarray, channel_y: np.ndarray,
                pafs: np.ndarray, inter_threshold: float, inter_min_above_threshold: float) -> np.ndarray:
    """getScoreAB for many candidate pairs at once.

    a_xy, b_xy: (P, 2) float32 peak positions (map pixels); channel_x/_y: (P,) PAF channel of each
    pair; pafs: (2L, H, W) float32. Returns (P,) float32 scores, 0 for rejected pairs.
    """
    pafs = np.ascontiguousarray(pafs, dtype=np.float32)
    _, height, width = pafs.shape
    pafs_flat = pafs.reshape(-1)
    count = len(a_xy)
    scores = np.zeros(count, dtype=np.float32)
    if not count:
        return scores
    ax, ay = a_xy[:, 0].astype(np.float32), a_xy[:, 1].astype(np.float32)
    dx = b_xy[:, 0].astype(np.float32) - ax
    dy = b_xy[:, 1].astype(np.float32) - ay
    samples = _sample_count(dx, dy)
    norm = np.sqrt(dx * dx + dy * dy)
    live = norm.astype(np.float64) > MIN_LIMB_NORM
    safe_norm = np.where(live, norm, np.float32(1))
    ux, uy = dx / safe_norm, dy / safe_norm
    stepx, stepy = dx / samples.astype(np.float32), dy / samples.astype(np.float32)
    threshold = np.float32(inter_threshold)

    # Cheap rejection: if more samples fail than the 0.95 rule allows among two probes, the pair
    # is rejected whatever the other samples hold (the result is the same as sampling them all).
    allowed = _allowed_failures(inter_min_above_threshold)[samples]
    probe_fail = np.zeros(count, dtype=np.int64)
    for probe in (samples // 2, samples // 4):
        dots = _sample_dots(ax, ay, stepx, stepy, ux, uy, channel_x, channel_y, probe, pafs_flat, height, width)
        probe_fail += ~(dots > threshold)
    survivors = np.flatnonzero(live & (probe_fail <= allowed))
    if not len(survivors):
        return scores

    s = survivors
    column = (slice(None), None)
    dots = _sample_dots(ax[s][column], ay[s][column], stepx[s][column], stepy[s][column], ux[s][column],
                        uy[s][column], channel_x[s][column], channel_y[s][column], np.arange(MAX_SAMPLES)[None, :],
                        pafs_flat, height, width)
    counted = (np.arange(MAX_SAMPLES)[None, :] < samples[s, None]) & (dots > threshold)
    kept = counted.sum(axis=1)
    # Sequential float32 sum, as OpenPose's loop (masked samples add exact zeros).
    sums = np.cumsum(np.where(counted, dots, np.float32(0)), axis=1, dtype=np.float32)[:, -1]
    accept = (kept.astype(np.float32) / samples[s].astype(np.float32)) > np.float32(inter_min_above_threshold)
    accept &= kept > 0
    scores[s[accept]] = sums[accept] / kept[accept].astype(np.float32)
    return scores


def score_limb(peaks_a: np.ndarray, peaks_b: np.ndarray, paf_x: np.ndarray, paf_y: np.ndarray, *,
               inter_threshold: float, inter_min_above_threshold: float) -> np.ndarray:
    """(nA, nB) float32 scores of every A -> B pair of one limb type; paf_x/_y are (H, W) maps."""
    peaks_a = np.asarray(peaks_a, dtype=np.float32).reshape(-1, 3)
    peaks_b = np.asarray(peaks_b, dtype=np.float32).reshape(-1, 3)
    pafs = np.stack([paf_x, paf_y]).astype(np.float32)
    n_a, n_b = len(peaks_a), len(peaks_b)
    a = np.repeat(peaks_a[:, :2], n_b, axis=0)
    b = np.tile(peaks_b[:, :2], (n_a, 1))
    zeros = np.zeros(n_a * n_b, dtype=np.int64)
    return score_pairs(a, b, zeros, zeros + 1, pafs, inter_threshold, inter_min_above_threshold).reshape(n_a, n_b)


def _all_limb_scores(peaks: Sequence[np.ndarray], pafs: np.ndarray, skeleton: Skeleton,
                     inter_threshold: float, inter_min_above_threshold: float) -> list[np.ndarray | None]:
    """Per limb type, (nA, nB) scores (None when a side has no peaks), all limbs in one batch."""
    a_parts, b_parts, channels_x, channels_y, shapes = [], [], [], [], []
    for limb_index, (part_a, part_b) in enumerate(skeleton.limbs):
        n_a, n_b = len(peaks[part_a]), len(peaks[part_b])
        shapes.append((n_a, n_b))
        if not n_a or not n_b:
            continue
        a_parts.append(np.repeat(peaks[part_a][:, :2], n_b, axis=0))
        b_parts.append(np.tile(peaks[part_b][:, :2], (n_a, 1)))
        cx, cy = skeleton.paf_channels[limb_index]
        channels_x.append(np.full(n_a * n_b, cx, dtype=np.int64))
        channels_y.append(np.full(n_a * n_b, cy, dtype=np.int64))
    if a_parts:
        flat = score_pairs(np.concatenate(a_parts), np.concatenate(b_parts), np.concatenate(channels_x),
                           np.concatenate(channels_y), pafs, inter_threshold, inter_min_above_threshold)
    else:
        flat = np.zeros(0, dtype=np.float32)
    out: list[np.ndarray | None] = []
    start = 0
    for n_a, n_b in shapes:
        if not n_a or not n_b:
            out.append(None)
            continue
        out.append(flat[start:start + n_a * n_b].reshape(n_a, n_b))
        start += n_a * n_b
    return out


def _greedy_connections(scores: np.ndarray) -> list[tuple[int, int, float]]:
    """Pairs scoring > 1e-6 by (score, i, j) descending, each i and j once, at most min(nA, nB)."""
    i_all, j_all = np.nonzero(scores.astype(np.float64) > MIN_CONNECTION_SCORE)
    if not len(i_all):
        return []
    values = scores[i_all, j_all].astype(np.float64)
    order = np.lexsort((-j_all, -i_all, -values))
    limit = min(scores.shape)
    used_a, used_b = set(), set()
    connections = []
    for index in order:
        i, j = int(i_all[index]), int(j_all[index])
        if i in used_a or j in used_b:
            continue
        connections.append((i, j, float(values[index])))
        if len(connections) == limit:
            break
        used_a.add(i)
        used_b.add(j)
    return connections


class _People:
    """OpenPose's peopleVector: per person a row of peak indices (-1: none), a count, a score;
    plus an index from (part, peak) to the people holding it, in creation order."""

    def __init__(self, part_count: int) -> None:
        self.part_count = part_count
        self.rows: list[list[int]] = []
        self.counts: list[int] = []
        self.scores: list[np.float32] = []
        self.holders: dict[tuple[int, int], list[int]] = {}

    def add(self, parts: dict[int, int], count: int, score: np.float32) -> None:
        person = len(self.rows)
        row = [-1] * self.part_count
        for part, peak in parts.items():
            row[part] = peak
            self.holders.setdefault((part, peak), []).append(person)
        self.rows.append(row)
        self.counts.append(count)
        self.scores.append(np.float32(score))

    def set_part(self, person: int, part: int, peak: int) -> None:
        old = self.rows[person][part]
        if old == peak:
            return
        if old >= 0:
            self.holders[(part, old)].remove(person)
        self.rows[person][part] = peak
        holders = self.holders.setdefault((part, peak), [])
        holders.append(person)
        holders.sort()

    def first_holder(self, part: int, peak: int) -> int | None:
        holders = self.holders.get((part, peak))
        return holders[0] if holders else None


def assemble(peaks: Sequence[np.ndarray], pafs: np.ndarray, skeleton: Skeleton, *,
             inter_threshold: float | None = None, inter_min_above_threshold: float | None = None,
             min_subset_cnt: int | None = None, min_subset_score: float | None = None,
             max_people: int = POSE_MAX_PEOPLE, maximize_positives: bool = False,
             scale: float = 1.0) -> list[Person]:
    """People from part peaks and PAFs, as OpenPose's CPU connector.

    peaks: K arrays (n_k, 3) float32 of x, y (map pixels), score, as find_peaks returns them.
    pafs: (2L, H, W) PAF block of the net output at the peaks' resolution (skeleton.paf_channels).
    Thresholds left None take OpenPose's defaults for the skeleton (maximize_positives: the
    defaults of OpenPose's --maximize_positives, which also counts BODY_25's feet).
    scale: keypoints x, y are multiplied by it (OpenPose's scaleNetToOutput).
    Returns people in OpenPose's order; Person.score is the subset score (sum of part and limb scores).
    """
    thresholds = resolve_defaults(skeleton, maximize_positives, inter_threshold=inter_threshold,
                                  inter_min_above_threshold=inter_min_above_threshold,
                                  min_subset_cnt=min_subset_cnt, min_subset_score=min_subset_score)
    part_count = skeleton.part_count
    if len(peaks) != part_count:
        raise ShapeError(f"assemble: {len(peaks)} peak lists for {skeleton.name}, expected {part_count}")
    pafs = np.asarray(pafs)
    if pafs.ndim != 3 or pafs.shape[0] != skeleton.paf_count:
        raise ShapeError(f"assemble: PAFs of shape {pafs.shape}, expected ({skeleton.paf_count}, H, W) for {skeleton.name}")
    peaks = [np.asarray(p, dtype=np.float32).reshape(-1, 3) for p in peaks]
    rules = connector_rules(skeleton)
    limb_scores = _all_limb_scores(peaks, pafs, skeleton, thresholds["inter_threshold"],
                                   thresholds["inter_min_above_threshold"])
    people = _People(part_count)
    for limb_index, (part_a, part_b) in enumerate(skeleton.limbs):
        scores = limb_scores[limb_index]
        if scores is None:
            _add_unmatched(people, peaks, part_a, part_b, rules)
            continue
        connections = _greedy_connections(scores)
        if not connections:
            continue
        if limb_index == 0:
            for i, j, score in connections:
                # float + float, then + the double connection score, stored as float.
                total = np.float32(np.float64(peaks[part_a][i, 2] + peaks[part_b][j, 2]) + score)
                people.add({part_a: i, part_b: j}, 2, total)
        elif limb_index in rules.completing_limbs:
            for i, j, _ in connections:
                for person, row in enumerate(people.rows):
                    if row[part_a] == i and row[part_b] < 0:
                        people.set_part(person, part_b, j)
                    elif row[part_b] == j and row[part_a] < 0:
                        people.set_part(person, part_a, i)
        else:
            for i, j, score in connections:
                score32 = np.float32(score)
                person = people.first_holder(part_a, i)
                if person is not None:
                    people.set_part(person, part_b, j)
                    people.counts[person] += 1
                    people.scores[person] = np.float32(people.scores[person] + (peaks[part_b][j, 2] + score32))
                else:
                    people.add({part_a: i, part_b: j}, 2, peaks[part_a][i, 2] + peaks[part_b][j, 2] + score32)
    return _keep_people(people, peaks, rules, thresholds, max_people, maximize_positives, scale)


def _add_unmatched(people: _People, peaks: Sequence[np.ndarray], part_a: int, part_b: int,
                   rules: ConnectorRules) -> None:
    """One side has no peaks: the other side's peaks become one-part people."""
    part = part_b if len(peaks[part_a]) == 0 else part_a
    for peak in range(len(peaks[part])):
        if rules.check_unmatched_taken and people.first_holder(part, peak) is not None:
            continue
        people.add({part: peak}, 1, peaks[part][peak, 2])


def _keep_people(people: _People, peaks: Sequence[np.ndarray], rules: ConnectorRules, thresholds: dict,
                 max_people: int, maximize_positives: bool, scale: float) -> list[Person]:
    """removePeopleBelowThresholds + peopleVectorToPeopleArray."""
    uncounted = () if maximize_positives else rules.uncounted_parts
    min_count = int(thresholds["min_subset_cnt"])
    min_score = np.float32(thresholds["min_subset_score"])
    scale32 = np.float32(scale)
    kept: list[Person] = []
    for row, count, score in zip(people.rows, people.counts, people.scores):
        if len(kept) >= max_people:
            break
        count -= sum(1 for part in uncounted if row[part] >= 0)
        if count < min_count:
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            if not np.float32(score) / np.float32(count) >= min_score:
                continue
        keypoints = np.zeros((people.part_count, 3), dtype=np.float32)
        for part, peak in enumerate(row):
            if peak >= 0:
                x, y, peak_score = peaks[part][peak]
                keypoints[part] = (x * scale32, y * scale32, peak_score)
        kept.append(Person(keypoints=keypoints, score=float(score), part_count=int(sum(p >= 0 for p in row))))
    return kept
