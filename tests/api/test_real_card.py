"""Grouping a small real card through the HTTP API with the offline encoder.

The card (tests/data/real_card, see SOURCES.md) is frames of real videos and a real photo; each
test writes the capture times and cameras of its scenario into the files' EXIF."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.api.helpers import new_batch, upload

CARD = Path(__file__).parent.parent / "data" / "real_card"
START = datetime(2026, 6, 13, 14, 0, 0, tzinfo=timezone(timedelta(hours=2)))
BODY_A = ("Canon", "Canon EOS R6", "032021001234")
BODY_B = ("Canon", "Canon EOS R6", "032021005678")  # a second body of the same model

pytestmark = pytest.mark.slow


def shot(
    name: str,
    at: float | None = None,
    camera: tuple[str, str, str] = BODY_A,
    *,
    untimed_camera: bool = False,
) -> bytes:
    """The card's file `name` as a camera JPEG: taken `at` seconds after START by `camera`;
    at=None: no EXIF at all (an exported or downloaded file), or with untimed_camera the
    camera's EXIF without a capture time."""
    with Image.open(CARD / f"{name}.jpg") as image:
        image.load()
    out = io.BytesIO()
    if at is None and not untimed_camera:
        image.save(out, "JPEG", quality=90)
        return out.getvalue()
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = camera[0], camera[1]  # Make, Model
    sub = exif.get_ifd(0x8769)
    sub[0xA431] = camera[2]  # BodySerialNumber
    if at is None:
        image.save(out, "JPEG", quality=90, exif=exif.tobytes())
        return out.getvalue()
    moment = START + timedelta(seconds=at)
    sub[0x9003] = moment.strftime("%Y:%m:%d %H:%M:%S")  # DateTimeOriginal
    sub[0x9291] = f"{moment.microsecond // 1000:03d}"  # SubSecTimeOriginal
    sub[0x9011] = "+02:00"  # OffsetTimeOriginal
    image.save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def analyze(
    client: TestClient, shots: dict[str, bytes], **body: Any
) -> tuple[dict[str, str], dict[str, Any]]:
    """Upload the shots as one batch, analyze it; each name's group label, and the parameters."""
    names = list(shots)
    ids = upload(client, [(f"{name}.jpg", shots[name]) for name in names])
    response = client.put(f"/batches/{new_batch(client, ids)}/analyze", json=body)
    assert response.status_code == 200, response.text
    labels = {a["image"]["id"]: a["group_label"] for a in response.json()["image_associations"]}
    return dict(zip(names, (labels[i] for i in ids), strict=True)), response.json()["parameters"]


def test_a_two_frame_burst_is_one_group_at_2_1(offline_client: TestClient) -> None:
    labels, _ = analyze(
        offline_client,
        {
            "vtest-020": shot("vtest-020", 0.0),
            "vtest-022": shot("vtest-022", 0.2),
            "apple": shot("apple", 300.0),
            "tree-030": shot("tree-030", 600.0),
        },
        min_cluster_size=2,
        min_samples=1,
    )
    assert labels["vtest-020"] == labels["vtest-022"] == "Group 1"
    assert labels["apple"] == labels["tree-030"] == "Ungrouped"


def test_two_moments_of_one_place_minutes_apart_are_two_groups(offline_client: TestClient) -> None:
    first, later = ["tree-030", "tree-036", "tree-042"], ["tree-400", "tree-405", "tree-410"]
    shots = {name: shot(name, 0.4 * k) for k, name in enumerate(first)}
    shots |= {name: shot(name, 180.0 + 0.4 * k) for k, name in enumerate(later)}

    for body in ({}, {"min_cluster_size": 3, "min_samples": 3}):
        labels, _ = analyze(offline_client, shots, **body)
        assert {labels[n] for n in first} == {"Group 1"} or {labels[n] for n in first} == {
            "Group 2"
        }
        assert len({labels[n] for n in later}) == 1
        assert {labels[n] for n in first} | {labels[n] for n in later} == {"Group 1", "Group 2"}


def test_two_cameras_at_the_same_second_are_not_merged(offline_client: TestClient) -> None:
    # Two bodies of one model, a tenth of a second apart, on two moments of the same plaza:
    # one timeline would interleave them into one moment.
    a, b = ["vtest-020", "vtest-022"], ["vtest-480", "vtest-482", "vtest-484"]
    shots = {name: shot(name, 0.2 * k) for k, name in enumerate(a)}
    shots |= {name: shot(name, 0.1 + 0.2 * k, BODY_B) for k, name in enumerate(b)}

    labels, _ = analyze(offline_client, shots, min_cluster_size=2, min_samples=1)

    assert len({labels[n] for n in a}) == 1
    assert len({labels[n] for n in b}) == 1
    assert labels[a[0]] != labels[b[0]]
    assert "Ungrouped" not in labels.values()


def test_an_outsider_is_ungrouped(offline_client: TestClient) -> None:
    # No capture times: HDBSCAN finds no cluster among 4 images at 3/3, and its single-cluster
    # fallback would take all four, the apple included.
    burst = ["vtest-150", "vtest-152", "vtest-154"]
    shots = {name: shot(name) for name in [*burst, "apple"]}

    labels, parameters = analyze(offline_client, shots, min_cluster_size=3, min_samples=3)

    assert {labels[n] for n in burst} == {"Group 1"}
    assert labels["apple"] == "Ungrouped"
    assert parameters["single_cluster_fallback"] is True


def test_the_time_gap_can_be_turned_off(offline_client: TestClient) -> None:
    # Two frames of one moment of the plaza whose EXIF says two minutes apart.
    shots = {"vtest-020": shot("vtest-020", 0.0), "vtest-022": shot("vtest-022", 120.0)}
    shots["apple"] = shot("apple", 600.0)

    by_time, parameters = analyze(offline_client, shots)
    assert parameters["time_gap_seconds"] == 10
    assert set(by_time.values()) == {"Ungrouped"}

    by_looks, parameters = analyze(offline_client, shots, use_capture_time=False)
    assert parameters["time_gap_seconds"] is None
    assert parameters["use_capture_time"] is False
    assert by_looks["vtest-020"] == by_looks["vtest-022"] == "Group 1"
    assert by_looks["apple"] == "Ungrouped"

    wide, parameters = analyze(offline_client, shots, time_gap_seconds=300)
    assert parameters["time_gap_seconds"] == 300
    assert wide["vtest-020"] == wide["vtest-022"] == "Group 1"


def test_images_without_exif_still_group(offline_client: TestClient) -> None:
    burst = ["vtest-150", "vtest-152", "vtest-154"]
    shots = {name: shot(name) for name in burst}
    shots |= {"tree-030": shot("tree-030", 0.0), "apple": shot("apple")}

    labels, _ = analyze(offline_client, shots)

    assert {labels[n] for n in burst} == {"Group 1"}
    assert labels["tree-030"] == labels["apple"] == "Ungrouped"


@pytest.mark.parametrize(
    "body",
    [{"min_cluster_size": 2, "min_samples": 1}, {"min_cluster_size": 3, "min_samples": 3}],
)
def test_moments_of_one_fixed_camera_without_exif_are_not_merged(
    offline_client: TestClient, body: dict[str, int]
) -> None:
    # No capture times: only looks can keep two moments of the plaza (other people in it) and
    # of the tree (a hand came in) apart; at 3/3 HDBSCAN alone puts each place in one group.
    moments = [
        ["vtest-150", "vtest-152", "vtest-154"],
        ["vtest-480", "vtest-482", "vtest-484"],
        ["tree-030", "tree-036", "tree-042"],
        ["tree-400", "tree-405", "tree-410"],
    ]
    shots = {name: shot(name) for moment in moments for name in moment}
    shots["apple"] = shot("apple")

    labels, _ = analyze(offline_client, shots, **body)

    groups = [{labels[name] for name in moment} for moment in moments]
    assert all(len(group) == 1 and "Ungrouped" not in group for group in groups), groups
    assert len(set.union(*groups)) == len(moments)
    assert labels["apple"] == "Ungrouped"


def test_two_cameras_without_capture_times_are_not_merged(offline_client: TestClient) -> None:
    # The tree from a fixed place: two bodies without clocks. By looks alone the three frames are
    # one burst (the control below); the second body's frame is another photographer's.
    a, b = ["tree-030", "tree-042"], "tree-036"
    untimed = {name: shot(name, camera=BODY_A, untimed_camera=True) for name in a}
    untimed[b] = shot(b, camera=BODY_B, untimed_camera=True)

    labels, _ = analyze(offline_client, untimed)
    assert labels[a[0]] == labels[a[1]] == "Group 1"
    assert labels[b] == "Ungrouped"

    without_exif, _ = analyze(offline_client, {name: shot(name) for name in [*a, b]})
    assert set(without_exif.values()) == {"Group 1"}
