"""ImageGrouper on synthetic embeddings: tight blobs on the unit sphere plus scattered points."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn.metrics import adjusted_rand_score

from processing.grouping import (
    DEFAULT_MIN_CLUSTER_SIZE,
    DEFAULT_MIN_SAMPLES,
    UNGROUPED,
    Capture,
    GroupingResult,
    ImageGrouper,
    Metric,
    camera_key,
)
from processing.moments import DEFAULT_RULES, cadence_cuts, camera_runs, link_run

DIM = 384


def unit(x: NDArray[np.float64]) -> NDArray[np.float64]:
    normalised: NDArray[np.float64] = x / np.linalg.norm(x, axis=-1, keepdims=True)
    return normalised


def blobs(
    sizes: list[int], n_scattered: int = 0, spread: float = 0.1, seed: int = 0
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Unit vectors in blobs of the given sizes (rows in blob order), then scattered ones (-1).

    Like photo embeddings, the blobs share a common direction (centres 1.0 apart), while the
    scattered rows point anywhere (~1.4 from everything); within a blob rows are ~1.4·spread apart.
    """
    rng = np.random.default_rng(seed)
    common = unit(rng.normal(size=DIM))
    rows, truth = [], []
    for label, size in enumerate(sizes):
        centre = unit(common + unit(rng.normal(size=DIM)))
        rows.append(unit(centre + spread * unit(rng.normal(size=(size, DIM)))))
        truth += [label] * size
    rows.append(unit(rng.normal(size=(n_scattered, DIM))))
    truth += [-1] * n_scattered
    return np.concatenate(rows).astype(np.float32), np.array(truth)


def groups_of(result: GroupingResult, truth: NDArray[np.int64]) -> dict[int, set[str]]:
    return {int(t): {result.labels[i] for i in np.flatnonzero(truth == t)} for t in set(truth)}


def test_the_default_grouper_is_the_apis() -> None:
    """ImageGrouper() groups as an analysis with no parameters does (every pair a group); the
    other tests here choose 5/5 on purpose (groups of five or more)."""
    grouper = ImageGrouper()
    assert (grouper.min_cluster_size, grouper.min_samples) == (2, 1)
    assert (DEFAULT_MIN_CLUSTER_SIZE, DEFAULT_MIN_SAMPLES) == (2, 1)
    x, truth = blobs([2, 3], n_scattered=3)
    assert sorted(ImageGrouper().fit_labels(x).labels[:5]) == ["Group 1"] * 3 + ["Group 2"] * 2


def test_each_blob_is_one_group_numbered_by_size() -> None:
    x, truth = blobs([8, 20, 12, 16, 10], n_scattered=4)

    result = ImageGrouper(5, 5).fit_labels(x)

    assert groups_of(result, truth) == {
        1: {"Group 1"},
        3: {"Group 2"},
        2: {"Group 3"},
        4: {"Group 4"},
        0: {"Group 5"},
        -1: {UNGROUPED},
    }
    assert result.n_groups == 5
    assert not result.used_single_cluster_fallback


def test_equal_sizes_are_numbered_by_first_row() -> None:
    x, truth = blobs([10, 10, 10], n_scattered=3, seed=1)
    order = np.r_[20:30, 0:20, 30:33]  # blob 2's rows come first

    result = ImageGrouper(5, 5).fit_labels(x[order])

    assert groups_of(result, truth[order]) == {
        2: {"Group 1"},
        0: {"Group 2"},
        1: {"Group 3"},
        -1: {UNGROUPED},
    }


def test_metric_decides_whether_length_matters() -> None:
    # One scene, half of its rows ten times longer, plus a second blob: two scenes for cosine,
    # three for euclidean. The longer rows come right after the others (rows are in upload
    # order, which cuts too).
    x, truth = blobs([24, 12], spread=0.05, seed=2)
    x[12:24] *= 10
    truth[12:24] = 2

    cosine = ImageGrouper(5, 5, metric="cosine").fit_labels(x)
    euclidean = ImageGrouper(5, 5, metric="euclidean").fit_labels(x)

    assert groups_of(cosine, truth) == {0: {"Group 1"}, 2: {"Group 1"}, 1: {"Group 2"}}
    assert euclidean.n_groups == 3
    assert all(len(labels) == 1 for labels in groups_of(euclidean, truth).values())


def test_same_input_gives_same_labels() -> None:
    x, _ = blobs([15, 9, 9, 7], n_scattered=6, spread=0.3, seed=3)

    first = ImageGrouper(5, 5).fit_labels(x)
    again = ImageGrouper(5, 5).fit_labels(x.copy())

    assert first == again


def test_one_scene_uses_the_single_cluster_fallback() -> None:
    x, truth = blobs([20], n_scattered=3, seed=4)

    result = ImageGrouper(5, 5).fit_labels(x)

    assert result.used_single_cluster_fallback
    assert result.n_groups == 1
    # hdbscan's quirk when the single cluster is the root: only the rows that stay to the densest
    # level get its label (here 5-6 of the 20), the rest of the scene is "Ungrouped".
    assert groups_of(result, truth)[-1] == {UNGROUPED}
    assert 5 <= result.labels.count("Group 1") <= 20


def test_fallback_is_not_used_when_groups_are_found() -> None:
    x, _ = blobs([20, 20], seed=5)

    result = ImageGrouper(5, 5).fit_labels(x)

    assert not result.used_single_cluster_fallback
    assert result.n_groups == 2


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_knn_graph_path_agrees_with_exact_path(metric: Metric) -> None:
    rng = np.random.default_rng(6)
    x, truth = blobs([int(s) for s in rng.integers(8, 25, size=40)], n_scattered=30, spread=0.3)

    exact = ImageGrouper(5, 5, metric=metric).fit_labels(x)
    graph = ImageGrouper(5, 5, metric=metric, large_batch_rows=100).fit_labels(x)

    assert exact.n_groups == 40
    # The graph's neighbour lists are approximate, and HNSW built on several threads is not
    # deterministic: under load it has found 39 groups here (two blobs joined), still ARI ~0.97.
    assert abs(graph.n_groups - 40) <= 1
    assert adjusted_rand_score(exact.labels, graph.labels) >= 0.95
    # The scattered rows stay "Ungrouped" on the graph path too.
    assert {graph.labels[i] for i in np.flatnonzero(truth == -1)} == {UNGROUPED}


def test_no_rows() -> None:
    assert ImageGrouper(5, 5).fit_labels(np.empty((0, DIM))) == GroupingResult([], 0, False)


def test_one_row() -> None:
    result = ImageGrouper(5, 5).fit_labels(np.ones((1, DIM)))

    assert result == GroupingResult([UNGROUPED], 0, False)


def test_fewer_rows_than_min_cluster_size_are_ungrouped_even_if_identical() -> None:
    assert (
        ImageGrouper(min_cluster_size=5, min_samples=5).fit_labels(np.ones((4, DIM))).labels
        == [UNGROUPED] * 4
    )


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_identical_rows_are_one_group(metric: Metric) -> None:
    result = ImageGrouper(5, 5, metric=metric).fit_labels(np.ones((9, DIM)))

    assert result.labels == ["Group 1"] * 9
    assert result.n_groups == 1


def test_min_samples_larger_than_the_batch_is_clamped() -> None:
    x, truth = blobs([6, 6], spread=0.05, seed=7)

    result = ImageGrouper(min_cluster_size=3, min_samples=100).fit_labels(x)

    assert len(result.labels) == 12


def test_zero_rows_under_cosine_do_not_crash() -> None:
    x, _ = blobs([10], n_scattered=2, seed=8)
    x[-1] = 0.0

    result = ImageGrouper(5, 5).fit_labels(x)

    assert result.labels[-1] == UNGROUPED


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused(bad: float) -> None:
    x, _ = blobs([10], seed=9)
    x[3, 7] = bad

    with pytest.raises(ValueError, match="NaN or infinite values in 1 row"):
        ImageGrouper(5, 5).fit_labels(x)


@pytest.mark.parametrize("shape", [(DIM,), (2, 3, DIM), (6, 0)])
def test_input_must_be_a_2d_matrix(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="2-D|no dimensions"):
        ImageGrouper(5, 5).fit_labels(np.ones(shape))


@pytest.mark.parametrize(
    "kwargs",
    [{"min_cluster_size": 1}, {"min_samples": 0}, {"metric": "manhattan"}],
)
def test_bad_parameters_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        ImageGrouper(**kwargs)


START = datetime(2026, 6, 13, 14, 0, tzinfo=UTC)


def at(seconds: float, camera: str | None = "canon|r6|1") -> Capture:
    return Capture(START + timedelta(seconds=seconds), camera)


def test_camera_runs_split_each_camera_at_the_gap() -> None:
    captures = [
        at(0),
        at(2.5),
        at(9.5),  # 7 s after the previous frame: under the gap, not 4x the cadence (2.5 s)
        at(30),  # 20.5 s: a new moment
        at(0.2, "canon|r6|2"),  # another body at the same second: its own moment
        Capture(None, "canon|r6|1"),  # no capture time
        at(0.4, None),  # a time but no camera: one more camera
    ]

    runs = camera_runs([c.shot_at for c in captures], [c.camera for c in captures], 10.0)

    assert sorted(sorted(run.tolist()) for run in runs) == [[0, 1, 2], [3], [4], [5], [6]]


def test_a_pause_well_above_the_cadence_starts_a_new_moment() -> None:
    # Frames 0.1 s apart, a 5 s pause (under the 10 s gap), frames 0.1 s apart again.
    burst = np.array([0.0, 0.1, 0.2, 0.3, 5.3, 5.4, 5.5])
    assert cadence_cuts(burst, 10.0).tolist() == [False, False, False, True, False, False]
    # Hand-clicked frames 2-3 s apart keep their 5 s pause: not well above their cadence.
    clicked = np.array([0.0, 2.0, 5.0, 10.0, 12.5])
    assert not cadence_cuts(clicked, 10.0).any()
    # The fixed gap is the user's override either way.
    assert cadence_cuts(clicked, 2.2).tolist() == [False, True, True, True]
    # The cadence is the run's own: frames 0.16 s apart, then 0.68 s (a moment later, the
    # street's suit and taxi) is a new moment, with no bar of seconds above the floor.
    video = np.array([0.0, 0.16, 0.32, 0.48, 1.16, 1.32, 1.48])
    assert cadence_cuts(video, 10.0).tolist() == [False, False, False, True, False, False]
    # A pause under the floor never cuts (frames 0.04 s apart, one dropped: 0.12 s).
    fast = np.array([0.0, 0.04, 0.08, 0.2, 0.24, 0.28])
    assert not cadence_cuts(fast, 10.0).any()


def frames_with_cosines(gram: list[list[float]]) -> NDArray[np.float64]:
    """Unit rows whose pairwise cosines are `gram`."""
    return np.linalg.cholesky(np.array(gram))


def test_frames_either_side_of_one_that_breaks_the_sequence_still_link() -> None:
    # The street's cyclist (bench/real_shoots.py): a van passes in front of him, so the frame
    # with the van is unlike the next one (0.73 against the run's 0.84), while the frames on
    # either side of it are alike (0.78): one moment, not two.
    rules = replace(DEFAULT_RULES, level_drop=0.10)
    gram = [
        [1.0, 0.84, 0.76, 0.79, 0.75],
        [0.84, 1.0, 0.81, 0.78, 0.76],
        [0.76, 0.81, 1.0, 0.73, 0.72],
        [0.79, 0.78, 0.73, 1.0, 0.84],
        [0.75, 0.76, 0.72, 0.84, 1.0],
    ]
    parts, _, _ = link_run(frames_with_cosines(gram), rules)
    assert parts.tolist() == [0, 0, 0, 0, 0]
    # Where the frames either side are not alike either (0.70), the cut stands.
    gram[1][3] = gram[3][1] = 0.70
    gram[0][3] = gram[3][0] = 0.70
    parts, _, _ = link_run(frames_with_cosines(gram), rules)
    assert parts.tolist() == [0, 0, 0, 1, 1]


def test_camera_key_uses_make_model_and_serial() -> None:
    assert camera_key("Canon", "Canon EOS R6", "1") != camera_key("Canon", "Canon EOS R6", "2")
    assert camera_key(" canon", "Canon EOS R6 ", None) == camera_key("Canon", "canon eos r6", "")
    assert camera_key(None, None, None) is None


def test_identical_frames_of_two_moments_are_two_groups() -> None:
    x = np.tile(unit(np.arange(1.0, DIM + 1.0)), (6, 1))
    captures = [at(0), at(0.2), at(0.4), at(300), at(300.2), at(300.4)]

    result = ImageGrouper(min_cluster_size=3, min_samples=3).fit_labels(x, captures, 10.0)

    assert result.labels[:3] == ["Group 1"] * 3
    assert result.labels[3:] == ["Group 2"] * 3
    # Without capture time they are one scene.
    assert ImageGrouper(3, 3).fit_labels(x).labels == ["Group 1"] * 6


def test_a_moment_is_one_group_however_hdbscan_cuts_it() -> None:
    # Two bursts shot apart in time: at 2/1 HDBSCAN would pair frames inside each burst.
    x, truth = blobs([6, 6], spread=0.3, seed=4)
    captures = [at(0.3 * k) for k in range(6)] + [at(200 + 0.3 * k) for k in range(6)]

    result = ImageGrouper(min_cluster_size=2, min_samples=1).fit_labels(x, captures, 10.0)

    assert groups_of(result, truth) == {0: {"Group 1"}, 1: {"Group 2"}}


def test_the_fallback_never_groups_unrelated_rows() -> None:
    # min_cluster_size = the batch size: HDBSCAN finds nothing, and the fallback would make
    # one group of six unrelated images.
    x = unit(np.random.default_rng(3).normal(size=(6, DIM))).astype(np.float32)

    result = ImageGrouper(min_cluster_size=6, min_samples=6).fit_labels(x)

    assert result.used_single_cluster_fallback
    assert result.labels == [UNGROUPED] * 6


def test_an_outsider_linked_to_a_burst_is_ungrouped() -> None:
    rng = np.random.default_rng(5)
    centre = unit(rng.normal(size=DIM))
    frames = unit(centre + 0.02 * unit(rng.normal(size=(5, DIM))))
    away = unit(rng.normal(size=DIM))
    away = unit(away - (away @ centre) * centre)
    outsider = 0.8 * centre + 0.6 * away  # cosine 0.8 with the burst, which is ~0.9998 inside
    x = np.vstack([frames, outsider]).astype(np.float32)

    result = ImageGrouper(min_cluster_size=5, min_samples=5).fit_labels(x)

    assert result.labels == ["Group 1"] * 5 + [UNGROUPED]
