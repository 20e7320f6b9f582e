"""OpenPose's CPU body-part connector (openpose: src/openpose/net/bodyPartConnectorBase.cpp,
``connectBodyPartsCpu`` -> ``createPeopleVector``, ``removePeopleBelowThresholds``,
``peopleVectorToPeopleArray``), rewritten with numpy: limb scores of all pairs in one batch,
people as arrays.

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

import functools
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


@functools.lru_cache(maxsize=16)
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

    # Cheap rejection: a pair with more failing samples than the kept-fraction rule allows is
    # rejected whatever its other samples hold, so probing one or two samples (the middle, then
    # a quarter of the way) and dropping such pairs gives the same result as sampling them all.
    allowed = _allowed_failures(float(inter_min_above_threshold))[samples]
    candidates = np.flatnonzero(live & (allowed >= 0))
    failed = np.zeros(count, dtype=np.int64)
    for probe in (samples // 2, samples // 4):
        c = candidates
        dots = _sample_dots(ax[c], ay[c], stepx[c], stepy[c], ux[c], uy[c], channel_x[c], channel_y[c], probe[c],
                            pafs_flat, height, width)
        failed[c] += ~(dots > threshold)
        candidates = c[(failed[c] > 0) & (failed[c] <= allowed[c])]  # failed once, may still pass
    survivors = np.flatnonzero(live & (failed <= allowed))
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


@dataclass(frozen=True)
class _Connections:
    """One limb type's chosen connections, in OpenPose's order: peak indices and float64 scores."""

    a: np.ndarray
    b: np.ndarray
    score: np.ndarray


_NO_CONNECTIONS = _Connections(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))


def _all_connections(peaks: Sequence[np.ndarray], pafs: np.ndarray, skeleton: Skeleton,
                     inter_threshold: float, inter_min_above_threshold: float) -> list[_Connections | None]:
    """Per limb type, the greedy connections (None when a side has no peaks).

    All pairs of all limb types are scored in one batch; per limb type the pairs scoring > 1e-6
    are taken by (score, i, j) descending (OpenPose sorts (score, i, j) tuples with
    std::greater), each i and j once, until min(nA, nB) connections are made.
    """
    limbs = np.array(skeleton.limbs, dtype=np.int64).reshape(-1, 2)
    peak_counts = np.array([len(p) for p in peaks], dtype=np.int64)
    n_a, n_b = peak_counts[limbs[:, 0]], peak_counts[limbs[:, 1]]
    out: list[_Connections | None] = [None if not (a and b) else _NO_CONNECTIONS for a, b in zip(n_a, n_b)]
    sizes = n_a * n_b
    total = int(sizes.sum())
    if not total:
        return out
    # Every (limb, i, j) pair: i-major, j-minor within a limb, limbs in table order.
    table = np.concatenate(peaks)[:, :2]
    part_start = np.concatenate([[0], np.cumsum(peak_counts)[:-1]])
    limb_of_pair = np.repeat(np.arange(len(limbs)), sizes)
    rank = np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    index_a, index_b = np.divmod(rank, n_b[limb_of_pair])
    a_xy = table[part_start[limbs[limb_of_pair, 0]] + index_a]
    b_xy = table[part_start[limbs[limb_of_pair, 1]] + index_b]
    channels = np.array(skeleton.paf_channels, dtype=np.int64)[limb_of_pair]
    scores = score_pairs(a_xy, b_xy, channels[:, 0], channels[:, 1], pafs, inter_threshold,
                         inter_min_above_threshold).astype(np.float64)
    live = np.flatnonzero(scores > MIN_CONNECTION_SCORE)
    order = live[np.lexsort((-index_b[live], -index_a[live], -scores[live], limb_of_pair[live]))]
    limb_sorted = limb_of_pair[order]
    bounds = np.searchsorted(limb_sorted, np.arange(len(limbs) + 1))
    # Fast path: when the first min(nA, nB) candidates of a limb type share no peak, the greedy
    # walk takes exactly them. Limb types with a clash are walked one candidate at a time.
    limit = np.minimum(n_a, n_b)
    take = np.minimum(limit, bounds[1:] - bounds[:-1])
    rank = np.arange(len(order)) - bounds[limb_sorted]
    top = order[rank < take[limb_sorted]]
    clashing = set()
    for index in (index_a, index_b):
        keys = np.sort(limb_of_pair[top] * (int(peak_counts.max()) + 1) + index[top])
        clashing.update((keys[1:][keys[1:] == keys[:-1]] // (int(peak_counts.max()) + 1)).tolist())
    bounds_list, take_list = bounds.tolist(), take.tolist()
    for limb in np.flatnonzero(sizes).tolist():
        start = bounds_list[limb]
        if limb in clashing:
            picked = order[[start + k for k in _greedy_walk(index_a[order[start:bounds_list[limb + 1]]].tolist(),
                                                            index_b[order[start:bounds_list[limb + 1]]].tolist(),
                                                            take_list[limb])]]
        else:
            picked = order[start:start + take_list[limb]]
        if len(picked):
            out[limb] = _Connections(index_a[picked], index_b[picked], scores[picked])
    return out


def _greedy_walk(candidates_a: list[int], candidates_b: list[int], limit: int) -> list[int]:
    """Positions taken by the greedy walk over sorted candidates: each i and j once, at most limit."""
    used_a, used_b, chosen = set(), set(), []
    for position, (i, j) in enumerate(zip(candidates_a, candidates_b)):
        if i in used_a or j in used_b:
            continue
        chosen.append(position)
        if len(chosen) == limit:
            break
        used_a.add(i)
        used_b.add(j)
    return chosen


_NONE = np.iinfo(np.int64).max  # "no person" in the first-holder tables


class _People:
    """OpenPose's peopleVector as arrays: per person a row of peak indices (-1: none), a count and
    a float32 score; per part and peak, the first (lowest-index) person holding that peak."""

    def __init__(self, part_count: int, peak_counts: Sequence[int]) -> None:
        self.rows = np.full((16, part_count), -1, dtype=np.int64)
        self.counts = np.zeros(16, dtype=np.int64)
        self.scores = np.zeros(16, dtype=np.float32)
        self.size = 0
        self.first = [np.full(n, _NONE, dtype=np.int64) for n in peak_counts]

    def append(self, parts: Sequence[tuple[int, np.ndarray]], count: int, scores: np.ndarray) -> None:
        """New people, one per entry of scores, holding the given peaks of the given parts."""
        added = len(scores)
        if self.size + added > len(self.counts):
            capacity = max(2 * len(self.counts), self.size + added)
            self.rows = np.concatenate([self.rows, np.full((capacity - len(self.rows), self.rows.shape[1]), -1, np.int64)])
            self.counts = np.concatenate([self.counts, np.zeros(capacity - len(self.counts), np.int64)])
            self.scores = np.concatenate([self.scores, np.zeros(capacity - len(self.scores), np.float32)])
        people = np.arange(self.size, self.size + added)
        for part, peaks in parts:
            self.rows[people, part] = peaks
            np.minimum.at(self.first[part], peaks, people)
        self.counts[people] = count
        self.scores[people] = scores
        self.size += added

    def set_part(self, people: np.ndarray, part: int, peaks: np.ndarray) -> None:
        """people[k] now holds peaks[k] for part (replacing what it held there)."""
        old = self.rows[people, part]
        self.rows[people, part] = peaks
        first = self.first[part]
        for person, peak in zip(people[(old >= 0) & (old != peaks)], old[(old >= 0) & (old != peaks)]):
            if first[peak] == person:  # rare: a person loses the peak it was first to hold
                holders = np.flatnonzero(self.rows[: self.size, part] == peak)
                first[peak] = holders[0] if len(holders) else _NONE
        np.minimum.at(first, peaks, people)


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
    all_connections = _all_connections(peaks, pafs, skeleton, thresholds["inter_threshold"],
                                       thresholds["inter_min_above_threshold"])
    people = _People(part_count, [len(p) for p in peaks])
    for limb_index, (part_a, part_b) in enumerate(skeleton.limbs):
        connections = all_connections[limb_index]
        if connections is None:
            _add_unmatched(people, peaks, part_a, part_b, rules)
            continue
        i, j = connections.a, connections.b
        if not len(i):
            continue
        score_a, score_b = peaks[part_a][i, 2], peaks[part_b][j, 2]
        if limb_index == 0:
            # float + float, then + the double connection score, stored as float.
            totals = ((score_a + score_b).astype(np.float64) + connections.score).astype(np.float32)
            people.append([(part_a, i), (part_b, j)], 2, totals)
        elif limb_index in rules.completing_limbs:
            # Each connection has its own i and j, so the people it completes are disjoint.
            rows = people.rows[: people.size]
            b_for_a = np.full(len(peaks[part_a]), -1, np.int64)
            b_for_a[i] = j
            a_for_b = np.full(len(peaks[part_b]), -1, np.int64)
            a_for_b[j] = i
            held_a, held_b = rows[:, part_a], rows[:, part_b]
            gets_b = np.flatnonzero((held_a >= 0) & (held_b < 0))
            gets_b = gets_b[b_for_a[held_a[gets_b]] >= 0]
            gets_a = np.flatnonzero((held_a < 0) & (held_b >= 0))
            gets_a = gets_a[a_for_b[held_b[gets_a]] >= 0]
            new_b, new_a = b_for_a[held_a[gets_b]], a_for_b[held_b[gets_a]]
            people.set_part(gets_b, part_b, new_b)
            people.set_part(gets_a, part_a, new_a)
        else:
            # Each connection has its own i, so its person (the first holding A = i) is its own.
            score32 = connections.score.astype(np.float32)
            holder = people.first[part_a][i]
            grows = holder != _NONE
            persons = holder[grows]
            people.set_part(persons, part_b, j[grows])
            people.counts[persons] += 1
            people.scores[persons] = people.scores[persons] + (score_b[grows] + score32[grows])
            new = ~grows
            people.append([(part_a, i[new]), (part_b, j[new])], 2, score_a[new] + score_b[new] + score32[new])
    return _keep_people(people, peaks, rules, thresholds, max_people, maximize_positives, scale)


def _add_unmatched(people: _People, peaks: Sequence[np.ndarray], part_a: int, part_b: int,
                   rules: ConnectorRules) -> None:
    """One side has no peaks: the other side's peaks become one-part people."""
    part = part_b if len(peaks[part_a]) == 0 else part_a
    candidates = np.arange(len(peaks[part]))
    if rules.check_unmatched_taken:
        candidates = candidates[people.first[part] == _NONE]
    if len(candidates):
        people.append([(part, candidates)], 1, peaks[part][candidates, 2])


def _keep_people(people: _People, peaks: Sequence[np.ndarray], rules: ConnectorRules, thresholds: dict,
                 max_people: int, maximize_positives: bool, scale: float) -> list[Person]:
    """removePeopleBelowThresholds + peopleVectorToPeopleArray."""
    if not people.size:
        return []
    rows = people.rows[: people.size]
    counts = people.counts[: people.size]
    uncounted = () if maximize_positives else rules.uncounted_parts
    if uncounted:
        counts = counts - (rows[:, list(uncounted)] >= 0).sum(axis=1)
    scores = people.scores[: people.size]
    min_count = int(thresholds["min_subset_cnt"])
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = scores / counts.astype(np.float32)
    keep = np.flatnonzero((counts >= min_count) & (mean >= np.float32(thresholds["min_subset_score"])))[:max_people]
    if not len(keep):
        return []
    # All peaks in one table: part p's peak i is row starts[p] + i.
    table = np.concatenate([np.zeros((1, 3), np.float32), *peaks])
    starts = np.cumsum([1] + [len(p) for p in peaks[:-1]])
    kept_rows = rows[keep]
    found = kept_rows >= 0
    keypoints = np.where(found[..., None], table[np.where(found, kept_rows + starts, 0)], np.float32(0))
    keypoints[..., :2] *= np.float32(scale)
    return [Person(keypoints=keypoints[n], score=float(scores[index]), part_count=int(found[n].sum()))
            for n, index in enumerate(keep)]
