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
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from processing.exact_mst import exact_hdbscan_labels
from processing.knn_hdbscan import knn_hdbscan_labels

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
# Frames of one moment (one camera, no gap over the time gap) at least this alike (cosine),
# directly or through other frames of the moment, are one group. Measured with the offline
# encoder on bench/real_shoots.py's cards: the weakest link inside a real burst is 0.79, the most
# alike two unrelated photos are 0.73.
MOMENT_LINK_COSINE = 0.75


# HDBSCAN's finest parameters (min_cluster_size, min_samples): single linkage's density. A
# cluster found at the request's parameters that holds two or more clusters of this finest
# level, each at least min_cluster_size images, is cut into them (_split_by_moment_looks).
# Measured on bench/real_shoots.py's card without capture times (MAC vectors): at 5/5 and 3/3
# HDBSCAN alone puts six moments of one fixed camera (36 frames) in one group: min_samples > 1
# smooths a short burst into its neighbours, and a larger min_cluster_size makes it prefer the
# group of all of them; at the finest level those moments stay apart. Only images without a
# capture time keep HDBSCAN's clusters (timed ones are regrouped by moment), so this matters
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


def moment_ids(captures: Sequence[Capture], gap_seconds: float) -> NDArray[np.intp]:
    """One id per image: a new moment starts wherever a camera's consecutive frames are more
    than `gap_seconds` apart. -1 for images without a capture time."""
    ids = np.full(len(captures), -1, dtype=np.intp)
    by_camera: dict[str | None, list[tuple[datetime, int]]] = {}
    for row, capture in enumerate(captures):
        if capture.shot_at is not None:
            by_camera.setdefault(capture.camera, []).append((capture.shot_at, row))
    next_id = -1
    for frames in by_camera.values():
        previous: datetime | None = None
        for moment, row in sorted(frames):
            if previous is None or (moment - previous).total_seconds() > gap_seconds:
                next_id += 1
            ids[row] = next_id
            previous = moment
    return ids


@dataclass(frozen=True, slots=True)
class GroupingResult:
    """One label per input row, plus how the grouping was obtained."""

    labels: list[str]
    n_groups: int
    used_single_cluster_fallback: bool


class ImageGrouper:
    """HDBSCAN over embedding vectors, with the parameters a batch is analysed with."""

    def __init__(
        self,
        min_cluster_size: int = DEFAULT_MIN_CLUSTER_SIZE,
        min_samples: int = DEFAULT_MIN_SAMPLES,
        metric: Metric = "cosine",
        *,
        large_batch_rows: int = LARGE_BATCH_ROWS,
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

    def fit_labels(
        self,
        vectors: NDArray[Any],
        captures: Sequence[Capture] | None = None,
        time_gap_seconds: float | None = None,
    ) -> GroupingResult:
        """Label each row "Group N" or "Ungrouped"; ValueError if not 2-D or not finite.

        With `captures` (one per row) and `time_gap_seconds`, a group never spans a gap longer
        than that between one camera's consecutive frames; rows without a capture time are
        grouped by looks alone."""
        large = len(vectors) > self.large_batch_rows
        # Large batches stay in float32: a float64 copy of 100k 1280-d rows alone is 1 GB.
        x = _checked(vectors, np.float32 if large else np.float64)
        n = x.shape[0]
        # A group smaller than min_cluster_size would contradict the caller's own parameter, so a
        # batch that small is all "Ungrouped", even if its images are identical.
        if n < self.min_cluster_size:
            return GroupingResult([UNGROUPED] * n, 0, False)
        moments: NDArray[np.intp] | None = None
        if captures is not None and time_gap_seconds is not None:
            if len(captures) != n:
                raise ValueError(f"{len(captures)} captures for {n} vectors")
            moments = moment_ids(captures, time_gap_seconds)
        if self.metric == "cosine":
            x = _l2_normalised(x)
        if np.all(x == x[0]):
            # Identical rows have no density structure to find (and nothing for PCA to keep).
            apart = None if moments is None else _untimed_by_camera(moments, captures)
            raw = self._refined(np.zeros(n, dtype=np.intp), x, moments, apart, fallback=True)
            labels, n_groups = _named(raw)
            return GroupingResult(labels, n_groups, True)

        unit_rows = self.metric == "cosine"

        # Untimed rows are clustered among themselves: one more "moment" for HDBSCAN per camera.
        apart = None if moments is None else _untimed_by_camera(moments, captures)
        raw = self._cluster(x, large, unit_rows, allow_single_cluster=False, moments=apart)
        if not large and (self.min_cluster_size, self.min_samples) != FINEST:
            finest = self._cluster(
                x, large, unit_rows, allow_single_cluster=False, moments=apart, at=FINEST
            )
            raw = _split_by_moment_looks(raw, finest, self.min_cluster_size)
        raw = self._refined(raw, x, moments, apart, fallback=False)
        fallback = bool(np.all(raw < 0))
        if fallback:
            # Nothing found: the batch may be one scene, which HDBSCAN only reports when allowed
            # to select the root (always allowing it merges separate bursts into one group). Its
            # root keeps only the rows that stay to the end, so the whole batch is the candidate
            # here, cut by moment and looks, and kept only where it is one scene.
            if large:  # the n x n comparisons of the whole batch would not fit in memory
                raw = self._cluster(x, large, unit_rows, allow_single_cluster=True)
            else:
                raw = np.zeros(n, dtype=np.intp)
            raw = self._refined(raw, x, moments, apart, fallback=True)
        labels, n_groups = _named(raw)
        return GroupingResult(labels, n_groups, fallback)

    def _refined(
        self,
        raw: NDArray[np.intp],
        x: NDArray[np.float64],
        moments: NDArray[np.intp] | None,
        apart: NDArray[np.intp] | None,
        *,
        fallback: bool,
    ) -> NDArray[np.intp]:
        """The final groups: HDBSCAN's clusters, or with capture times each moment's frames
        that look alike, without outsiders; a group smaller than min_cluster_size is noise.
        `apart`: `moments` with each camera's untimed rows as one more moment."""
        unit = _l2_normalised(x)
        if moments is not None and apart is not None:
            raw = _by_moment(raw, unit, moments, apart)
        out = np.full(raw.shape[0], -1, dtype=np.intp)
        next_id = 0
        for rows in _members(raw):
            for piece in _linked(rows, unit):
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
                # moment, has only min_cluster_size - 1 neighbours to count.
                min_samples = max(1, min(min_samples, min_cluster_size - 1))
            return exact_hdbscan_labels(
                x,
                min_cluster_size,
                min_samples,
                unit_rows=unit_rows,
                allow_single_cluster=allow_single_cluster,
                moments=moments,
            )
        # Moments are applied afterwards (_refined regroups timed rows by moment).
        return knn_hdbscan_labels(
            x,
            min_cluster_size,
            min_samples,
            unit_rows=unit_rows,
            allow_single_cluster=allow_single_cluster,
        )


def _split_by_moment_looks(
    raw: NDArray[np.intp], finest: NDArray[np.intp], min_cluster_size: int
) -> NDArray[np.intp]:
    """HDBSCAN's clusters at the request's parameters, each cut into the clusters HDBSCAN finds
    inside it at its finest (FINEST) where two or more of those are at least min_cluster_size
    images: then the cluster holds several moments, each big enough to be a group of its own;
    its other rows are Ungrouped. A cluster with fewer such parts is kept whole."""
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


def _untimed_by_camera(
    moments: NDArray[np.intp], captures: Sequence[Capture] | None
) -> NDArray[np.intp]:
    """`moments` with the rows without a capture time given one more id per camera: their
    time is unknown, but two bodies never take the same frame (two photographers at one
    wedding shoot the same scene from different places). Rows without a camera share one id."""
    apart = moments.copy()
    untimed = np.flatnonzero(moments < 0)
    cameras: dict[str | None, int] = {}
    first = int(moments.max()) + 1
    for row in untimed:
        camera = captures[row].camera if captures is not None else None
        apart[row] = first + cameras.setdefault(camera, len(cameras))
    return apart


def _by_moment(
    raw: NDArray[np.intp],
    unit: NDArray[np.float64],
    moments: NDArray[np.intp],
    apart: NDArray[np.intp],
) -> NDArray[np.intp]:
    """Regroup timed rows by moment: within one camera's moment, frames joined by a chain of
    pairs at least MOMENT_LINK_COSINE alike are one group, however HDBSCAN cut them (at small
    min_cluster_size it splits a burst where a head turns). Rows without a capture time keep
    the clusters HDBSCAN found among them (looks alone: their time is unknown, so a look-alike
    of another moment cannot be told from a frame of the same moment), cut by camera."""
    out = np.full(raw.shape[0], -1, dtype=np.intp)
    next_id = 0
    for rows in _members(moments):
        for piece in _linked(rows, unit):
            out[piece] = next_id
            next_id += 1
    for rows in _members(raw):
        untimed = rows[moments[rows] < 0]
        for camera_rows in _members(apart[untimed]):
            out[untimed[camera_rows]] = next_id
            next_id += 1
    return out


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


def _named(raw: NDArray[np.intp]) -> tuple[list[str], int]:
    """Noise -> "Ungrouped"; clusters -> "Group 1..k" by size, ties by their first row."""
    # first_rows index the noise-free labels, which keeps the order of the rows: enough for ties.
    ids, first_rows, sizes = np.unique(raw[raw >= 0], return_index=True, return_counts=True)
    order = sorted(range(ids.size), key=lambda i: (-sizes[i], first_rows[i]))
    names = {int(ids[i]): f"Group {rank}" for rank, i in enumerate(order, start=1)}
    return [names.get(int(label), UNGROUPED) for label in raw], ids.size
