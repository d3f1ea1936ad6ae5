"""HDBSCAN on the approximate kNN graph against the exact algorithm, on real arrays."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn.metrics import adjusted_rand_score

from processing.exact_mst import exact_hdbscan_labels
from processing.knn_hdbscan import knn_graph, knn_hdbscan_labels, mutual_reachability_tree

DIM = 64


def unit(x: NDArray[np.float64]) -> NDArray[np.float64]:
    normalised: NDArray[np.float64] = x / np.linalg.norm(x, axis=-1, keepdims=True)
    return normalised


def bursts_and_noise(
    n_bursts: int, n_noise: int, seed: int = 0
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Bursts of 5-20 near-duplicates around shared scenes, plus isotropic noise rows (-1)."""
    rng = np.random.default_rng(seed)
    common = unit(rng.normal(size=DIM))
    scenes = unit(0.6 * common + unit(rng.normal(size=(max(1, n_bursts // 8), DIM))))
    rows, truth = [], []
    for burst in range(n_bursts):
        centre = unit(scenes[rng.integers(len(scenes))] + 0.9 * unit(rng.normal(size=DIM)))
        size = int(rng.integers(5, 21))
        rows.append(unit(centre + 0.2 * unit(rng.normal(size=(size, DIM)))))
        truth += [burst] * size
    rows.append(unit(rng.normal(size=(n_noise, DIM))))
    truth += [-1] * n_noise
    return np.concatenate(rows).astype(np.float32), np.array(truth)


def test_neighbours_are_the_exact_nearest_other_rows() -> None:
    x, _ = bursts_and_noise(30, 20, seed=1)
    k = 10

    neighbours, distances = knn_graph(x, k, unit_rows=True, threads=1)

    exact = np.linalg.norm(x[:, None, :] - x[None, :, :], axis=-1)
    np.fill_diagonal(exact, np.inf)
    truth = np.sort(exact, axis=1)[:, :k]
    assert neighbours.shape == distances.shape == (len(x), k)
    assert not np.any(neighbours == np.arange(len(x))[:, None])
    # Distances are measured exactly (float32), whatever the index's int8 copy says.
    measured = np.linalg.norm(x[neighbours] - x[:, None, :], axis=-1)
    np.testing.assert_allclose(distances, measured, rtol=1e-5, atol=1e-6)
    assert np.all(np.diff(distances, axis=1) >= 0)
    # HNSW is approximate: on a few hundred rows its lists are almost exact. One thread: a
    # multi-threaded build is not deterministic (0.93-0.99 measured over repeated runs).
    assert np.mean(np.isclose(distances, truth, atol=1e-5)) >= 0.98


@pytest.mark.parametrize("unit_rows", [True, False])
def test_labels_agree_with_the_exact_path_and_noise_stays_noise(unit_rows: bool) -> None:
    x, truth = bursts_and_noise(60, 40, seed=2)
    if not unit_rows:
        x = x * np.float32(3.0)

    exact = exact_hdbscan_labels(x, 5, 5, unit_rows=unit_rows, allow_single_cluster=False)
    graph = knn_hdbscan_labels(x, 5, 5, unit_rows=unit_rows, allow_single_cluster=False, threads=1)

    assert adjusted_rand_score(exact, graph) >= 0.95
    assert adjusted_rand_score(truth, graph) >= 0.95
    assert np.all(graph[truth == -1] == -1)


def test_disconnected_graph_keeps_each_part_apart() -> None:
    # Two bursts in opposite directions, each smaller than k: the kNN graph has two parts,
    # which the tree joins by an infinite edge; each part is its own cluster.
    rng = np.random.default_rng(3)
    a = unit(np.ones(DIM) + 0.05 * rng.normal(size=(12, DIM)))
    x = np.concatenate([a, -a]).astype(np.float32)

    neighbours, distances = knn_graph(x, 8, unit_rows=True)
    tree = mutual_reachability_tree(neighbours, distances, 5)
    labels = knn_hdbscan_labels(x, 5, 5, unit_rows=True, allow_single_cluster=False, neighbours=8)

    assert tree.shape == (23, 3)
    assert tree[-1, 2] > 10 * tree[-2, 2]  # one bridge, longer than every edge of the graph
    assert len(set(labels[:12])) == len(set(labels[12:])) == 1
    assert labels[0] != labels[12]
    assert labels[0] >= 0
    assert labels[12] >= 0


def test_min_samples_above_the_default_neighbours_widens_the_graph() -> None:
    x, _ = bursts_and_noise(10, 5, seed=4)

    # One thread: a multi-threaded HNSW build is not deterministic (CI once saw ARI 0.936).
    labels = knn_hdbscan_labels(x, 40, 60, unit_rows=True, allow_single_cluster=True, threads=1)

    exact = exact_hdbscan_labels(x, 40, 60, unit_rows=True, allow_single_cluster=True)
    assert adjusted_rand_score(exact, labels) >= 0.95
