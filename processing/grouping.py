"""Group a batch's embeddings with HDBSCAN into "Group 1".."Group k" (largest first) or "Ungrouped".

Cosine is computed as euclidean on L2-normalised rows: for unit vectors ||a - b||² = 2 - 2·cos,
so distances keep their order and the (faster) euclidean code paths of hdbscan apply.

Which algorithm, measured on this kind of machine (2 cores) with photo-like vectors (bursts of
near-duplicates plus scattered shots, 384-d; see bench/grouping.py):
- up to LARGE_BATCH_ROWS (5k) rows: the exact algorithm (hdbscan's "generic"), computed in float32
  with BLAS by processing/exact_mst.py: 2.2 s at 10k rows against 8-9.5 s for hdbscan's own,
  same labels. In 384-d hdbscan's KD-tree algorithms are 10-15x slower than exact (prims_kdtree
  2.5 s vs 0.17 s at 2k rows); after a PCA to 50 dims they are no faster at 10k (8-12 s) and
  agree with the exact result only at ARI ~0.9. The exact path's cost is memory, 4·n² bytes:
  400 MB at 10k rows, 1.6 GB at 20k.
- above it: HDBSCAN on an approximate k-nearest-neighbour graph (processing/knn_hdbscan.py),
  linear in memory, on the full vectors (no PCA). It replaced PCA to 50 dims + prims_kdtree,
  which took ~345 s at 50k rows and labelled none of the planted noise as noise; see
  bench/analyze_scale.py for the crossover, times, memory and agreement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from processing.exact_mst import exact_hdbscan_labels
from processing.knn_hdbscan import knn_hdbscan_labels
from processing.moments import DEFAULT_RULES, MomentRules, moment_groups

UNGROUPED = "Ungrouped"
Metric = Literal["cosine", "euclidean"]

# Above this many rows the kNN-graph path is used. Measured with bench/analyze_scale.py (384-d
# photo-like rows, one run): 5k rows, exact 4.9 s vs graph 4.7 s; 10k, exact 7.1 s and 686 MB
# peak vs graph 3.9 s and 249 MB; 20k, exact 68 s and 2.0 GB vs graph 13.8 s and 297 MB.
LARGE_BATCH_ROWS = 5_000
_LINK_BLOCK_ROWS = 2048
# At most this many similarities computed at once (64 MB of float32).
_LINK_BLOCK_CELLS = 1 << 24

# The API's defaults, the best settings measured on bench/real_shoots.py's cards: every burst of
# two frames or more is a group (with capture times: ARI 1.0, pair precision 1.0 there).
DEFAULT_MIN_CLUSTER_SIZE = 2
DEFAULT_MIN_SAMPLES = 1
# Capture time (see README "Grouping"). Consecutive frames of one camera further apart than this
# are different moments. Measured with bench/real_shoots.py: real bursts have frames 0.04-3 s
# apart (video frame rates, hand-clicked series), and the same place a moment later came 35 s
# later; every gap from 2 s to 30 s gives the same, best figures there (1 s splits hand-clicked
# series, 40 s merges the plaza's moments), and 10 s sits inside that range with room on both
# sides: for slower hand-clicked series, and for clocks that record whole seconds only.
DEFAULT_TIME_GAP_SECONDS = 10.0
# A member further from its group's medoid than OUTSIDER_RATIO times the members' median
# distance to it, and at least OUTSIDER_MARGIN more (distances on unit vectors,
# sqrt(2 - 2·cos)), is an outsider. Measured on bench/real_shoots.py's cards: a head turn or
# closed eyes inside a burst is ~0.3 further than the burst's typical frame, an unrelated photo
# HDBSCAN attaches to a group ~0.8.
OUTSIDER_RATIO = 1.5
OUTSIDER_MARGIN = 0.4
# The single-cluster fallback (nothing else found) keeps its one group only if every pair of
# members is at least this alike: a batch of one scene, not a handful of unrelated photos.
FALLBACK_MIN_COSINE = 0.8
# Images without a capture time: members of one HDBSCAN cluster at least this alike (cosine),
# directly or through other members, stay one group. Measured with the offline encoder on
# bench/real_shoots.py's first card: the weakest link inside a real burst is 0.79, the most alike
# two unrelated photos are 0.73. (Timed images follow processing/moments.py's rules instead.)
MOMENT_LINK_COSINE = 0.75


# HDBSCAN's finest parameters (min_cluster_size, min_samples): single linkage's density. A
# cluster found at the request's parameters that holds two or more clusters of this finest
# level, each at least min_cluster_size images, is cut into them (_split_by_finest).
# Measured on bench/real_shoots.py's card without capture times (MAC vectors): at 5/5 and 3/3
# HDBSCAN alone puts six moments of one fixed camera (36 frames) in one group: min_samples > 1
# smooths a short burst into its neighbours, and a larger min_cluster_size makes it prefer the
# group of all of them; at the finest level those moments stay apart. Only images without a
# capture time are clustered by HDBSCAN (timed ones are grouped by moment), so this matters
# for them, and for every image when capture time is off.
FINEST = (2, 1)


@dataclass(frozen=True, slots=True)
class Capture:
    """When and with which camera an image was taken; None where EXIF does not say."""

    shot_at: datetime | None = None
    camera: str | None = None


def camera_key(make: str | None, model: str | None, serial: str | None) -> str | None:
    """One camera body: make, model and serial number, as far as EXIF names them."""
    parts = [part.strip().casefold() if part else "" for part in (make, model, serial)]
    return "|".join(parts) if any(parts) else None


@dataclass(frozen=True, slots=True)
class GroupNote:
    """How sure one group is: its weakest link (cosine), and where its shooting sequence had a
    candidate cut that was not taken (the row that would start the second part), if any."""

    cohesion: float
    split_before_row: int | None = None

    @property
    def may_hold_moments(self) -> bool:
        return self.split_before_row is not None


@dataclass(frozen=True, slots=True)
class GroupingResult:
    """One label per input row, plus how the grouping was obtained."""

    labels: list[str]
    n_groups: int
    used_single_cluster_fallback: bool
    notes: dict[str, GroupNote] = field(default_factory=dict)  # by group label


class ImageGrouper:
    """Moments by capture time, camera and looks (processing/moments.py); images without a
    capture time by HDBSCAN over their vectors, per camera. A larger min_cluster_size or
    min_samples only ever leaves more images Ungrouped: never a group the finest parameters
    (2/1) would not make."""

    def __init__(
        self,
        min_cluster_size: int = DEFAULT_MIN_CLUSTER_SIZE,
        min_samples: int = DEFAULT_MIN_SAMPLES,
        metric: Metric = "cosine",
        *,
        large_batch_rows: int = LARGE_BATCH_ROWS,
        rules: MomentRules = DEFAULT_RULES,
    ) -> None:
        if min_cluster_size < 2:
            raise ValueError(f"min_cluster_size must be at least 2, got {min_cluster_size}")
        if min_samples < 1:
            raise ValueError(f"min_samples must be at least 1, got {min_samples}")
        if metric not in ("cosine", "euclidean"):
            raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.metric = metric
        self.large_batch_rows = large_batch_rows
        self.rules = rules

    def fit_labels(
        self,
        vectors: NDArray[Any],
        captures: Sequence[Capture] | None = None,
        time_gap_seconds: float | None = None,
    ) -> GroupingResult:
        """Label each row "Group N" or "Ungrouped"; ValueError if not 2-D or not finite.

        With `captures` (one per row) and `time_gap_seconds`, rows with a capture time are
        grouped by moment (processing/moments.py): a group never spans a gap longer than
        that, nor a pause well above its camera's cadence, nor two cameras. Rows without a
        capture time are grouped by looks, per camera."""
        large = len(vectors) > self.large_batch_rows
        # Large batches stay in float32: a float64 copy of 100k 1280-d rows alone is 1 GB.
        x = _checked(vectors, np.float32 if large else np.float64)
        n = x.shape[0]
        # A group smaller than min_cluster_size would contradict the caller's own parameter, so a
        # batch that small is all "Ungrouped", even if its images are identical.
        if n < self.min_cluster_size:
            return GroupingResult([UNGROUPED] * n, 0, False)
        if captures is not None and len(captures) != n:
            raise ValueError(f"{len(captures)} captures for {n} vectors")
        timed = np.zeros(n, dtype=bool)
        if captures is not None and time_gap_seconds is not None:
            timed = np.array([c.shot_at is not None for c in captures], dtype=bool)
        if self.metric == "cosine":
            x = _l2_normalised(x)
        raw = np.full(n, -1, dtype=np.intp)
        cohesion: dict[int, float] = {}
        split_before: dict[int, int] = {}
        if timed.any() and captures is not None:
            rows = np.flatnonzero(timed)
            moments = moment_groups(
                _l2_normalised(x[rows]),
                [captures[r].shot_at for r in rows],
                [captures[r].camera for r in rows],
                time_gap_seconds,
                self.rules,
            )
            for label, members in enumerate(_members(moments.labels)):
                if members.size >= self.min_cluster_size:
                    raw[rows[members]] = label
                    cohesion[label] = moments.cohesion[label]
                    if label in moments.split_before:
                        split_before[label] = int(rows[moments.split_before[label]])
        fallback = False
        untimed = np.flatnonzero(~timed)
        if untimed.size >= self.min_cluster_size:
            # Capture time off (no gap) turns the cameras off too: looks alone.
            cameras = None
            if captures is not None and time_gap_seconds is not None:
                cameras = [captures[r].camera for r in untimed]
            looks, fallback = self._by_looks(x[untimed], cameras, large)
            first = int(raw.max()) + 1
            raw[untimed[looks >= 0]] = looks[looks >= 0] + first
        labels, n_groups, names = _named(raw)
        unit = _l2_normalised(x)
        notes = {
            name: GroupNote(
                cohesion.get(label, _weakest_link(np.flatnonzero(raw == label), unit)),
                split_before.get(label),
            )
            for label, name in names.items()
        }
        return GroupingResult(labels, n_groups, fallback, notes)

    def _by_looks(
        self, x: NDArray[np.float64], cameras: Sequence[str | None] | None, large: bool
    ) -> tuple[NDArray[np.intp], bool]:
        """Rows without a capture time: HDBSCAN's clusters per camera (_looks_clusters), read
        along the upload order's sequence of looks (processing/moments.py without the time
        cuts: cameras name their files in shooting order, so a fixed camera's next moment
        comes next, and looks alike); see _in_sequence. Returns raw labels (-1 noise) and
        whether the single-cluster fallback was used."""
        clusters, fallback = self._looks_clusters(x, cameras, large)
        n = x.shape[0]
        in_order = moment_groups(
            _l2_normalised(x), [None] * n, cameras or [None] * n, None, self.rules
        )
        raw = _in_sequence(clusters, in_order.labels)
        if (self.min_cluster_size, self.min_samples) != FINEST:
            # Larger parameters may leave more rows Ungrouped, never put together rows the
            # finest keep apart (measured: at 5/5 HDBSCAN put two moments of a fixed camera,
            # uploaded one after the other, in one group that 2/1 kept apart).
            finest = ImageGrouper(*FINEST, self.metric, rules=self.rules)
            raw = _meet(raw, finest._by_looks(x, cameras, large)[0])
        return _at_least(raw, self.min_cluster_size), fallback

    def _looks_clusters(
        self, x: NDArray[np.float64], cameras: Sequence[str | None] | None, large: bool
    ) -> tuple[NDArray[np.intp], bool]:
        """HDBSCAN's clusters, per camera, cut where the finest parameters (FINEST) cut them,
        linked and without outsiders; the single-cluster fallback where nothing is found."""
        n = x.shape[0]
        apart = _camera_ids(cameras, n)
        if np.all(x == x[0]):
            # Identical rows have no density structure to find (and nothing for PCA to keep).
            return self._refined(np.zeros(n, dtype=np.intp), x, apart, fallback=True), True
        unit_rows = self.metric == "cosine"
        raw = self._cluster(x, large, unit_rows, allow_single_cluster=False, moments=apart)
        if not large and (self.min_cluster_size, self.min_samples) != FINEST:
            finest = self._cluster(
                x, large, unit_rows, allow_single_cluster=False, moments=apart, at=FINEST
            )
            raw = _split_by_finest(raw, finest, self.min_cluster_size)
        raw = self._refined(raw, x, apart, fallback=False)
        if not np.all(raw < 0):
            return raw, False
        # Nothing found: the batch may be one scene, which HDBSCAN only reports when allowed
        # to select the root (always allowing it merges separate bursts into one group). Its
        # root keeps only the rows that stay to the end, so the whole batch is the candidate
        # here, cut by camera and looks, and kept only where it is one scene.
        if large:  # the n x n comparisons of the whole batch would not fit in memory
            raw = self._cluster(x, large, unit_rows, allow_single_cluster=True)
        else:
            raw = np.zeros(n, dtype=np.intp)
        return self._refined(raw, x, apart, fallback=True), True

    def _refined(
        self,
        raw: NDArray[np.intp],
        x: NDArray[np.float64],
        apart: NDArray[np.intp],
        *,
        fallback: bool,
    ) -> NDArray[np.intp]:
        """The final groups of rows without a capture time: HDBSCAN's clusters cut by camera,
        linked, without outsiders; a group smaller than min_cluster_size is noise."""
        unit = _l2_normalised(x)
        out = np.full(raw.shape[0], -1, dtype=np.intp)
        next_id = 0
        for rows in _members(raw):
            for camera_rows in _members(apart[rows]):
                for piece in _linked(rows[camera_rows], unit):
                    part = _without_outsiders(piece, unit)
                    if fallback and not _one_scene(part, unit):
                        continue
                    if part.size >= self.min_cluster_size:
                        out[part] = next_id
                        next_id += 1
        return out

    def _cluster(
        self,
        x: NDArray[np.float64],
        large: bool,
        unit_rows: bool,
        *,
        allow_single_cluster: bool,
        moments: NDArray[np.intp] | None = None,
        at: tuple[int, int] | None = None,
    ) -> NDArray[np.intp]:
        """HDBSCAN's labels at the request's parameters, or `at` (min_cluster_size, min_samples)."""
        min_cluster_size, min_samples = at or (self.min_cluster_size, self.min_samples)
        # hdbscan clamps min_samples too; done here so stored parameters never reach it unchecked.
        min_samples = min(min_samples, x.shape[0] - 1)
        if not large:
            if moments is not None:
                # A burst of exactly min_cluster_size frames, kept apart from every other
                # camera, has only min_cluster_size - 1 neighbours to count.
                min_samples = max(1, min(min_samples, min_cluster_size - 1))
            return exact_hdbscan_labels(
                x,
                min_cluster_size,
                min_samples,
                unit_rows=unit_rows,
                allow_single_cluster=allow_single_cluster,
                moments=moments,
            )
        # Cameras are applied afterwards (_refined cuts each cluster by camera).
        return knn_hdbscan_labels(
            x,
            min_cluster_size,
            min_samples,
            unit_rows=unit_rows,
            allow_single_cluster=allow_single_cluster,
        )


def _split_by_finest(
    raw: NDArray[np.intp], finest: NDArray[np.intp], min_cluster_size: int
) -> NDArray[np.intp]:
    """HDBSCAN's clusters at the request's parameters, each cut into the clusters HDBSCAN finds
    inside it at its finest (FINEST) where two or more of those are at least min_cluster_size
    images: then the cluster holds several moments, each big enough to be a group of its own;
    its other rows are Ungrouped. A cluster with fewer such parts is kept whole (at 2/1 HDBSCAN
    pairs up near-identical frames, so its finest clusters alone would shatter a burst)."""
    out = raw.copy()
    next_id = int(raw.max()) + 1 if raw.size else 0
    for rows in _members(raw):
        parts = [part for part in _members(finest[rows]) if part.size >= min_cluster_size]
        if len(parts) < 2:
            continue
        out[rows] = -1
        for part in parts:
            out[rows[part]] = next_id
            next_id += 1
    return out


def _in_sequence(clusters: NDArray[np.intp], segments: NDArray[np.intp]) -> NDArray[np.intp]:
    """Groups along the shooting sequence: inside each segment (rows in order that the
    sequence links), HDBSCAN's clusters whose stretches of the sequence overlap are one group
    (a burst's frames do not alternate between two moments; HDBSCAN at 2/1 splits a burst of
    near-identical frames into interleaved pairs), with the rows in between; clusters one
    after the other stay apart (a fixed camera's next moment), and a segment HDBSCAN finds no
    cluster in is no group."""
    out = np.full(clusters.shape[0], -1, dtype=np.intp)
    next_id = 0
    for rows in _members(segments):
        rows = np.sort(rows)
        spans = sorted(
            (int(part[0]), int(part[-1])) for part in _members(clusters[rows])
        )  # positions in the segment, each cluster's first and last
        merged: list[list[int]] = []
        for first, last in spans:
            if merged and first <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], last)
            else:
                merged.append([first, last])
        for first, last in merged:
            if last > first:
                out[rows[first : last + 1]] = next_id
                next_id += 1
    return out


def _meet(a: NDArray[np.intp], b: NDArray[np.intp]) -> NDArray[np.intp]:
    """Rows together in both labellings are together (-1, noise, in either stays noise)."""
    out = np.full(a.shape[0], -1, dtype=np.intp)
    both = (a >= 0) & (b >= 0)
    if both.any():
        pairs = a[both].astype(np.int64) * (int(b.max()) + 1) + b[both]
        _, ids = np.unique(pairs, return_inverse=True)
        out[both] = ids.ravel()
    return out


def _at_least(raw: NDArray[np.intp], size: int) -> NDArray[np.intp]:
    """Groups of fewer than `size` rows become noise."""
    _, inverse, counts = np.unique(raw, return_inverse=True, return_counts=True)
    out = raw.copy()
    out[(counts[inverse.ravel()] < size) & (raw >= 0)] = -1
    return out


def _camera_ids(cameras: Sequence[str | None] | None, n: int) -> NDArray[np.intp]:
    """One id per camera (rows without a camera share one): two bodies never take the same
    frame (two photographers at one wedding shoot the same scene from different places)."""
    if cameras is None:
        return np.zeros(n, dtype=np.intp)
    ids: dict[str | None, int] = {}
    return np.array([ids.setdefault(c, len(ids)) for c in cameras], dtype=np.intp)


def _weakest_link(rows: NDArray[np.intp], unit: NDArray[np.floating]) -> float:
    """The weakest link of a group of rows without a capture time: the lowest cosine between
    members next to each other in upload order (its stretch of the sequence, _in_sequence)."""
    if rows.size < 2:
        return 1.0
    members = unit[np.sort(rows)].astype(np.float64)
    return float(np.einsum("ij,ij->i", members[:-1], members[1:]).min())


def _members(labels: NDArray[np.intp]) -> list[NDArray[np.intp]]:
    """The rows of each label >= 0, in one sort (not one pass over the batch per label)."""
    order = np.argsort(labels, kind="stable")
    order = order[labels[order] >= 0]
    cuts = np.flatnonzero(np.diff(labels[order])) + 1
    return np.split(order, cuts) if order.size else []


def _linked(rows: NDArray[np.intp], unit: NDArray[np.float64]) -> list[NDArray[np.intp]]:
    """Connected parts of `rows` where an edge is a pair at least MOMENT_LINK_COSINE alike."""
    vectors = unit[rows].astype(np.float32)
    m = rows.size
    # In blocks of rows, as a sparse graph: a long moment (hours of frames a second apart) must
    # not need an m x m matrix. After each block only a spanning forest of what is linked so far
    # is kept (each row to the first row of its part), so a moment of many near-identical frames
    # does not pile up m² edges either.
    block_rows = max(1, min(_LINK_BLOCK_ROWS, _LINK_BLOCK_CELLS // max(m, 1)))
    part = np.arange(m)
    forest_rows = np.arange(m)
    for start in range(0, m, block_rows):
        block = vectors[start : start + block_rows] @ vectors.T
        source, target = np.nonzero(block >= MOMENT_LINK_COSINE)
        sources = np.concatenate([forest_rows, source + start])
        targets = np.concatenate([part, target])
        graph = coo_matrix((np.ones(sources.size, dtype=np.int8), (sources, targets)), (m, m))
        _, labels = connected_components(graph, directed=False)
        first = np.full(labels.max() + 1, m, dtype=np.intp)
        np.minimum.at(first, labels, np.arange(m))
        part = first[labels]
    return [rows[piece] for piece in _members(part)]


def _without_outsiders(rows: NDArray[np.intp], unit: NDArray[np.float64]) -> NDArray[np.intp]:
    """The group without its outsiders: members much further from the group's medoid (the
    member closest to all others) than its members typically are (see OUTSIDER_RATIO)."""
    if rows.size < 3:
        return rows
    members = unit[rows]
    if rows.size <= _LINK_BLOCK_ROWS:
        medoid = int(np.argmin(np.median(_pairwise(members), axis=1)))
    else:  # no m x m matrix for a huge group: the member nearest its mean direction
        medoid = int(np.argmax(members @ members.mean(axis=0)))
    distances = np.linalg.norm(members - members[medoid], axis=1)
    to_medoid = np.delete(distances, medoid)
    typical = float(np.median(to_medoid))
    limit = max(typical * OUTSIDER_RATIO, typical + OUTSIDER_MARGIN)
    kept: NDArray[np.intp] = rows[distances <= limit]
    return kept


def _pairwise(x: NDArray[np.float64]) -> NDArray[np.float64]:
    squared = np.einsum("ij,ij->i", x, x)
    d2 = squared[:, None] + squared[None, :] - 2.0 * (x @ x.T)
    distances: NDArray[np.float64] = np.sqrt(np.maximum(d2, 0.0))
    return distances


def _one_scene(rows: NDArray[np.intp], unit: NDArray[np.float64]) -> bool:
    """Whether a group found only by the single-cluster fallback is one scene: every pair of
    members at least FALLBACK_MIN_COSINE alike."""
    if rows.size < 2:
        return False
    members = unit[rows].astype(np.float32)
    block_rows = max(1, min(_LINK_BLOCK_ROWS, _LINK_BLOCK_CELLS // rows.size))
    return all(
        (members[start : start + block_rows] @ members.T).min() >= FALLBACK_MIN_COSINE
        for start in range(0, rows.size, block_rows)
    )


def _checked(vectors: NDArray[Any], dtype: type[np.floating[Any]] = np.float64) -> NDArray[Any]:
    # float64 for the checks on the exact path, which works in float32 itself.
    x = np.asarray(vectors, dtype=dtype)
    if x.ndim != 2:
        raise ValueError(f"vectors must be a 2-D array (one row per image), got shape {x.shape}")
    if x.shape[0] and not x.shape[1]:
        raise ValueError(f"vectors have no dimensions (shape {x.shape})")
    bad_rows = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if bad_rows.size:
        raise ValueError(
            f"vectors contain NaN or infinite values in {bad_rows.size} row(s), "
            f"first at row {bad_rows[0]}"
        )
    return x


def _l2_normalised(x: NDArray[np.float64]) -> NDArray[np.float64]:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    # An all-zero row has no direction; it is left at the origin (as sklearn's normalize does)
    # rather than turned into NaN.
    normalised: NDArray[np.float64] = x / np.where(norms == 0.0, 1.0, norms)
    return normalised


def _named(raw: NDArray[np.intp]) -> tuple[list[str], int, dict[int, str]]:
    """Noise -> "Ungrouped"; clusters -> "Group 1..k" by size, ties by their first row. Also
    each raw label's name."""
    # first_rows index the noise-free labels, which keeps the order of the rows: enough for ties.
    ids, first_rows, sizes = np.unique(raw[raw >= 0], return_index=True, return_counts=True)
    order = sorted(range(ids.size), key=lambda i: (-sizes[i], first_rows[i]))
    names = {int(ids[i]): f"Group {rank}" for rank, i in enumerate(order, start=1)}
    return [names.get(int(label), UNGROUPED) for label in raw], ids.size, names
