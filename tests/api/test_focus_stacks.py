"""A focus stack through the HTTP API: frames of one framing whose sharp region moves, one
camera, one exposure; one `focus_stack` group whose frames are all keepers, beside a burst."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi.testclient import TestClient
from PIL import Image

from tests.api.helpers import new_batch, upload
from tests.factories import build_exif, encode, focus_stack, real_photo, shaken

START = datetime(2024, 5, 1, 10, 0, 0)
MAKE, MODEL, DATE_TIME_ORIGINAL = 0x010F, 0x0110, 0x9003


def shot(frame: Image.Image, at: datetime) -> bytes:
    exif = build_exif(
        {MAKE: "OM Digital Solutions", MODEL: "OM-1"},
        {DATE_TIME_ORIGINAL: at.strftime("%Y:%m:%d %H:%M:%S")},
    )
    return encode(frame, "JPEG", exif, quality=92)


def test_a_focus_stack_is_one_group_of_keepers_and_a_burst_stays_a_burst(
    client: TestClient,
) -> None:
    stack = upload(
        client,
        [
            (f"STACK_{k}.jpg", shot(frame, START + timedelta(seconds=k)))
            for k, frame in enumerate(focus_stack(real_photo("coffee.png"), 5))
        ],
    )
    # A burst of another scene a minute later: one steady frame, one shaken, one soft.
    cat = real_photo("chelsea.png")
    later = START + timedelta(minutes=1)
    burst = upload(
        client,
        [
            (f"BURST_{k}.jpg", shot(frame, later + timedelta(seconds=k)))
            for k, frame in enumerate([cat, shaken(cat), cat.resize((225, 150)).resize(cat.size)])
        ],
    )
    batch_id = new_batch(client, [*stack, *burst])

    response = client.put(
        f"/batches/{batch_id}/analyze", json={"min_cluster_size": 2, "min_samples": 1}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    members = {a["image"]["id"]: a for a in body["image_associations"]}
    labels = {members[i]["group_label"] for i in stack}
    assert len(labels) == 1
    assert {members[i]["group_kind"] for i in stack} == {"focus_stack"}
    assert all(members[i]["is_keeper"] and members[i]["quality_rank"] == 1 for i in stack)
    assert body["parameters"]["focus_stacks"] == 1
    assert {members[i]["group_kind"] for i in burst} == {"burst"}
    assert sorted(members[i]["quality_rank"] for i in burst) == [1, 2, 3]
    assert members[burst[0]]["quality_rank"] == 1

    rows = client.get(f"/batches/{batch_id}/export", params={"format": "json"}).json()
    exported = {row["image_id"]: row for row in rows}
    assert all(exported[i]["is_keeper"] for i in stack)
    assert {exported[i]["group_kind"] for i in stack} == {"focus_stack"}

    # Re-ranking the group keeps it whole; a cull to one image takes the whole stack.
    (label,) = labels
    ranked = client.post(f"/batches/{batch_id}/groups/{label}/rank").json()
    again = {a["image"]["id"]: a for a in ranked["image_associations"]}
    assert all(again[i]["is_keeper"] and again[i]["group_kind"] == "focus_stack" for i in stack)
    response = client.post(
        f"/batches/{batch_id}/cull", json={"count": 1, "at_least_one_per_group": True}
    )
    assert response.status_code == 200, response.text
    assert set(stack) <= set(response.json()["selected"])


def test_a_focus_stack_grouped_by_hand_is_kept_whole(client: TestClient) -> None:
    frames = focus_stack(real_photo("chelsea.png"), 5, across=True)
    ids = upload(
        client,
        [
            (f"FS_{k}.jpg", shot(frame, START + timedelta(seconds=k)))
            for k, frame in enumerate(frames)
        ],
    )
    batch_id = new_batch(client, ids)
    response = client.put(f"/batches/{batch_id}/groups", json={"group_map": {"Stack": ids}})
    assert response.status_code == 200, response.text
    members = response.json()["image_associations"]
    assert {a["group_kind"] for a in members} == {"focus_stack"}
    assert all(a["is_keeper"] for a in members)
