"""A 5-frame exposure bracket through the HTTP API: real frames, real EXIF, one `bracket`
group whose frames are all keepers, in the page and in every export."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi.testclient import TestClient
from PIL import Image, ImageEnhance

from tests.api.helpers import new_batch, upload
from tests.factories import build_exif, encode, rational, real_photo

START = datetime(2024, 5, 1, 10, 0, 0)
MAKE, MODEL = 0x010F, 0x0110
DATE_TIME_ORIGINAL, EXPOSURE_BIAS, EXPOSURE_MODE = 0x9003, 0x9204, 0xA402


def shot(photo: Image.Image, bias: float, at: datetime, mode: int = 1) -> bytes:
    """The photo exposed `bias` EV off, with the EXIF a camera writes."""
    frame = ImageEnhance.Brightness(photo).enhance(2.0 ** (bias / 2))
    exif = build_exif(
        {MAKE: "Canon", MODEL: "Canon EOS R6"},
        {
            DATE_TIME_ORIGINAL: at.strftime("%Y:%m:%d %H:%M:%S"),
            EXPOSURE_BIAS: rational((round(bias * 3), 3)),
            EXPOSURE_MODE: mode,
        },
    )
    return encode(frame, "JPEG", exif, quality=90)


def test_a_five_frame_bracket_is_one_bracket_group_of_five_keepers(client: TestClient) -> None:
    photo = real_photo("coffee.png").resize((320, 214))
    biases = [-2, -1, 0, 1, 2]
    bracket = upload(
        client,
        [
            (f"HDR_{k}.jpg", shot(photo, bias, START + timedelta(seconds=k)))
            for k, bias in enumerate(biases)
        ],
    )
    # A burst of another scene a minute later, one compensation throughout: stays a burst.
    other = real_photo("chelsea.png").resize((320, 214))
    later = START + timedelta(minutes=1)
    burst = upload(
        client,
        [
            (f"BURST_{k}.jpg", shot(other.rotate(k, expand=False), 0, later + timedelta(seconds=k)))
            for k in range(3)
        ],
    )
    metadata = client.get(f"/images/metadata/{bracket[0]}").json()
    assert (metadata["exposure_bias"], metadata["exposure_mode"]) == (-2.0, 1)
    batch_id = new_batch(client, [*bracket, *burst])

    response = client.put(
        f"/batches/{batch_id}/analyze", json={"min_cluster_size": 2, "min_samples": 1}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    members = {a["image"]["id"]: a for a in body["image_associations"]}
    labels = {members[i]["group_label"] for i in bracket}
    assert len(labels) == 1
    assert {members[i]["group_kind"] for i in bracket} == {"bracket"}
    assert all(members[i]["is_keeper"] and members[i]["quality_rank"] == 1 for i in bracket)
    assert all(members[i]["rank_reason"] is None for i in bracket)
    assert not {members[i]["group_label"] for i in burst} & labels
    assert body["parameters"]["brackets"] == 1

    # Every export says the same: five keepers, none of them a 2-star Red alternate.
    rows = client.get(f"/batches/{batch_id}/export", params={"format": "json"}).json()
    exported = {row["image_id"]: row for row in rows}
    assert all(exported[i]["is_keeper"] for i in bracket)
    assert {exported[i]["group_kind"] for i in bracket} == {"bracket"}

    # Re-ranking the group keeps it whole.
    (label,) = labels
    ranked = client.post(f"/batches/{batch_id}/groups/{label}/rank").json()
    again = {a["image"]["id"]: a for a in ranked["image_associations"]}
    assert all(again[i]["is_keeper"] and again[i]["group_kind"] == "bracket" for i in bracket)


def test_a_bracket_grouped_by_hand_is_kept_whole(client: TestClient) -> None:
    photo = real_photo("astronaut.png").resize((256, 256))
    ids = upload(
        client,
        [
            (f"AEB_{k}.jpg", shot(photo, bias, START + timedelta(seconds=k), mode=2))
            for k, bias in enumerate([0, -1, 1])
        ],
    )
    batch_id = new_batch(client, ids)
    response = client.put(f"/batches/{batch_id}/groups", json={"group_map": {"HDR": ids}})
    members = response.json()["image_associations"]
    assert {a["group_kind"] for a in members} == {"bracket"}
    assert all(a["is_keeper"] for a in members)
