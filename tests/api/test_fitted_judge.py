"""The judge that learns the photographer's taste, through the API on real photos: fitted from
keeper choices, ranks follow the fitted weights, user decisions stay, and the default judge
keeps ranking when the fitted one does worse on held-back choices."""

from __future__ import annotations

import io

from fastapi.testclient import TestClient
from PIL import Image, ImageEnhance

from processing.judge_fit import PARTS
from tests.api.helpers import new_batch, upload
from tests.api.test_decisions import page
from tests.factories import real_photo

# A low-key photographer: of two frames of one real photo, they keep the one 20% darker, where
# the default judge keeps the normal frame (more contrast reads as sharper, and it is nearer
# mid-grey).
TRAINING = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg")
HELD_OUT = "motorcycle_left.png"
DARKER = 0.8


def _jpeg(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=92)
    return out.getvalue()


def _pairs(client: TestClient, names: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """Per photo: (normal frame, darker frame), uploaded."""
    files: list[tuple[str, bytes]] = []
    for name in names:
        photo = real_photo(name)
        photo.thumbnail((640, 640))
        darker = ImageEnhance.Brightness(photo).enhance(DARKER)
        files += [(f"{name}-normal.jpg", _jpeg(photo)), (f"{name}-dark.jpg", _jpeg(darker))]
    ids = upload(client, files)
    return {name: (ids[2 * k], ids[2 * k + 1]) for k, name in enumerate(names)}


def _batch(client: TestClient, pairs: dict[str, tuple[int, int]]) -> int:
    groups = {name: list(frames) for name, frames in pairs.items()}
    batch_id = new_batch(client, [i for frames in groups.values() for i in frames])
    response = client.put(f"/batches/{batch_id}/groups", json={"group_map": groups})
    assert response.status_code == 200, response.text
    return batch_id


def _choose(client: TestClient, batch_id: int, label: str, image_id: int) -> None:
    response = client.put(f"/batches/{batch_id}/groups/{label}/keeper", json={"image_id": image_id})
    assert response.status_code == 200, response.text


def _first(client: TestClient, batch_id: int, label: str, rank: str = "quality_rank") -> int:
    members = page(client, batch_id)
    return next(i for i, a in members.items() if a["group_label"] == label and a[rank] == 1)


def _fit(client: TestClient) -> dict:
    response = client.post("/judge/fit")
    assert response.status_code == 200, response.text
    return response.json()


def test_the_fitted_judge_learns_a_taste_and_ranks_follow_it(client: TestClient) -> None:
    pairs = _pairs(client, (*TRAINING, HELD_OUT))
    batch_id = _batch(client, pairs)
    normal, dark = pairs[HELD_OUT]
    # The default judge keeps the normal frame of the photo held out of the choices.
    assert _first(client, batch_id, HELD_OUT) == normal
    untouched = client.get("/judge").json()
    assert (untouched["in_use"], untouched["fitted_weights"]) == ("default", None)
    assert untouched["weights"] == untouched["default_weights"]

    for name in TRAINING:
        _choose(client, batch_id, name, pairs[name][1])
    judge = _fit(client)

    assert judge["in_use"] == "fitted", judge["note"]
    assert judge["weights"] == judge["fitted_weights"]
    assert set(judge["weights"]) == set(PARTS)
    assert (judge["groups"], judge["pairs"]) == (len(TRAINING), len(TRAINING))
    # Darker counts for more than it did, the contrast of the brighter frame for less.
    assert judge["weights"]["brightness"] < judge["default_weights"]["brightness"]
    assert judge["weights"]["sharpness"] < judge["default_weights"]["sharpness"]
    agreement = judge["agreement"]
    assert agreement["method"] == "leave-one-group-out"
    assert agreement["fitted"]["keepers"] == agreement["default"]["keepers"] == len(TRAINING)
    assert agreement["fitted"]["keepers_right"] > agreement["default"]["keepers_right"]
    assert client.get("/judge").json() == judge

    # Fitting ranked the library again: the darker frame comes first, also where not chosen.
    assert _first(client, batch_id, HELD_OUT) == dark
    # The normal frame ranks below for the taste alone: the default judge would keep it.
    assert page(client, batch_id)[normal]["rank_reason"] == "fitted_taste"
    for name, (_, darker) in pairs.items():
        assert _first(client, batch_id, name, "suggested_rank") == darker, name

    # The photographer's own keeper stays theirs and first, the fitted suggestion beside it.
    _choose(client, batch_id, HELD_OUT, normal)
    response = client.post(f"/batches/{batch_id}/groups/{HELD_OUT}/rank")
    assert response.status_code == 200, response.text
    kept = page(client, batch_id)[normal]
    assert (kept["pick"], kept["decided_by"], kept["quality_rank"]) == ("keep", "user", 1)
    assert _first(client, batch_id, HELD_OUT, "suggested_rank") == dark

    # Back to the default judge, the library ranked again; the user's keeper stays.
    reset = client.delete("/judge")
    assert reset.status_code == 200, reset.text
    assert (reset.json()["in_use"], reset.json()["fitted_weights"]) == ("default", None)
    assert _first(client, batch_id, HELD_OUT, "suggested_rank") == normal
    for name in TRAINING:
        kept = page(client, batch_id)[pairs[name][1]]
        assert (kept["pick"], kept["decided_by"], kept["quality_rank"]) == ("keep", "user", 1)


def test_contradicting_choices_fall_back_to_the_default_judge(client: TestClient) -> None:
    pairs = _pairs(client, TRAINING)
    # The same frames in two shoots, the darker kept in one and the normal in the other:
    # held back, each choice is predicted by the others, which say the opposite.
    first, second = _batch(client, pairs), _batch(client, pairs)
    for name, (normal, dark) in pairs.items():
        _choose(client, first, name, dark)
        _choose(client, second, name, normal)
    suggested = {name: _first(client, first, name, "suggested_rank") for name in pairs}

    judge = _fit(client)

    assert judge["in_use"] == "default"
    assert judge["weights"] == judge["default_weights"]
    assert judge["fitted_weights"] is not None
    agreement = judge["agreement"]
    assert agreement["fitted"]["keepers_right"] < agreement["default"]["keepers_right"]
    assert "default judge ranks" in judge["note"]
    for name in pairs:
        assert _first(client, first, name, "suggested_rank") == suggested[name]


def test_fitting_without_choices_says_what_it_needs(client: TestClient) -> None:
    pairs = _pairs(client, TRAINING[:2])
    batch_id = _batch(client, pairs)
    _choose(client, batch_id, TRAINING[0], pairs[TRAINING[0]][1])

    response = client.post("/judge/fit")

    assert response.status_code == 409
    assert "at least 2" in response.json()["detail"]
    assert client.get("/judge").json()["in_use"] == "default"
