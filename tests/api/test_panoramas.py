"""Panorama sweeps and EXIF focus distance through the HTTP API, on real photos.

A sweep (overlapping frames shifted one way, one body, one exposure) is one `panorama` group
whose frames are all keepers; a burst beside it stays a burst. A focus distance written into a
real JPEG by ExifTool is read back, and frames whose focus distance steps are a focus stack
even where their looks cannot tell."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.api.helpers import new_batch, upload
from tests.factories import build_exif, encode, rational, real_photo, shaken, sweep

START = datetime(2024, 5, 1, 10, 0, 0)
MAKE, MODEL, DATE_TIME_ORIGINAL = 0x010F, 0x0110, 0x9003
EXPOSURE_TIME, F_NUMBER, FOCAL_LENGTH = 0x829A, 0x829D, 0x920A


def shot(frame: Image.Image, at: datetime, focal_length: float = 24.0) -> bytes:
    exif = build_exif(
        {MAKE: "FUJIFILM", MODEL: "X-T4"},
        {
            DATE_TIME_ORIGINAL: at.strftime("%Y:%m:%d %H:%M:%S"),
            EXPOSURE_TIME: rational((1, 250)),
            F_NUMBER: rational(8.0),
            FOCAL_LENGTH: rational(focal_length),
        },
    )
    return encode(frame, "JPEG", exif, quality=92)


def cat_burst(client: TestClient, at: datetime) -> list[int]:
    """A burst of another scene: one steady frame, one shaken, one soft."""
    cat = real_photo("chelsea.png")
    frames = [cat, shaken(cat), cat.resize((225, 150)).resize(cat.size)]
    return upload(
        client,
        [(f"BURST_{k}.jpg", shot(f, at + timedelta(seconds=k))) for k, f in enumerate(frames)],
    )


def analyze(client: TestClient, batch_id: int) -> dict[str, object]:
    response = client.put(
        f"/batches/{batch_id}/analyze", json={"min_cluster_size": 2, "min_samples": 1}
    )
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_a_sweep_is_one_panorama_group_of_keepers_and_a_burst_stays_a_burst(
    client: TestClient,
) -> None:
    frames = sweep(real_photo("coffee.png"), 4, 0.35, seed=3)
    pano = upload(
        client,
        [
            (f"PANO_{k}.jpg", shot(f, START + timedelta(seconds=2 * k)))
            for k, f in enumerate(frames)
        ],
    )
    burst = cat_burst(client, START + timedelta(minutes=1))
    batch_id = new_batch(client, [*pano, *burst])

    body = analyze(client, batch_id)
    associations = body["image_associations"]
    assert isinstance(associations, list)
    members = {a["image"]["id"]: a for a in associations}
    assert len({members[i]["group_label"] for i in pano}) == 1
    assert {members[i]["group_kind"] for i in pano} == {"panorama"}
    assert all(members[i]["is_keeper"] and members[i]["quality_rank"] == 1 for i in pano)
    assert body["parameters"]["panoramas"] == 1  # type: ignore[index]
    assert {members[i]["group_kind"] for i in burst} == {"burst"}
    assert sorted(members[i]["quality_rank"] for i in burst) == [1, 2, 3]

    rows = client.get(f"/batches/{batch_id}/export", params={"format": "json"}).json()
    exported = {row["image_id"]: row for row in rows}
    assert all(exported[i]["is_keeper"] for i in pano)
    assert {exported[i]["group_kind"] for i in pano} == {"panorama"}

    # Re-ranking the group keeps it whole.
    label = members[pano[0]]["group_label"]
    ranked = client.post(f"/batches/{batch_id}/groups/{label}/rank").json()
    again = {a["image"]["id"]: a for a in ranked["image_associations"]}
    assert all(again[i]["is_keeper"] and again[i]["group_kind"] == "panorama" for i in pano)


def test_a_sweep_zooming_between_frames_is_no_panorama(client: TestClient) -> None:
    frames = sweep(real_photo("coffee.png"), 4, 0.35, seed=3)
    ids = upload(
        client,
        [
            (f"ZOOM_{k}.jpg", shot(f, START + timedelta(seconds=2 * k), 24.0 + 10 * k))
            for k, f in enumerate(frames)
        ],
    )
    body = analyze(client, new_batch(client, ids))
    associations = body["image_associations"]
    assert isinstance(associations, list)
    assert "panorama" not in {a["group_kind"] for a in associations}
    assert body["parameters"]["panoramas"] == 0  # type: ignore[index]


def with_subject_distance(tmp_path: Path, jpeg: bytes, metres: float, name: str) -> bytes:
    """The JPEG with EXIF SubjectDistance written by ExifTool."""
    path = tmp_path / name
    path.write_bytes(jpeg)
    subprocess.run(
        ["exiftool", "-q", "-overwrite_original", f"-SubjectDistance={metres}", str(path)],
        check=True,
    )
    return path.read_bytes()


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is not installed")
def test_focus_distance_is_read_and_a_stepping_distance_is_a_focus_stack(
    client: TestClient, tmp_path: Path
) -> None:
    # Three frames of one framing that look alike (the judge cannot tell a stack from them),
    # focused at 0.5, 0.8 and 1.2 m.
    photo = real_photo("astronaut.png")
    distances = (0.5, 0.8, 1.2)
    files = [
        (
            f"FD_{k}.jpg",
            with_subject_distance(
                tmp_path, shot(photo, START + timedelta(seconds=k)), metres, f"fd{k}.jpg"
            ),
        )
        for k, metres in enumerate(distances)
    ]
    stack = upload(client, files)
    metadata = client.get(f"/images/metadata/{stack[1]}")
    assert metadata.status_code == 200, metadata.text
    assert metadata.json()["focus_distance"] == pytest.approx(0.8)

    # The same frames without a distance: a burst, as before.
    plain = upload(
        client,
        [
            (f"PLAIN_{k}.jpg", shot(photo.rotate(180), START + timedelta(minutes=5, seconds=k)))
            for k in range(3)
        ],
    )
    assert client.get(f"/images/metadata/{plain[0]}").json()["focus_distance"] is None
    body = analyze(client, new_batch(client, [*stack, *plain]))
    associations = body["image_associations"]
    assert isinstance(associations, list)
    members = {a["image"]["id"]: a for a in associations}
    assert {members[i]["group_kind"] for i in stack} == {"focus_stack"}
    assert all(members[i]["is_keeper"] for i in stack)
    assert {members[i]["group_kind"] for i in plain} == {"burst"}
