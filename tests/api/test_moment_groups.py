"""Moments through the HTTP API on real frames (tests/data/real_card) with the offline encoder:
time and camera only cut, the shooter's cadence ends a burst, and each group says how sure it
is."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.helpers import new_batch, upload
from tests.api.test_real_card import BODY_B, shot

pytestmark = pytest.mark.slow

PLAZA_A = ["vtest-150", "vtest-152", "vtest-154"]  # a fixed camera on a plaza
PLAZA_B = ["vtest-480", "vtest-482", "vtest-484"]  # the same plaza, other people in it
TREE_A = ["tree-030", "tree-036", "tree-042"]
TREE_B = ["tree-400", "tree-405", "tree-410"]  # the same tree, a hand comes in


def analyze(client: TestClient, shots: dict[str, bytes], **body: Any) -> dict[str, Any]:
    """Upload the shots (in this order) as one batch and analyze it; the batch page, with
    `labels` by name added."""
    names = list(shots)
    ids = upload(client, [(f"{name}.jpg", shots[name]) for name in names])
    response = client.put(f"/batches/{new_batch(client, ids)}/analyze", json=body)
    assert response.status_code == 200, response.text
    page = response.json()
    by_id = {a["image"]["id"]: a["group_label"] for a in page["image_associations"]}
    page["labels"] = {name: by_id[i] for name, i in zip(names, ids, strict=True)}
    page["ids"] = dict(zip(names, ids, strict=True))
    return page


def together(labels: dict[str, str]) -> set[frozenset[str]]:
    """The pairs of names put in one group."""
    return {
        frozenset((a, b))
        for a, b in itertools.combinations(labels, 2)
        if labels[a] == labels[b] != "Ungrouped"
    }


def precision(pairs: set[frozenset[str]], moments: list[list[str]]) -> float:
    true = {frozenset(p) for m in moments for p in itertools.combinations(m, 2)}
    return len(pairs & true) / len(pairs) if pairs else 1.0


def test_two_moments_of_one_fixed_camera_seconds_apart_are_two_groups(
    offline_client: TestClient,
) -> None:
    # Frames 0.2 s apart, a 5 s pause, frames 0.2 s apart again: under the 10 s gap, but the
    # shutter was released. The two moments look alike (the same plaza from the same window).
    shots = {name: shot(name, 0.2 * k) for k, name in enumerate(PLAZA_A)}
    shots |= {name: shot(name, 5.0 + 0.2 * k) for k, name in enumerate(PLAZA_B)}

    for body in ({}, {"min_cluster_size": 3, "min_samples": 3}):
        labels = analyze(offline_client, shots, **body)["labels"]
        assert len({labels[n] for n in PLAZA_A}) == 1
        assert len({labels[n] for n in PLAZA_B}) == 1
        assert labels[PLAZA_A[0]] != labels[PLAZA_B[0]]
        assert "Ungrouped" not in labels.values()

    # With the fixed gap turned down past the pause, the user's override still cuts it; with
    # a gap that spans both and no cadence (one frame each) looks alone decide.
    wide = analyze(offline_client, shots, time_gap_seconds=60)["labels"]
    assert wide[PLAZA_A[0]] != wide[PLAZA_B[0]]


def test_the_exif_card_is_at_least_as_precise_as_its_stripped_copy(
    offline_client: TestClient,
) -> None:
    moments = [PLAZA_A, PLAZA_B, TREE_A, TREE_B]
    # Two bodies: the plaza's second moment by another camera at the same seconds; the tree's
    # moments hand-clicked 2 s apart (no pause above the cadence: looks must cut them).
    timed = {name: shot(name, 0.2 * k) for k, name in enumerate(PLAZA_A)}
    timed |= {name: shot(name, 0.1 + 0.2 * k, BODY_B) for k, name in enumerate(PLAZA_B)}
    timed |= {name: shot(name, 60.0 + 2.0 * k) for k, name in enumerate(TREE_A + TREE_B)}
    timed["apple"] = shot("apple", 300.0)
    stripped = {name: shot(name) for name in timed}

    with_exif = together(analyze(offline_client, timed)["labels"])
    without = together(analyze(offline_client, stripped)["labels"])

    assert precision(with_exif, moments) >= precision(without, moments)
    assert precision(with_exif, moments) == 1.0
    assert with_exif  # not precise by grouping nothing


def test_larger_parameters_never_merge_more_than_2_1(offline_client: TestClient) -> None:
    moments = [PLAZA_A, PLAZA_B, TREE_A, TREE_B]
    for timed in (True, False):
        shots = {
            name: shot(name, 30.0 * m + 0.3 * k if timed else None)
            for m, moment in enumerate(moments)
            for k, name in enumerate(moment)
        }
        shots["apple"] = shot("apple", 600.0 if timed else None)
        finest = together(analyze(offline_client, shots)["labels"])
        for mcs, ms in ((3, 3), (5, 5)):
            coarse = together(
                analyze(offline_client, shots, min_cluster_size=mcs, min_samples=ms)["labels"]
            )
            assert coarse <= finest, (timed, mcs, ms)


def test_each_group_says_how_sure_it_is(offline_client: TestClient) -> None:
    shots = {name: shot(name, 0.2 * k) for k, name in enumerate(PLAZA_A)}
    shots |= {name: shot(name, 60.0 + 0.4 * k) for k, name in enumerate(TREE_A)}
    shots["apple"] = shot("apple", 300.0)

    page = analyze(offline_client, shots)

    groups = {g["label"]: g for g in page["groups"]}
    labels = page["labels"]
    assert set(groups) == {labels[PLAZA_A[0]], labels[TREE_A[0]]}
    for group in groups.values():
        assert group["size"] == 3
        assert 0.5 < group["cohesion"] <= 1.0
        assert group["may_hold_moments"] is (group["split_before_image_id"] is not None)
    assert page["parameters"]["group_notes"]

    # A manual regrouping drops the notes: they described the analysis's groups.
    batch_id = page["id"]
    group_map = {"Mine": list(page["ids"].values())}
    response = offline_client.put(f"/batches/{batch_id}/groups", json={"group_map": group_map})
    assert response.status_code == 200, response.text
    regrouped = offline_client.get(f"/batches/{batch_id}").json()
    assert regrouped["groups"] == [
        {
            "label": "Mine",
            "size": 7,
            "cohesion": None,
            "may_hold_moments": False,
            "split_before_image_id": None,
        }
    ]
