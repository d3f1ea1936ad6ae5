"""The photographer decides: picks, stars, colour labels and a chosen keeper, through the API,
on real photos; analyze and rank never overwrite them; exports say whose decision they carry."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from fastapi.testclient import TestClient

from tests.api.helpers import new_batch, upload
from tests.api.test_xmp_export import _as_list, _exiftool, needs_exiftool
from tests.factories import REAL_PHOTOS, burst, real_photo


def shoot(
    client: TestClient, photo: str = "chelsea.png", frames: int = 4, seed: int = 1
) -> list[int]:
    """A burst of real frames, uploaded."""
    shots = burst(real_photo(photo), frames=frames, seed=seed, blur=(0.0, 2.5))
    return upload(client, [(f"{photo}-{k}.jpg", data) for k, data in enumerate(shots)])


def grouped(client: TestClient, groups: dict[str, list[int]]) -> int:
    ids = [i for members in groups.values() for i in members]
    batch_id = new_batch(client, ids)
    response = client.put(f"/batches/{batch_id}/groups", json={"group_map": groups})
    assert response.status_code == 200, response.text
    return batch_id


def by_id(page: dict) -> dict[int, dict]:
    return {a["image"]["id"]: a for a in page["image_associations"]}


def page(client: TestClient, batch_id: int) -> dict[int, dict]:
    response = client.get(f"/batches/{batch_id}")
    assert response.status_code == 200, response.text
    return by_id(response.json())


def judge_order(members: dict[int, dict], label: str) -> list[int]:
    ranked = [(a["suggested_rank"], i) for i, a in members.items() if a["group_label"] == label]
    return [i for _, i in sorted(ranked)]


def test_decisions_one_or_many_are_stored_and_shown_beside_the_suggestion(
    client: TestClient,
) -> None:
    ids = shoot(client)
    batch_id = grouped(client, {"Burst": ids})
    order = judge_order(page(client, batch_id), "Burst")
    best, worst = order[0], order[-1]

    one = client.put(f"/batches/{batch_id}/decisions", json={"image_ids": [best], "pick": "reject"})
    assert one.status_code == 200, one.text
    many = client.put(
        f"/batches/{batch_id}/decisions",
        json={"image_ids": order[1:], "rating": 4, "color_label": "Blue"},
    )
    assert many.status_code == 200, many.text

    members = by_id(many.json())
    rejected = members[best]
    assert (rejected["pick"], rejected["decided_by"]) == ("reject", "user")
    assert rejected["decided_at"] is not None
    assert rejected["is_keeper"] is False
    # The judge's suggestion stays visible beside the photographer's reject.
    assert (rejected["suggested_rank"], rejected["suggested_keeper"]) == (1, True)
    # A reject goes last; the judge's next best becomes the keeper.
    assert rejected["quality_rank"] == len(ids)
    assert rejected["rank_reason"] == "user_rejected"
    assert members[order[1]]["quality_rank"] == 1
    assert members[order[1]]["is_keeper"] is True
    for image_id in order[1:]:
        decision = members[image_id]
        assert (decision["rating"], decision["color_label"], decision["pick"]) == (4, "Blue", None)
        assert decision["decided_by"] == "user"
    # A field left out stays; null clears.
    client.put(f"/batches/{batch_id}/decisions", json={"image_ids": [worst], "rating": None})
    members = page(client, batch_id)
    assert (members[worst]["rating"], members[worst]["color_label"]) == (None, "Blue")


def test_decisions_are_refused_when_wrong(client: TestClient) -> None:
    ids = shoot(client, frames=2)
    batch_id = grouped(client, {"Burst": ids})
    url = f"/batches/{batch_id}/decisions"
    assert client.put(url, json={"image_ids": ids}).status_code == 200  # nothing changes
    assert client.put(url, json={"image_ids": ids, "rating": 6}).status_code == 422
    assert client.put(url, json={"image_ids": ids, "pick": "maybe"}).status_code == 422
    assert client.put(url, json={"image_ids": ids, "color_label": "Pink"}).status_code == 422
    missing = client.put(url, json={"image_ids": [*ids, 999_999], "pick": "keep"})
    assert missing.status_code == 404
    assert missing.json()["missing_ids"] == [999_999]
    assert (
        client.put("/batches/999999/decisions", json={"image_ids": ids, "pick": "keep"}).status_code
        == 404
    )
    # Nothing was stored by the refused calls.
    assert all(a["decided_by"] is None for a in page(client, batch_id).values())


def test_chosen_keeper_leads_its_group_and_survives_rank_and_regrouping(
    client: TestClient,
) -> None:
    ids = shoot(client, frames=4)
    others = shoot(client, "coffee.png", frames=2, seed=2)
    batch_id = grouped(client, {"Burst": ids, "Cup": others})
    order = judge_order(page(client, batch_id), "Burst")
    chosen = order[-1]  # the judge's last: the photographer knows better

    response = client.put(f"/batches/{batch_id}/groups/Burst/keeper", json={"image_id": chosen})
    assert response.status_code == 200, response.text
    members = by_id(response.json())
    assert members[chosen]["quality_rank"] == 1
    assert (members[chosen]["pick"], members[chosen]["decided_by"]) == ("keep", "user")
    assert members[chosen]["is_keeper"] is True
    assert members[chosen]["suggested_keeper"] is False
    # The judge's pick moves to rank 2 and says why; the rest keep the judge's order.
    assert [members[i]["quality_rank"] for i in order] == [2, 3, 4, 1]
    assert members[order[0]]["rank_reason"] == "user_choice"
    assert members[order[0]]["suggested_keeper"] is True
    assert members[order[0]]["is_keeper"] is False
    assert sum(a["is_keeper"] for i, a in members.items() if i in ids) == 1

    # Re-ranking, then regrouping by hand, leave the photographer's keeper where it is.
    assert client.post(f"/batches/{batch_id}/groups/Burst/rank").status_code == 200
    client.put(f"/batches/{batch_id}/groups", json={"group_map": {"Burst": ids, "Cup": others}})
    members = page(client, batch_id)
    assert members[chosen]["quality_rank"] == 1
    assert members[chosen]["pick"] == "keep"

    # Choosing again moves the keeper: the first choice is no longer kept.
    again = client.put(f"/batches/{batch_id}/groups/Burst/keeper", json={"image_id": order[1]})
    members = by_id(again.json())
    assert members[order[1]]["quality_rank"] == 1
    assert members[chosen]["pick"] is None
    assert members[chosen]["decided_by"] is None
    assert sum(a["is_keeper"] for i, a in members.items() if i in ids) == 1


def test_keeper_choice_is_refused_outside_its_group(client: TestClient) -> None:
    ids = shoot(client, frames=2)
    others = shoot(client, "coffee.png", frames=2, seed=2)
    batch_id = grouped(client, {"Burst": ids, "Cup": others})
    url = f"/batches/{batch_id}/groups/Burst/keeper"
    assert client.put(url, json={"image_id": others[0]}).status_code == 404
    nowhere = f"/batches/{batch_id}/groups/Nowhere/keeper"
    assert client.put(nowhere, json={"image_id": ids[0]}).status_code == 404


def test_user_decisions_survive_analyze(client: TestClient) -> None:
    ids = shoot(client, frames=3)
    batch_id = new_batch(client, ids)
    client.put(f"/batches/{batch_id}/decisions", json={"image_ids": ids[:1], "pick": "reject"})
    client.put(f"/batches/{batch_id}/decisions", json={"image_ids": ids[1:2], "rating": 5})

    response = client.put(
        f"/batches/{batch_id}/analyze", json={"min_cluster_size": 2, "min_samples": 1}
    )
    assert response.status_code == 200, response.text
    members = by_id(response.json())
    assert (members[ids[0]]["pick"], members[ids[0]]["decided_by"]) == ("reject", "user")
    assert members[ids[0]]["is_keeper"] is False
    assert (members[ids[1]]["rating"], members[ids[1]]["decided_by"]) == (5, "user")


def test_clearing_decisions_gives_the_judge_back_its_order(client: TestClient) -> None:
    ids = shoot(client, frames=3)
    batch_id = grouped(client, {"Burst": ids})
    order = judge_order(page(client, batch_id), "Burst")
    client.put(f"/batches/{batch_id}/groups/Burst/keeper", json={"image_id": order[-1]})
    client.put(f"/batches/{batch_id}/decisions", json={"image_ids": ids, "color_label": "Red"})

    some = client.request(
        "DELETE", f"/batches/{batch_id}/decisions", json={"image_ids": [order[0]]}
    )
    assert some.status_code == 200, some.text
    assert by_id(some.json())[order[0]]["decided_by"] is None
    assert by_id(some.json())[order[-1]]["decided_by"] == "user"

    every = client.delete(f"/batches/{batch_id}/decisions")
    assert every.status_code == 200, every.text
    members = by_id(every.json())
    assert all(a["decided_by"] is None and a["color_label"] is None for a in members.values())
    assert [members[i]["quality_rank"] for i in order] == [1, 2, 3]


def test_cull_keeps_a_share_around_the_photographers_decisions(client: TestClient) -> None:
    groups: dict[str, list[int]] = {}
    for k, name in enumerate(REAL_PHOTOS[:4]):
        groups[f"Group {k + 1}"] = shoot(client, name, frames=5, seed=10 + k)
    batch_id = grouped(client, groups)
    kept_by_user = groups["Group 4"][0]
    rejected_by_user = groups["Group 1"][0]
    client.put(f"/batches/{batch_id}/decisions", json={"image_ids": [kept_by_user], "pick": "keep"})
    client.put(
        f"/batches/{batch_id}/decisions", json={"image_ids": [rejected_by_user], "pick": "reject"}
    )

    response = client.post(f"/batches/{batch_id}/cull", json={"share": 0.15})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["target"] == 3  # 15% of 20
    assert len(result["selected"]) == 3
    assert kept_by_user in result["selected"]
    assert rejected_by_user not in result["selected"]
    assert (result["user_kept"], result["user_rejected"], result["judge_selected"]) == (1, 1, 2)
    members = page(client, batch_id)
    # The judge's selects are the best frames of moments not yet covered by the photographer.
    for image_id in result["selected"]:
        assert members[image_id]["is_keeper"] is True
        if image_id != kept_by_user:
            assert members[image_id]["decided_by"] == "judge"
            assert members[image_id]["suggested_rank"] == 1
    assert members[kept_by_user]["decided_by"] == "user"
    assert (members[rejected_by_user]["pick"], members[rejected_by_user]["decided_by"]) == (
        "reject",
        "user",
    )
    others = [i for i in members if i not in result["selected"] and i != rejected_by_user]
    assert all(members[i]["pick"] == "reject" for i in others)
    assert all(members[i]["decided_by"] == "judge" for i in others)
    assert sum(a["is_keeper"] for a in members.values()) == 3

    # At least one per group, past the target; a new cull replaces the judge's decisions only.
    response = client.post(
        f"/batches/{batch_id}/cull", json={"count": 2, "at_least_one_per_group": True}
    )
    result = response.json()
    assert result["groups"] == result["groups_covered"] == 4
    assert len(result["selected"]) == 4
    assert kept_by_user in result["selected"]
    members = page(client, batch_id)
    assert sum(a["is_keeper"] for a in members.values()) == 4
    assert members[rejected_by_user]["decided_by"] == "user"


def test_cull_refuses_a_target_it_cannot_read(client: TestClient) -> None:
    batch_id = grouped(client, {"Burst": shoot(client, frames=2)})
    url = f"/batches/{batch_id}/cull"
    assert client.post(url, json={}).status_code == 422
    assert client.post(url, json={"share": 0.1, "count": 3}).status_code == 422
    assert client.post(url, json={"share": 1.5}).status_code == 422
    assert client.post(url, json={"count": -1}).status_code == 422
    assert client.post("/batches/999999/cull", json={"count": 1}).status_code == 404


def test_exports_write_the_users_decision_and_say_whose(client: TestClient) -> None:
    ids = shoot(client, frames=3)
    batch_id = grouped(client, {"Burst": ids})
    order = judge_order(page(client, batch_id), "Burst")
    client.put(f"/batches/{batch_id}/groups/Burst/keeper", json={"image_id": order[-1]})
    client.put(f"/batches/{batch_id}/decisions", json={"image_ids": [order[0]], "pick": "reject"})

    rows = client.get(f"/batches/{batch_id}/export", params={"format": "json"}).json()
    by_image = {row["image_id"]: row for row in rows}
    assert (by_image[order[-1]]["is_keeper"], by_image[order[-1]]["decided_by"]) == (True, "user")
    assert by_image[order[-1]]["suggested_keeper"] is False
    assert (by_image[order[0]]["pick"], by_image[order[0]]["is_keeper"]) == ("reject", False)
    assert by_image[order[0]]["suggested_keeper"] is True
    # The undecided frame: the judge's suggestion, said so by an empty decided_by.
    assert (by_image[order[1]]["decided_by"], by_image[order[1]]["is_keeper"]) == (None, False)

    text = client.get(f"/batches/{batch_id}/export", params={"format": "csv"}).text
    csv_rows = {int(r["image_id"]): r for r in csv.DictReader(io.StringIO(text))}
    assert csv_rows[order[-1]]["decided_by"] == "user"
    assert csv_rows[order[-1]]["is_keeper"] == "true"
    assert csv_rows[order[0]]["pick"] == "reject"
    assert csv_rows[order[1]]["decided_by"] == ""


@needs_exiftool
def test_xmp_of_a_user_reject_reads_back_as_rating_minus_one(
    client: TestClient, tmp_path: Path
) -> None:
    ids = shoot(client, frames=3)
    batch_id = grouped(client, {"Burst": ids})
    order = judge_order(page(client, batch_id), "Burst")
    client.put(f"/batches/{batch_id}/decisions", json={"image_ids": [order[0]], "pick": "reject"})
    client.put(
        f"/batches/{batch_id}/decisions",
        json={"image_ids": [order[2]], "rating": 4, "color_label": "Purple"},
    )

    zipped = client.get(f"/batches/{batch_id}/export", params={"format": "xmp"}).content
    read = _exiftool(zipped, tmp_path)
    # Uploaded as chelsea.png-<k>.jpg: the sidecar is chelsea.png-<k>.xmp.
    sidecar = {image_id: read[f"chelsea.png-{k}.xmp"] for k, image_id in enumerate(ids)}
    rejected = sidecar[order[0]]
    assert rejected["Rating"] == -1
    assert "Label" not in rejected
    assert rejected["DecidedBy"] == "user"
    assert "Pixal|Rejected" in _as_list(rejected["HierarchicalSubject"])
    # Rank 1 now (the reject went last), undecided: the judge's keeper, said so.
    keeper = sidecar[order[1]]
    assert (keeper["Rating"], keeper["Label"], keeper["DecidedBy"]) == (5, "Green", "suggestion")
    starred = sidecar[order[2]]
    assert (starred["Rating"], starred["Label"], starred["DecidedBy"]) == (4, "Purple", "user")


def test_flags_are_json_booleans_only(client: TestClient) -> None:
    # {"count": 0, "at_least_one_per_group": 0} was read as false and answered 200
    # (schemathesis ST201, 19,550-case campaign): a flag is true or false, never 0, 1 or "no".
    batch_id = grouped(client, {"Burst": shoot(client, frames=2)})
    for flag in (0, 1, "false", None):
        cull = {"count": 0, "at_least_one_per_group": flag}
        assert client.post(f"/batches/{batch_id}/cull", json=cull).status_code == 422
        analyze = {"use_capture_time": flag}
        assert client.put(f"/batches/{batch_id}/analyze", json=analyze).status_code == 422
    ok = {"count": 0, "at_least_one_per_group": True}
    assert client.post(f"/batches/{batch_id}/cull", json=ok).status_code == 200
