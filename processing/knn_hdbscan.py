"""HDBSCAN for large batches on an approximate k-nearest-neighbour graph: memory linear in n.

The exact path (processing/exact_mst.py) holds an n×n matrix, 4·n² bytes: 1.6 GB at 20k rows,
40 GB at 100k. HDBSCAN only needs, per point, its core distance (the distance to its
min_samples-th neighbour) and a minimum spanning tree of the mutual-reachability graph, whose
edges between near points are all that shape the clusters. So:

1. an HNSW index (usearch) gives each row its k nearest neighbours (k ≥ min_samples);
2. core distances come from those lists, and each kNN edge gets its mutual-reachability weight
   max(d(a, b), core(a), core(b)), as hdbscan defines it;
3. scipy's minimum spanning tree of that sparse graph (a forest when the graph is disconnected:
   its parts are then joined by edges longer than any other, so they split above every cluster);
4. hdbscan's own tree code turns the tree into labels, as on the exact path.

No numba is involved (fast_hdbscan's precomputed path would need its JIT, up to 30 s on a cold
process), so there is nothing to warm up. What is approximate is the neighbour lists (HNSW
recall) and the tree across far-apart regions; noise points keep their large core distance, so
they stay noise. See bench/analyze_scale.py for time, memory and agreement with the exact path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hdbscan._hdbscan_linkage import label
from hdbscan.hdbscan_ import _tree_to_labels
from numpy.typing import NDArray
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree
from usearch.index import BatchMatches, Index

# Neighbours per row (raised to min_samples). The tree of the kNN graph differs from the exact
# one where it has to join regions that are not each other's neighbours; measured on photo-like
# rows with exact neighbour lists, ARI vs the exact path at 20k: 0.968 with k=20, 0.989 with 25,
# 0.995 with 30 (and 0.946 with 15 at 5k, where 30 gives 0.997).
DEFAULT_NEIGHBOURS = 30
# HNSW build/search depth. Building is most of the time; depth 32 instead of 64 halves it, but
# moves the ARI vs exact at 10k photo-like rows from 0.993 to 0.984 and loses recall on
# low-dimensional rows (0.97 of the true 10 neighbours in 64-d), so 64.
_CONNECTIVITY = 16
_EXPANSION_ADD = 64
_EXPANSION_SEARCH = 64
# The index stores int8 copies of the rows: 4x less memory and 2-3x faster than float32 here;
# its distances only pick the candidates, which are then measured exactly in float32.
_INDEX_DTYPE = "i8"
# Candidates searched per row, as a multiple of k + 1: the int8 distances misorder close ones.
_CANDIDATES = 2
# Floats gathered per block when measuring candidate distances exactly (rows·candidates·dims):
# 64 MB, whatever the dimension.
_BLOCK_FLOATS = 16 * 1024 * 1024


def knn_graph(
    x: NDArray[np.float32], k: int, *, unit_rows: bool, threads: int = 0
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Each row's k nearest other rows and their euclidean distances, nearest first.

    `unit_rows`: rows are L2-normalised; inner products are then enough (||a-b||² = 2-2·a·b)."""
    n, dims = x.shape
    candidates_per_row = min(n, _CANDIDATES * (k + 1))
    index = Index(
        ndim=dims,
        metric="ip" if unit_rows else "l2sq",
        dtype=_INDEX_DTYPE,
        connectivity=_CONNECTIVITY,
        expansion_add=_EXPANSION_ADD,
        expansion_search=_EXPANSION_SEARCH,
    )
    keys = np.arange(n, dtype=np.uint64)
    index.add(keys, x, threads=threads)
    found = index.search(x, candidates_per_row, threads=threads)
    assert isinstance(found, BatchMatches)  # a 2-D query gives one result list per row
    candidates = np.asarray(found.keys, dtype=np.int64)
    counts = np.asarray(found.counts)
    del index, found
    # usearch pads missing results; they and the row itself are dropped (a row is normally its
    # own first hit, but a duplicate may come first).
    valid = np.arange(candidates.shape[1])[None, :] < counts[:, None]
    valid &= candidates != np.arange(n)[:, None]
    candidates[~valid] = -1
    # ||a - b||² = ||a||² + ||b||² - 2·a·b, the products as one batched matrix product per block
    # (gathering the candidates' rows is most of the cost).
    norms = np.ones(n, dtype=np.float32) if unit_rows else np.einsum("ij,ij->i", x, x)
    squared = np.empty(candidates.shape, dtype=np.float64)
    block_rows = max(1, _BLOCK_FLOATS // (candidates.shape[1] * dims))
    for start in range(0, n, block_rows):
        block = slice(start, start + block_rows)
        ids = np.maximum(candidates[block], 0)
        products = np.matmul(x[ids], x[block, :, None])[..., 0]
        squared[block] = norms[block, None] + norms[ids] - 2.0 * products
    np.maximum(squared, 0.0, out=squared)
    squared[~valid] = np.inf
    order = np.argsort(squared, axis=1, kind="stable")[:, :k]
    neighbours = np.take_along_axis(candidates, order, axis=1)
    distances = np.sqrt(np.take_along_axis(squared, order, axis=1))
    return neighbours, distances


def mutual_reachability_tree(
    neighbours: NDArray[np.int64], distances: NDArray[np.float64], min_samples: int
) -> NDArray[np.float64]:
    """(n-1, 3) rows of (from, to, weight), sorted by weight: the minimum spanning tree of the
    kNN graph under mutual reachability, its parts joined by edges longer than all others."""
    n, k = neighbours.shape
    # hdbscan's core distance (its generic algorithm, as on the exact path): the distance to the
    # min_samples-th other row.
    core = distances[:, min(min_samples, k) - 1]
    rows = np.repeat(np.arange(n), k)
    cols = neighbours.ravel()
    keep = cols >= 0
    rows, cols = rows[keep], cols[keep]
    weights = np.maximum(distances.ravel()[keep], np.maximum(core[rows], core[cols]))
    # scipy treats a stored 0 as "no edge"; a constant offset keeps every edge and the same tree.
    graph = csr_matrix((weights + 1.0, (rows, cols)), shape=(n, n))
    del rows, cols, weights
    tree = minimum_spanning_tree(graph).tocoo()
    edges = np.column_stack([tree.row, tree.col, tree.data - 1.0]).astype(np.float64)
    parts, part_of = connected_components(graph, directed=False)
    if parts > 1:
        # One representative per part, chained by edges longer than any in the graph: the parts
        # separate first, above every cluster. (Not infinite: hdbscan's tree code divides by
        # the weights, and a finite root keeps allow_single_cluster meaningful.)
        firsts = np.unique(part_of, return_index=True)[1]
        firsts.sort()
        longest = float(edges[:, 2].max()) if len(edges) else 0.0
        bridge = 2.0 * longest + 1.0
        bridges = np.column_stack([firsts[:-1], firsts[1:], np.full(parts - 1, bridge)])
        edges = np.concatenate([edges, bridges])
    return edges[np.argsort(edges[:, 2], kind="stable")]


def knn_hdbscan_labels(
    x: NDArray[Any],
    min_cluster_size: int,
    min_samples: int,
    *,
    unit_rows: bool,
    allow_single_cluster: bool,
    neighbours: int = DEFAULT_NEIGHBOURS,
    threads: int = 0,
) -> NDArray[np.intp]:
    """Cluster labels (-1 = noise) of HDBSCAN on the kNN mutual-reachability graph.

    `threads`: for the HNSW index (0 = all cores). A multi-threaded build is not deterministic:
    on a few hundred rows, about 1 run in 300 finds other neighbour lists (ARI vs exact 0.815
    instead of 1.0 in tests/processing/test_knn_hdbscan.py), more often under load."""
    data = np.ascontiguousarray(x, dtype=np.float32)
    n = data.shape[0]
    k = min(n - 1, max(neighbours, min_samples))
    tree = mutual_reachability_tree(
        *knn_graph(data, k, unit_rows=unit_rows, threads=threads), min_samples
    )
    labels, *_ = _tree_to_labels(
        np.empty((n, 0)),
        label(tree),
        min_cluster_size=min_cluster_size,
        allow_single_cluster=allow_single_cluster,
    )
    return np.asarray(labels, dtype=np.intp)
