"""The contact sheet: a JPEG of the batch's groups that decodes, with pages for large batches."""

from __future__ import annotations

import io
from pathlib import Path

from fastapi.testclient import TestClient
from PIL import Image

from services import contact_sheet
from tests.api.helpers import new_batch, upload
from tests.factories import burst, jpeg_bytes, real_photo

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def _sheet(response_content: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(response_content))
    image.load()  # decodes the whole file, not only the header
    return image


def _judged_batch(client: TestClient) -> tuple[int, dict[str, list[int]]]:
    """Three real-photo bursts grouped by hand, and two single shots left ungrouped."""
    groups = {}
    for k, name in enumerate(("chelsea.png", "coffee.png", "rocket.jpg")):
        frames = burst(real_photo(name), 3 + k, seed=k)
        groups[f"Group {k + 1}"] = upload(
            client, [(f"{name.split('.')[0]}_{i:02d}.jpg", f) for i, f in enumerate(frames)]
        )
    groups["Ungrouped"] = upload(
        client, [(f"single_{k}.jpg", jpeg_bytes(seed=80 + k)) for k in (1, 2)]
    )
    batch_id = new_batch(client, [i for ids in groups.values() for i in ids], name="Wedding")
    response = client.put(f"/batches/{batch_id}/groups", json={"group_map": groups})
    assert response.status_code == 200, response.text
    return batch_id, groups


def test_contact_sheet_is_a_jpeg_of_every_group(client: TestClient) -> None:
    batch_id, groups = _judged_batch(client)

    response = client.get(f"/batches/{batch_id}/contact-sheet")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    assert (response.headers["x-page"], response.headers["x-total-pages"]) == ("1", "1")
    sheet = _sheet(response.content)
    assert sheet.format == "JPEG"
    rows = sum(-(-len(ids) // contact_sheet.COLUMNS) for ids in groups.values())
    # Width: six tiles; height: a header, and per group a label band and its rows of tiles.
    assert sheet.width == 2 * contact_sheet.MARGIN + 6 * contact_sheet.TILE + 5 * contact_sheet.GAP
    row = contact_sheet.TILE + contact_sheet.CAPTION + contact_sheet.GAP
    assert sheet.height == (
        2 * contact_sheet.MARGIN
        + contact_sheet.HEADER
        + len(groups) * (contact_sheet.BAND + contact_sheet.GAP)
        + rows * row
    )
    # A person looks at this one (CI keeps artifacts/).
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "contact-sheet.jpg").write_bytes(response.content)


def test_keeper_is_first_and_framed(client: TestClient) -> None:
    batch_id, _groups = _judged_batch(client)
    sheet = _sheet(client.get(f"/batches/{batch_id}/contact-sheet").content).convert("RGB")
    # The first tile of the first group is its keeper: a green frame at its corner.
    x = contact_sheet.MARGIN + 2
    y = contact_sheet.MARGIN + contact_sheet.HEADER + contact_sheet.BAND + contact_sheet.TILE - 3
    red, green, blue = sheet.getpixel((x, y))  # type: ignore[misc]
    assert green > 150, (red, green, blue)
    assert max(red, blue) < 140, (red, green, blue)
    # An ungrouped image has no keeper frame, though its rank is 1.
    last_row_y = (
        sheet.height - contact_sheet.MARGIN - contact_sheet.GAP - contact_sheet.CAPTION - 10
    )
    red, green, blue = sheet.getpixel((x, last_row_y))  # type: ignore[misc]
    assert not (green > 150 and red < 120), (red, green, blue)


def test_pages_and_one_group(client: TestClient) -> None:
    batch_id, groups = _judged_batch(client)
    total = sum(len(ids) for ids in groups.values())

    first = client.get(f"/batches/{batch_id}/contact-sheet", params={"per_page": 4})
    pages = -(-total // 4)
    assert first.headers["x-total-pages"] == str(pages)
    last = client.get(f"/batches/{batch_id}/contact-sheet", params={"per_page": 4, "page": pages})
    assert last.status_code == 200
    assert _sheet(last.content).height < _sheet(first.content).height + 1
    beyond = client.get(
        f"/batches/{batch_id}/contact-sheet", params={"per_page": 4, "page": pages + 1}
    )
    assert beyond.status_code == 404

    one = client.get(f"/batches/{batch_id}/contact-sheet", params={"group": "Group 3"})
    assert one.status_code == 200
    assert (
        _sheet(one.content).height
        < _sheet(client.get(f"/batches/{batch_id}/contact-sheet").content).height
    )
    assert (
        client.get(f"/batches/{batch_id}/contact-sheet", params={"group": "Group 9"}).status_code
        == 404
    )
    assert (
        client.get(f"/batches/{batch_id}/contact-sheet", params={"per_page": 0}).status_code == 422
    )
    assert client.get("/batches/999999/contact-sheet").status_code == 404


WEDDING = "Wedding — ceremony ü ë 東京"
# No font has a glyph for a private-use code point of plane 16: it is drawn as .notdef.
NO_GLYPH = "\U0010fffd"


def test_every_glyph_of_a_wedding_title_is_drawn() -> None:
    """No character of the title (nor "–", "·", "…" the sheet itself writes) is the font's
    .notdef box, at each size the sheet uses."""
    for size in (30, 22, 15):
        font = contact_sheet.sheet_font(size)
        notdef = font.getmask(NO_GLYPH)
        boxes = [
            char
            for char in set(WEDDING + "–·…") - {" "}
            if (mask := font.getmask(char)).size == notdef.size and bytes(mask) == bytes(notdef)
        ]
        assert boxes == [], f"drawn as .notdef at {size} px: {boxes}"


def test_a_wedding_title_is_drawn_on_the_sheet_not_boxes(client: TestClient) -> None:
    """Through HTTP: the sheet of a batch named with a character differs from the sheet of the
    same batch named with NO_GLYPH in its place (boxes would draw both alike)."""
    batch_id = new_batch(client, upload(client, [("a.jpg", jpeg_bytes(seed=5))]), name=WEDDING)

    def header(name: str) -> bytes:
        assert client.put(f"/batches/{batch_id}", json={"name": name}).status_code == 200
        response = client.get(f"/batches/{batch_id}/contact-sheet")
        assert response.status_code == 200, response.text
        band = contact_sheet.MARGIN + contact_sheet.HEADER
        return _sheet(response.content).convert("L").crop((0, 0, 900, band)).tobytes()

    assert header(WEDDING) != header("Wedding")  # the title is in the cropped band
    for char in sorted(set(WEDDING) - set("Wedding ceremony")):
        drawn_as_box = header(f"Wedding {char}") == header(f"Wedding {NO_GLYPH}")
        assert not drawn_as_box, f"{char!r} is drawn as a box"
    ARTIFACTS.mkdir(exist_ok=True)
    header(WEDDING)
    (ARTIFACTS / "contact-sheet-wedding.jpg").write_bytes(
        client.get(f"/batches/{batch_id}/contact-sheet").content
    )
