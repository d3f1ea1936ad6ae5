"""HDBSCAN's exact ("generic") algorithm in float32 with BLAS: the same tree, much faster.

hdbscan's generic path builds its distance matrix in float64, derives the mutual reachability
with column-wise partitions and temporary copies, then runs Prim's algorithm in Cython; at 10k
rows that is ~8 s here, mostly spent outside the tree itself. Here one matrix product gives a
matrix ordered like the distances, the mutual reachability is formed in place, and Prim's
algorithm runs as vectorised row updates, all on a single float32 n×n matrix (400 MB at 10k
rows). The minimum spanning tree then goes through hdbscan's own tree code. Labels agree with
its generic run (ARI 1.0 at 1k photo-like rows, 0.995 at 5k): mutual-reachability distances
are full of exact ties, and which of two equal edges is taken first can move a point or two.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hdbscan._hdbscan_linkage import label
from hdbscan.hdbscan_ import _tree_to_labels
from numpy.typing import NDArray

# Rows per block for the partition (its temporary is a copy of the rows it sorts).
_BLOCK_ROWS = 2048


def _closeness_order(x: NDArray[np.float32], unit_rows: bool) -> NDArray[np.float32]:
    """An n×n matrix ordered like the distances (smaller = closer), from one matrix product.

    Unit rows: -cos (distance² = 2 + 2·value). Otherwise the squared distance itself. The
    square root is taken only on the n-1 tree edges at the end: it does not change the tree."""
    scores: NDArray[np.float32] = np.matmul(x, x.T)
    if unit_rows:
        np.negative(scores, out=scores)
    else:
        squared = np.einsum("ij,ij->i", x, x)
        scores *= -2.0
        scores += squared[:, None]
        scores += squared[None, :]
    return scores


def keep_moments_apart(
    scores: NDArray[np.float32], moments: NDArray[np.intp], unit_rows: bool
) -> NDArray[np.float32]:
    """In place: rows of two different known moments (ids >= 0) become as far apart as
    anything can be, so no tree edge joins them below the top; -1 (unknown) joins freely."""
    far = np.float32(1.0) if unit_rows else np.float32(scores.max()) * 4 + 1
    known = moments >= 0
    for start in range(0, scores.shape[0], _BLOCK_ROWS):
        rows = moments[start : start + _BLOCK_ROWS, None]
        apart = (rows != moments[None, :]) & (rows >= 0) & known[None, :]
        scores[start : start + _BLOCK_ROWS][apart] = far
    return scores


def mutual_reachability(scores: NDArray[np.float32], min_samples: int) -> NDArray[np.float32]:
    """In place: max(score(a, b), core(a), core(b)), where core is the score of the
    min_samples-th neighbour counting the point itself first (hdbscan's definition)."""
    n = scores.shape[0]
    k = min(min_samples, n - 1)
    core = np.empty(n, dtype=np.float32)
    for start in range(0, n, _BLOCK_ROWS):
        core[start : start + _BLOCK_ROWS] = np.partition(
            scores[start : start + _BLOCK_ROWS], k, axis=1
        )[:, k]
    np.maximum(scores, core[:, None], out=scores)
    np.maximum(scores, core[None, :], out=scores)
    return scores


def minimum_spanning_tree(weights: NDArray[np.float32]) -> NDArray[np.float64]:
    """Prim's algorithm on a dense symmetric matrix: (n-1, 3) rows of (from, to, weight)."""
    n = weights.shape[0]
    edges = np.empty((n - 1, 3), dtype=np.float64)
    in_tree = np.zeros(n, dtype=bool)
    best = weights[0].copy()
    parent = np.zeros(n, dtype=np.intp)
    in_tree[0] = True
    best[0] = np.inf
    for step in range(n - 1):
        node = int(np.argmin(best))
        edges[step] = (parent[node], node, best[node])
        in_tree[node] = True
        best[node] = np.inf
        row = weights[node]
        closer = (row < best) & ~in_tree
        best[closer] = row[closer]
        parent[closer] = node
    return edges


def exact_hdbscan_labels(
    x: NDArray[Any],
    min_cluster_size: int,
    min_samples: int,
    *,
    unit_rows: bool,
    allow_single_cluster: bool,
    moments: NDArray[np.intp] | None = None,
) -> NDArray[np.intp]:
    """Cluster labels (-1 = noise) as hdbscan's generic euclidean algorithm gives them.

    `unit_rows`: the rows are L2-normalised (cosine), which saves two passes over n².
    `moments`: one id per row (-1 = unknown); rows of different moments are kept apart."""
    data = np.ascontiguousarray(x, dtype=np.float32)
    scores = _closeness_order(data, unit_rows)
    if moments is not None:
        keep_moments_apart(scores, moments, unit_rows)
    tree = minimum_spanning_tree(mutual_reachability(scores, min_samples))
    squared = 2.0 + 2.0 * tree[:, 2] if unit_rows else tree[:, 2]
    tree[:, 2] = np.sqrt(np.maximum(squared, 0.0))
    tree = tree[np.argsort(tree[:, 2], kind="stable")]
    labels, *_ = _tree_to_labels(
        data,
        label(tree),
        min_cluster_size=min_cluster_size,
        allow_single_cluster=allow_single_cluster,
    )
    return np.asarray(labels, dtype=np.intp)
