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

from processing.exact_mst import exact_hdbscan_labels
from processing.knn_hdbscan import knn_hdbscan_labels

UNGROUPED = "Ungrouped"
Metric = Literal["cosine", "euclidean"]

# Above this many rows the kNN-graph path is used. Measured with bench/analyze_scale.py (384-d
# photo-like rows, one run): 5k rows, exact 4.9 s vs graph 4.7 s; 10k, exact 7.1 s and 686 MB
# peak vs graph 3.9 s and 249 MB; 20k, exact 68 s and 2.0 GB vs graph 13.8 s and 297 MB.
LARGE_BATCH_ROWS = 5_000


@dataclass(frozen=True, slots=True)
class GroupingResult:
    """One label per input row, plus how the grouping was obtained."""

    labels: list[str]
    n_groups: int
    used_single_cluster_fallback: bool
    pca_dims: int | None


class ImageGrouper:
    """HDBSCAN over embedding vectors, with the parameters a batch is analysed with."""

    def __init__(
        self,
        min_cluster_size: int = 5,
        min_samples: int = 5,
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

    def fit_labels(self, vectors: NDArray[Any]) -> GroupingResult:
        """Label each row "Group N" or "Ungrouped"; ValueError if not 2-D or not finite."""
        large = len(vectors) > self.large_batch_rows
        # Large batches stay in float32: a float64 copy of 100k 1280-d rows alone is 1 GB.
        x = _checked(vectors, np.float32 if large else np.float64)
        n = x.shape[0]
        # A group smaller than min_cluster_size would contradict the caller's own parameter, so a
        # batch that small is all "Ungrouped", even if its images are identical.
        if n < self.min_cluster_size:
            return GroupingResult([UNGROUPED] * n, 0, False, None)
        if self.metric == "cosine":
            x = _l2_normalised(x)
        if np.all(x == x[0]):
            # Identical rows have no density structure to find (and nothing for PCA to keep).
            return GroupingResult(["Group 1"] * n, 1, True, None)

        pca_dims = None
        unit_rows = self.metric == "cosine"

        raw = self._cluster(x, large, unit_rows, allow_single_cluster=False)
        fallback = bool(np.all(raw < 0))
        if fallback:
            # Nothing found: the batch may be one scene, which HDBSCAN only reports when allowed
            # to select the root. Always allowing it merges separate bursts into one group.
            raw = self._cluster(x, large, unit_rows, allow_single_cluster=True)
        labels, n_groups = _named(raw)
        return GroupingResult(labels, n_groups, fallback, pca_dims)

    def _cluster(
        self, x: NDArray[np.float64], large: bool, unit_rows: bool, *, allow_single_cluster: bool
    ) -> NDArray[np.intp]:
        # hdbscan clamps min_samples too; done here so stored parameters never reach it unchecked.
        min_samples = min(self.min_samples, x.shape[0] - 1)
        if not large:
            return exact_hdbscan_labels(
                x,
                self.min_cluster_size,
                min_samples,
                unit_rows=unit_rows,
                allow_single_cluster=allow_single_cluster,
            )
        return knn_hdbscan_labels(
            x,
            self.min_cluster_size,
            min_samples,
            unit_rows=unit_rows,
            allow_single_cluster=allow_single_cluster,
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


def split_by_time(
    labels: Sequence[str], shot_at: Sequence[datetime | None], gap_seconds: float
) -> tuple[list[str], int]:
    """Split each group where consecutive capture times are more than `gap_seconds` apart.

    Images without a capture time stay with the largest part of their visual group; a part
    left with a single image becomes "Ungrouped" (one frame is not a burst). Groups are then
    renumbered by size. Returns the labels and the number of groups."""
    members: dict[str, list[int]] = {}
    for row, label in enumerate(labels):
        if label != UNGROUPED:
            members.setdefault(label, []).append(row)
    raw = np.full(len(labels), -1, dtype=np.intp)
    next_id = 0
    for rows in members.values():
        for part in _time_segments(rows, shot_at, gap_seconds):
            if len(part) > 1:
                raw[part] = next_id
                next_id += 1
    return _named(raw)


def _time_segments(
    rows: list[int], shot_at: Sequence[datetime | None], gap_seconds: float
) -> list[list[int]]:
    timed = sorted((t, row) for row in rows if (t := shot_at[row]) is not None)
    untimed = [row for row in rows if shot_at[row] is None]
    parts: list[list[int]] = []
    previous: datetime | None = None
    for moment, row in timed:
        if previous is None or (moment - previous).total_seconds() > gap_seconds:
            parts.append([])
        parts[-1].append(row)
        previous = moment
    if not parts:
        return [untimed]
    max(parts, key=len).extend(untimed)
    return parts
