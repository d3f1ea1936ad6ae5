"""The float32 exact path agrees with hdbscan's own generic algorithm."""

from __future__ import annotations

import hdbscan
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from processing.exact_mst import exact_hdbscan_labels


def blobs(n_blobs: int, per_blob: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_blobs, dim))
    points = np.repeat(centres, per_blob, axis=0) + rng.normal(0, 0.25, (n_blobs * per_blob, dim))
    scattered = rng.normal(0, 2.0, size=(per_blob, dim))
    return np.vstack([points, scattered])


@pytest.mark.parametrize("unit_rows", [True, False])
@pytest.mark.parametrize(("min_cluster_size", "min_samples"), [(5, 5), (3, 1), (8, 2)])
def test_labels_match_hdbscan_generic(
    unit_rows: bool, min_cluster_size: int, min_samples: int
) -> None:
    x = blobs(12, 15, 48, seed=min_cluster_size)
    if unit_rows:
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    reference = hdbscan.HDBSCAN(
        min_cluster_size=min_cluster_size, min_samples=min_samples, algorithm="generic"
    ).fit_predict(x)

    ours = exact_hdbscan_labels(
        x, min_cluster_size, min_samples, unit_rows=unit_rows, allow_single_cluster=False
    )

    assert reference.max() >= 5
    # Not exactly 1: equal mutual-reachability distances (many) may be taken in another order.
    assert adjusted_rand_score(reference, ours) >= 0.98
    assert np.mean((reference < 0) == (ours < 0)) >= 0.98


def test_single_cluster_is_allowed_when_asked() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(0, 0.1, size=(30, 16)) + 5.0
    reference = hdbscan.HDBSCAN(
        min_cluster_size=5, min_samples=5, algorithm="generic", allow_single_cluster=True
    ).fit_predict(x)
    ours = exact_hdbscan_labels(x, 5, 5, unit_rows=False, allow_single_cluster=True)
    assert np.array_equal(reference, ours)
