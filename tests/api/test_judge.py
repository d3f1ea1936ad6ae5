"""The judge: similar images and export (quality and keepers are in test_analysis)."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from PIL import ImageEnhance, ImageFilter
from sqlalchemy import update
from sqlalchemy.orm import Session

from database.models import Image
from tests.api.helpers import new_batch, upload
from tests.factories import REAL_PHOTOS, build_exif, burst, encode, jpeg_bytes, real_photo


@pytest.mark.slow
def test_nearest_neighbour_is_a_burst_mate(offline_client: TestClient) -> None:
    bursts = {
        name: upload(
            offline_client,
            [(f"{name}{k}", f) for k, f in enumerate(burst(real_photo(name), 3, seed=i))],
        )
        for i, name in enumerate(REAL_PHOTOS[:4])
    }
    for name, ids in bursts.items():
        response = offline_client.get(f"/images/{ids[0]}/similar", params={"limit": 2})
        assert response.status_code == 200, response.text
        found = response.json()
        assert {f["image"]["id"] for f in found} == set(ids[1:]), name
        similarities = [f["similarity"] for f in found]
        assert similarities == sorted(similarities, reverse=True)
        assert all(-1.0 <= s <= 1.0001 for s in similarities)


def test_similar_limit_and_batch_filter(client: TestClient) -> None:
    ids = upload(client, [(f"{i}.jpg", jpeg_bytes(seed=i)) for i in range(6)])
    batch_id = new_batch(client, ids[:3])

    everywhere = client.get(f"/images/{ids[0]}/similar", params={"limit": 3}).json()
    assert len(everywhere) == 3
    assert ids[0] not in [f["image"]["id"] for f in everywhere]

    within = client.get(f"/images/{ids[0]}/similar", params={"batch_id": batch_id}).json()
    assert sorted(f["image"]["id"] for f in within) == ids[1:3]


def test_similar_error_paths(client: TestClient, db: Session) -> None:
    ids = upload(client, [(f"{i}.jpg", jpeg_bytes(seed=10 + i)) for i in range(2)])
    assert client.get("/images/999999/similar").status_code == 404
    assert client.get(f"/images/{ids[0]}/similar", params={"batch_id": 999999}).status_code == 404
    assert client.get(f"/images/{ids[0]}/similar", params={"limit": 0}).status_code == 422

    db.execute(update(Image).where(Image.id == ids[0]).values(features=None, embedding_model=None))
    db.commit()
    response = client.get(f"/images/{ids[0]}/similar")
    assert response.status_code == 409
    assert "no embedding" in response.json()["detail"]


def test_export_csv_matches_the_batch(client: TestClient) -> None:
    ids = upload(client, [(f"=cmd{i}.jpg", jpeg_bytes(seed=20 + i)) for i in range(3)])
    batch_id = new_batch(client, ids)
    client.put(f"/batches/{batch_id}/groups", json={"group_map": {"A": ids[:2], "B": ids[2:]}})
    batch = client.get(f"/batches/{batch_id}").json()

    response = client.get(f"/batches/{batch_id}/export", params={"format": "csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert f"batch-{batch_id}.csv" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))

    assert [int(r["image_id"]) for r in rows] == [
        a["image"]["id"] for a in batch["image_associations"]
    ]
    assert [r["group_label"] for r in rows] == [
        a["group_label"] for a in batch["image_associations"]
    ]
    assert [r["is_keeper"] for r in rows].count("true") == 2
    assert {r["is_keeper"] for r in rows} == {"true", "false"}
    # A name that a spreadsheet would run as a formula is defused.
    assert all(r["original_filename"].startswith("'=cmd") for r in rows)


def test_every_export_says_keeper_alike(client: TestClient) -> None:
    """Keeper = rank 1 of a group: an Ungrouped image (rank 1 too) is no keeper in CSV, JSON
    or XMP."""
    ids = upload(client, [(f"k{i}.jpg", jpeg_bytes(seed=60 + i)) for i in range(4)])
    batch_id = new_batch(client, ids)
    group_map = {"A": ids[:2], "Ungrouped": ids[2:]}
    client.put(f"/batches/{batch_id}/groups", json={"group_map": group_map})
    export = f"/batches/{batch_id}/export"

    rows = client.get(export, params={"format": "json"}).json()
    assert {r["image_id"]: r["quality_rank"] for r in rows if r["group_label"] == "Ungrouped"} == {
        ids[2]: 1,
        ids[3]: 1,
    }
    keepers = [r["image_id"] for r in rows if r["is_keeper"]]
    assert len(keepers) == 1
    assert keepers[0] in ids[:2]
    csv_rows = list(csv.DictReader(io.StringIO(client.get(export).text)))
    assert [int(r["image_id"]) for r in csv_rows if r["is_keeper"] == "true"] == keepers
    with zipfile.ZipFile(io.BytesIO(client.get(export, params={"format": "xmp"}).content)) as z:
        marked = [name for name in z.namelist() if b">Keeper<" in z.read(name)]
    assert len(marked) == 1


def test_export_json_and_errors(client: TestClient) -> None:
    ids = upload(client, [("a.jpg", jpeg_bytes(seed=30))])
    batch_id = new_batch(client, ids)

    rows = client.get(f"/batches/{batch_id}/export", params={"format": "json"}).json()
    assert rows[0]["image_id"] == ids[0]
    assert rows[0]["original_filename"] == "a.jpg"
    assert client.get(f"/batches/{batch_id}/export", params={"format": "xml"}).status_code == 422
    assert client.get("/batches/999999/export").status_code == 404


def test_export_writes_capture_time_as_the_api_does(client: TestClient) -> None:
    with_offset = build_exif(exif_ifd={0x9003: "2024:05:01 10:20:30", 0x9011: "-03:30"})
    without = build_exif(exif_ifd={0x9003: "2024:05:01 11:00:00"})
    ids = upload(
        client,
        [
            ("offset.jpg", jpeg_bytes(seed=31, exif=with_offset)),
            ("plain.jpg", jpeg_bytes(seed=32, exif=without)),
        ],
    )
    batch_id = new_batch(client, ids)
    api = [client.get(f"/images/metadata/{i}").json() for i in ids]
    as_json = client.get(f"/batches/{batch_id}/export", params={"format": "json"}).json()
    csv_text = client.get(f"/batches/{batch_id}/export", params={"format": "csv"}).text
    as_csv = list(csv.DictReader(io.StringIO(csv_text)))

    expected = {
        ids[0]: ("2024-05-01T10:20:30-03:30", "2024-05-01T10:20:30", "-03:30"),
        ids[1]: ("2024-05-01T11:00:00Z", "2024-05-01T11:00:00", None),
    }
    for meta, image_id in zip(api, ids, strict=True):
        fields = (meta["shot_at"], meta["shot_at_local"], meta["shot_at_offset"])
        assert fields == expected[image_id]
    for row in as_json:
        fields = (row["shot_at"], row["shot_at_local"], row["shot_at_offset"])
        assert fields == expected[row["image_id"]]
    for row in as_csv:
        shot_at, local, offset = expected[int(row["image_id"])]
        # "-03:30" would be run by a spreadsheet as a formula, so it is defused with a quote.
        assert (row["shot_at"], row["shot_at_local"]) == (shot_at, local)
        assert row["shot_at_offset"].lstrip("'") == (offset or "")


def test_blurred_and_overexposed_copies_rank_below_the_original(client: TestClient) -> None:
    photo = real_photo("coffee.png")
    original = encode(photo, "JPEG", quality=92)
    blurred = encode(photo.filter(ImageFilter.GaussianBlur(3)), "JPEG", quality=92)
    bright = encode(ImageEnhance.Brightness(photo).enhance(2.8), "JPEG", quality=92)
    ids = upload(
        client, [("original.jpg", original), ("blur.jpg", blurred), ("bright.jpg", bright)]
    )
    batch_id = new_batch(client, ids)

    response = client.put(f"/batches/{batch_id}/groups", json={"group_map": {"Coffee": ids}})
    ranks = {a["image"]["id"]: a["quality_rank"] for a in response.json()["image_associations"]}
    assert ranks[ids[0]] == 1
    assert {ranks[ids[1]], ranks[ids[2]]} == {2, 3}

    scores = {i["id"]: i for i in client.get("/images/").json()}
    assert scores[ids[1]]["sharpness"] < scores[ids[0]]["sharpness"]
    assert scores[ids[2]]["exposure"] < scores[ids[0]]["exposure"]
    meta = client.get(f"/images/metadata/{ids[0]}").json()
    assert meta["quality_score"] == scores[ids[0]]["quality_score"]


@pytest.mark.slow
def test_keeper_of_a_real_burst_is_a_sharp_frame(offline_client: TestClient) -> None:
    astronaut = real_photo("astronaut.png")
    sharp = upload(
        offline_client,
        [(f"s{k}.jpg", f) for k, f in enumerate(burst(astronaut, 4, seed=1, blur=(0, 0.3)))],
    )
    soft = upload(
        offline_client,
        [(f"b{k}.jpg", f) for k, f in enumerate(burst(astronaut, 3, seed=2, blur=(1.5, 2.5)))],
    )
    others = [
        upload(
            offline_client,
            [(f"{name}{k}", f) for k, f in enumerate(burst(real_photo(name), 6, seed=i))],
        )
        for i, name in enumerate(REAL_PHOTOS[1:4])
    ]
    batch_id = new_batch(offline_client, sharp + soft + [i for ids in others for i in ids])

    # 5/5: these copies carry no capture time, and at the API's 2/1 looks alone set the
    # blurred copies apart from the sharp ones.
    body = offline_client.put(
        f"/batches/{batch_id}/analyze", json={"min_cluster_size": 5, "min_samples": 5}
    ).json()
    by_id = {a["image"]["id"]: a for a in body["image_associations"]}
    group = by_id[sharp[0]]["group_label"]
    assert group.startswith("Group ")
    assert all(by_id[i]["group_label"] == group for i in sharp + soft)
    keeper = next(
        i for i, a in by_id.items() if a["group_label"] == group and a["quality_rank"] == 1
    )
    assert keeper in sharp
    assert max(by_id[i]["quality_rank"] for i in sharp) < min(
        by_id[i]["quality_rank"] for i in soft
    )


def shot_at_exif(moment: str):  # type: ignore[no-untyped-def]
    return build_exif(exif_ifd={0x9003: moment, 0x9011: "+00:00"})


@pytest.mark.slow
def test_time_gap_splits_an_hour_apart_and_keeps_a_one_second_burst(
    offline_client: TestClient,
) -> None:
    frames = burst(real_photo("chelsea.png"), 8, seed=5)
    times = [f"2024:06:01 10:00:0{k}" for k in range(4)] + [
        f"2024:06:01 11:00:0{k}" for k in range(4)
    ]
    cat = upload(
        offline_client,
        [
            (
                f"cat{k}.jpg",
                encode(PILImage.open(io.BytesIO(f)), "JPEG", shot_at_exif(t), quality=90),
            )
            for k, (f, t) in enumerate(zip(frames, times, strict=True))
        ],
    )
    coffee = upload(
        offline_client,
        [(f"c{k}.jpg", f) for k, f in enumerate(burst(real_photo("coffee.png"), 6, 9))],
    )
    batch_id = new_batch(offline_client, cat + coffee)

    plain = offline_client.put(
        f"/batches/{batch_id}/analyze",
        json={"min_cluster_size": 3, "min_samples": 3, "use_capture_time": False},
    )
    assert plain.json()["parameters"]["time_gap_seconds"] is None
    assert (
        len(
            {
                a["group_label"]
                for a in plain.json()["image_associations"]
                if a["image"]["id"] in cat
            }
        )
        == 1
    )

    # Capture time is used by default (10 s), and time_gap_seconds sets another gap.
    for extra in ({}, {"time_gap_seconds": 60}):
        split = offline_client.put(
            f"/batches/{batch_id}/analyze", json={"min_cluster_size": 3, "min_samples": 3, **extra}
        )
        assert split.status_code == 200, split.text
        body = split.json()
        assert body["parameters"]["time_gap_seconds"] == extra.get("time_gap_seconds", 10)
        labels = {a["image"]["id"]: a["group_label"] for a in body["image_associations"]}
        first, second = {labels[i] for i in cat[:4]}, {labels[i] for i in cat[4:]}
        assert len(first) == len(second) == 1
        assert first != second
        assert len({labels[i] for i in coffee}) == 1  # no capture times: grouped by looks


def test_similar_sees_images_added_and_deleted_after_a_first_query(client: TestClient) -> None:
    ids = upload(client, [(f"{i}.jpg", jpeg_bytes(seed=40 + i)) for i in range(3)])
    assert len(client.get(f"/images/{ids[0]}/similar").json()) == 2

    [added] = upload(client, [("late.jpg", jpeg_bytes(seed=49))])
    assert added in [f["image"]["id"] for f in client.get(f"/images/{ids[0]}/similar").json()]

    client.delete(f"/images/{ids[1]}")
    found = [f["image"]["id"] for f in client.get(f"/images/{ids[0]}/similar").json()]
    assert sorted(found) == sorted([ids[2], added])
