"""Awkward and hostile uploads: each is accepted and fully processed, or refused with a 4xx
and a reason, leaving nothing behind. No answer ever shows a server path."""

from __future__ import annotations

import io
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from api.main import create_app
from config import Settings
from database.models import Image as ImageRow
from processing.feature_extraction import ManagedEmbedder
from processing.imaging import register_image_plugins
from tests.factories import (
    animated_gif_bytes,
    build_exif,
    encode,
    gradient_image,
    heic_bytes,
    heic_declaring,
    jpeg_bytes,
    jpeg_declaring,
    multipart_body,
    png_bytes,
    png_declaring,
    png_with_bad_crc,
    rational,
    raw_exif,
    with_app1,
)

ORIENTATION, MAKE, EXIF_IFD = 0x0112, 0x010F, 0x8769
SHORT, ASCII, LONG = 3, 2, 4
NOTHING_STORED = {"images": [], "thumbnails": [], "incoming": []}


@dataclass(frozen=True)
class Accepted:
    mime_type: str
    extension: str
    shown: tuple[int, int]  # the thumbnail's size: the picture upright, at most 512 px
    orientation: int | None = None


@dataclass(frozen=True)
class Refused:
    reason: str


def corrupt_exif_jpeg(payload: bytes, size: tuple[int, int] = (320, 200)) -> bytes:
    return with_app1(jpeg_bytes(size, seed=21), payload)


def broken_pixels_png() -> bytes:
    # A bad CRC on IHDR stops the header; on IDAT Pillow does not check it, so flip a byte of
    # the compressed pixels too: the zlib stream then fails while decoding.
    data = bytearray(png_bytes((64, 48), seed=24))
    data[data.index(b"IDAT") + 12] ^= 0xFF
    return bytes(data)


def palette_with_transparency() -> bytes:
    return encode(gradient_image((120, 80), seed=26).convert("P"), "PNG", transparency=0)


CORPUS = [
    pytest.param("empty.jpg", b"", "image/jpeg", Refused("file is empty"), id="zero-bytes"),
    pytest.param(
        "cut.jpg",
        jpeg_bytes((320, 200), seed=20)[:2000],
        "image/jpeg",
        Refused("image could not be decoded (image file is truncated"),
        id="truncated-jpeg",
    ),
    pytest.param(
        "cut-before-eoi.jpg",
        jpeg_bytes((320, 200), seed=20)[:-2],
        "image/jpeg",
        Refused("image could not be decoded (image file is truncated"),
        id="truncated-jpeg-no-eoi",
    ),
    pytest.param(
        "garbage-exif.jpg",
        corrupt_exif_jpeg(b"Exif\x00\x00" + bytes(range(256)) * 2),
        "image/jpeg",
        Accepted("image/jpeg", ".jpg", (320, 200)),
        id="jpeg-garbage-exif",
    ),
    pytest.param(
        "exif-past-end.jpg",
        # The Exif sub-IFD points 2 GB past the end; the orientation beside it still counts.
        corrupt_exif_jpeg(
            raw_exif("II", [(ORIENTATION, SHORT, 1, 6), (EXIF_IFD, LONG, 1, 0x7FFFFFFF)])
        ),
        "image/jpeg",
        Accepted("image/jpeg", ".jpg", (200, 320), orientation=6),
        id="jpeg-exif-offset-past-end",
    ),
    pytest.param(
        "exif-huge-tag.jpg",
        # A camera make claiming a million bytes; a truncated IFD table after it.
        corrupt_exif_jpeg(
            raw_exif("MM", [(ORIENTATION, SHORT, 1, 8), (MAKE, ASCII, 1_000_000, 100)])[:-6]
        ),
        "image/jpeg",
        Accepted("image/jpeg", ".jpg", (200, 320), orientation=8),
        id="jpeg-exif-tag-larger-than-file",
    ),
    pytest.param(
        "bad-header-crc.png",
        png_with_bad_crc(png_bytes((64, 48), seed=22), b"IHDR"),
        "image/png",
        Refused("damaged PNG file"),
        id="png-bad-ihdr-crc",
    ),
    pytest.param(
        "bad-data-crc.png",
        png_with_bad_crc(png_bytes((64, 48), seed=23), b"IDAT"),
        "image/png",
        Accepted("image/png", ".png", (64, 48)),
        id="png-bad-idat-crc-intact-data",
    ),
    pytest.param(
        "broken-data.png",
        broken_pixels_png(),
        "image/png",
        Refused("image could not be decoded"),
        id="png-broken-pixel-data",
    ),
    pytest.param(
        "notes.jpg",
        b"Shopping list:\n- film\n- batteries\n" * 20,
        "text/plain",
        Refused("not an image"),
        id="text-named-jpg",
    ),
    pytest.param(
        "page.jpg",
        b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>",
        "image/jpeg",
        Refused("not an image"),
        id="html-sent-as-image-jpeg",
    ),
    pytest.param(
        "bomb.png",
        png_declaring(100_000, 100_000),
        "image/png",
        Refused("more pixels than the limit of 250000000"),
        id="bomb-png-100000x100000",
    ),
    pytest.param(
        "bomb.jpg",
        jpeg_declaring(60_000, 60_000),
        "image/jpeg",
        Refused("more pixels than the limit of 250000000"),
        id="bomb-jpeg-60000x60000",
    ),
    pytest.param(
        "bomb.heic",
        heic_declaring(60_000, 60_000),
        "image/heic",
        Refused("more pixels than the limit of 250000000"),
        id="bomb-heic-60000x60000",
    ),
    pytest.param(
        "cropped-bomb.heic",
        heic_declaring(60_000, 60_000, real=(64, 48)),
        "image/heic",
        Refused("image could not be decoded (Memory allocation error: Security limit exceeded"),
        id="bomb-heic-hidden-behind-a-crop",
    ),
    pytest.param(
        "cmyk.jpg",
        encode(gradient_image((300, 150), seed=25).convert("CMYK"), "JPEG", quality=90),
        "image/jpeg",
        Accepted("image/jpeg", ".jpg", (300, 150)),
        id="cmyk-jpeg",
    ),
    pytest.param(
        "deep.png",
        encode(gradient_image((300, 150), seed=27).convert("I;16"), "PNG"),
        "image/png",
        Accepted("image/png", ".png", (300, 150)),
        id="png-16-bit",
    ),
    pytest.param(
        "deep.tif",
        encode(gradient_image((300, 150), seed=28).convert("I;16"), "TIFF"),
        "image/tiff",
        Accepted("image/tiff", ".tif", (300, 150)),
        id="tiff-16-bit",
    ),
    pytest.param(
        "palette.png",
        palette_with_transparency(),
        "image/png",
        Accepted("image/png", ".png", (120, 80)),
        id="palette-png-transparency",
    ),
    pytest.param(
        "moving.gif",
        animated_gif_bytes((120, 80), frames=3, seed=29),
        "image/gif",
        Accepted("image/gif", ".gif", (120, 80)),
        id="animated-gif",
    ),
    pytest.param(
        "IMG_0001.HEIC",
        heic_bytes((640, 480), seed=30),
        "image/heic",
        Accepted("image/heic", ".heic", (512, 384)),
        id="heic",
    ),
]


def stored_files(root: Path) -> dict[str, list[str]]:
    return {
        folder: sorted(p.name for p in (root / folder).iterdir())
        for folder in ("images", "thumbnails", "incoming")
    }


def row_count(session_factory: sessionmaker[Session]) -> int:
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(ImageRow)) or 0


def assert_no_server_path(responses: Iterable[httpx.Response], *paths: Path) -> None:
    """No body or header mentions where the server keeps its files."""
    needles = {str(p) for path in paths for p in (path, path.resolve())}
    for response in responses:
        everything = response.content + repr(response.headers.multi_items()).encode()
        for needle in needles:
            assert needle.encode() not in everything, (response.request.url, needle)


def assert_fully_processed(
    client: TestClient, storage_root: Path, item: dict, data: bytes, expected: Accepted
) -> list[httpx.Response]:
    """The image is stored once and has its thumbnail, embedding and quality score."""
    image_id = item["id"]
    assert item["is_duplicate"] is False
    assert item["filename"].endswith(expected.extension)

    listed = client.get("/images/")
    [shown] = listed.json()
    assert shown["id"] == image_id
    assert shown["processing_error"] is None
    assert shown["has_thumbnail"] is True
    assert shown["has_embedding"] is True
    assert shown["quality_score"] is not None

    original = client.get(f"/images/{image_id}")
    assert original.status_code == 200
    assert original.content == data
    assert original.headers["content-type"] == expected.mime_type

    thumbnail = client.get(f"/images/thumbnail/{image_id}")
    assert thumbnail.status_code == 200
    assert thumbnail.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(thumbnail.content)) as thumb:
        assert (thumb.format, thumb.mode, thumb.size) == ("JPEG", "RGB", expected.shown)

    metadata = client.get(f"/images/metadata/{image_id}")
    assert metadata.status_code == 200
    assert metadata.json()["orientation"] == expected.orientation

    assert stored_files(storage_root) == {
        "images": [item["filename"]],
        "thumbnails": [Path(item["filename"]).stem + ".jpg"],
        "incoming": [],
    }
    return [listed, original, thumbnail, metadata]


def assert_refused(
    client: TestClient,
    storage_root: Path,
    session_factory: sessionmaker[Session],
    response: httpx.Response,
    filename: str,
    reason: str,
    status: int = 400,
) -> None:
    """A 4xx that names the file and says why; no row, no file."""
    assert response.status_code == status, response.text
    body = response.json()
    assert filename in body["detail"]
    assert reason in body["detail"]
    [rejection] = body["rejected"]
    assert rejection["filename"] == filename
    assert reason in rejection["reason"]
    assert row_count(session_factory) == 0
    assert client.get("/images/").json() == []
    assert stored_files(storage_root) == NOTHING_STORED


@pytest.mark.parametrize(("name", "data", "content_type", "expected"), CORPUS)
def test_awkward_file_is_processed_or_refused_cleanly(
    client: TestClient,
    storage_root: Path,
    tmp_path: Path,
    session_factory: sessionmaker[Session],
    name: str,
    data: bytes,
    content_type: str,
    expected: Accepted | Refused,
) -> None:
    response = client.post("/images/upload", files=[("files", (name, data, content_type))])
    responses = [response]

    if isinstance(expected, Refused):
        assert_refused(client, storage_root, session_factory, response, name, expected.reason)
    else:
        assert response.status_code == 200, response.text
        [item] = response.json()
        assert item["original_filename"] == name
        responses += assert_fully_processed(client, storage_root, item, data, expected)
    assert_no_server_path(responses, storage_root, tmp_path)


def test_corrupt_exif_costs_the_metadata_not_the_photo(client: TestClient) -> None:
    data = corrupt_exif_jpeg(b"Exif\x00\x00MM\x00*" + bytes(range(255, 0, -1)) * 2)
    [item] = client.post("/images/upload", files=[("files", ("x.jpg", data))]).json()

    metadata = client.get(f"/images/metadata/{item['id']}").json()
    assert (metadata["width"], metadata["height"]) == (320, 200)
    camera = ("camera_make", "camera_model", "shot_at", "latitude", "iso", "orientation")
    assert {key: metadata[key] for key in camera} == dict.fromkeys(camera)


def test_heic_thumbnail_is_upright_and_coloured_like_the_original(client: TestClient) -> None:
    picture = gradient_image((300, 200), seed=31)
    picture.paste((255, 0, 0), (0, 0, 60, 40))  # a red top-left corner
    [item] = client.post(
        "/images/upload", files=[("files", ("red-corner.heic", encode(picture, "HEIF")))]
    ).json()

    thumbnail = client.get(f"/images/thumbnail/{item['id']}")
    with Image.open(io.BytesIO(thumbnail.content)) as thumb:
        assert thumb.size == (300, 200)
        red, green, blue = thumb.convert("RGB").getpixel((10, 10))  # type: ignore[misc]
    assert red > 200
    assert max(green, blue) < 60


# --- Damaged headers, at random ------------------------------------------------------------


def damaged(data: bytes, seed: int) -> bytes:
    """`data` with a few bytes of its first 400 (headers, EXIF) overwritten at random."""
    rng = random.Random(seed)
    copy = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        copy[rng.randrange(min(len(copy), 400))] = rng.randrange(256)
    return bytes(copy)


def rich_exif() -> Image.Exif:
    return build_exif(
        {ORIENTATION: 6, MAKE: "Canon", 0x0110: "EOS R5"},
        exif_ifd={0x8827: 400, 0x9003: "2024:05:01 10:20:30"},
        gps_ifd={1: "N", 2: (rational(48), rational(51), rational(24))},
    )


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF", "WEBP", "HEIF", "GIF"])
def test_damaged_files_are_processed_or_refused_never_half_stored(
    client: TestClient, storage_root: Path, session_factory: sessionmaker[Session], fmt: str
) -> None:
    register_image_plugins()  # the HEIF writer
    picture = gradient_image((96, 64), seed=70)
    original = encode(picture, fmt, None if fmt == "GIF" else rich_exif())
    for seed in range(8):
        before = stored_files(storage_root), row_count(session_factory)
        response = client.post(
            "/images/upload", files=[("files", (f"{seed}.bin", damaged(original, seed)))]
        )
        assert response.status_code in (200, 400), response.text
        if response.status_code == 400:
            assert (stored_files(storage_root), row_count(session_factory)) == before
            continue
        [item] = response.json()
        [shown] = [i for i in client.get("/images/").json() if i["id"] == item["id"]]
        assert shown["processing_error"] is None
        assert shown["has_thumbnail"] is True
        assert shown["has_embedding"] is True
        assert client.get(f"/images/thumbnail/{item['id']}").status_code == 200


# --- File names -------------------------------------------------------------------------------

LONG_STEM = "a-very-long-holiday-name-" * 14  # 350 characters


@pytest.mark.parametrize(
    ("raw_name", "expected_name"),
    [
        pytest.param(LONG_STEM.encode() + b".jpg", LONG_STEM[:251] + ".jpg", id="350-chars"),
        pytest.param(("📷" * 300 + ".jpeg").encode(), "📷" * 250 + ".jpeg", id="300-emoji-utf8"),
        pytest.param(b"caf\xe9 cr\xe8me.jpg", "café crème.jpg", id="latin-1-bytes"),
        pytest.param(b"\xff\xfe\xfd.jpg", "ÿþý.jpg", id="invalid-utf8-bytes"),
        pytest.param("sunset 🌅 🏖️.jpg".encode(), "sunset 🌅 🏖️.jpg", id="emoji"),
        pytest.param("صورة العائلة.jpg".encode(), "صورة العائلة.jpg", id="rtl-arabic"),
        pytest.param("תמונה.jpg".encode(), "תמונה.jpg", id="rtl-hebrew"),
        pytest.param(b"bell\x07tab\tesc\x1b[2Jdel\x7f.jpg", "belltabesc[2Jdel.jpg", id="controls"),
        pytest.param(b"nul\x00byte.jpg", "nulbyte.jpg", id="nul-byte"),
        pytest.param(b"../../../../etc/passwd.jpg", "passwd.jpg", id="dot-dot-slash"),
        pytest.param(b"..\\..\\Windows\\win.ini.jpg", "win.ini.jpg", id="backslashes"),
        pytest.param(b"/var/lib/secret.jpg", "secret.jpg", id="absolute-path"),
        pytest.param(b"C:\\Users\\me\\photo.jpg", "photo.jpg", id="windows-drive"),
        pytest.param(b"..", "upload", id="only-dot-dot"),
        pytest.param(b"../", "upload", id="dot-dot-slash-only"),
        pytest.param(b"", "upload", id="empty-name"),
        pytest.param(b".hidden.jpg", "hidden.jpg", id="leading-dot"),
        pytest.param(b'say \\"cheese\\".jpg', 'say "cheese".jpg', id="escaped-double-quote"),
        pytest.param(
            b"c1\x85control\x9b.jpg",
            "c1control.jpg",
            id="c1-controls",  # U+009B starts a terminal escape
        ),
        pytest.param(
            "rlo\u202egpj.exe.jpg".encode(),
            "rlogpj.exe.jpg",
            id="bidi-override",  # U+202E would show "gpj.exe" as "exe.jpg"
        ),
    ],
)
def test_awkward_filename_is_cleaned_and_stored_safely(
    client: TestClient,
    storage_root: Path,
    tmp_path: Path,
    raw_name: bytes,
    expected_name: str,
) -> None:
    data = jpeg_bytes((96, 64), seed=40)
    # A raw body: HTTP clients escape or re-encode exactly the bytes this test is about.
    body, headers = multipart_body(raw_name, data)
    response = client.post("/images/upload", content=body, headers=headers)

    assert response.status_code == 200, response.text
    [item] = response.json()
    assert item["original_filename"] == expected_name
    assert len(item["original_filename"]) <= 255
    # The stored name is ours, whatever the client called the file.
    assert item["file_path"] == f"images/{item['filename']}"
    assert stored_files(storage_root)["images"] == [item["filename"]]

    served = client.get(f"/images/{item['id']}")
    assert served.content == data
    disposition = served.headers["content-disposition"]
    assert disposition.isascii()
    assert disposition.isprintable()
    assert "/" not in disposition.split("filename", 1)[1]
    assert_no_server_path([response, served], storage_root, tmp_path)


def test_filename_with_a_line_break_cannot_split_headers(client: TestClient) -> None:
    body, headers = multipart_body(b"evil.jpg\r\nX-Injected: yes", jpeg_bytes(seed=41))
    response = client.post("/images/upload", content=body, headers=headers)

    assert response.status_code == 200, response.text
    [item] = response.json()
    assert not {"\r", "\n"} & set(item["original_filename"])
    assert "Injected" not in item["original_filename"]
    served = client.get(f"/images/{item['id']}")
    assert "x-injected" not in response.headers
    assert "x-injected" not in served.headers


# --- Limits -----------------------------------------------------------------------------------


def test_more_files_than_the_limit_are_refused_and_nothing_is_stored(
    settings: Settings,
    session_factory: sessionmaker[Session],
    tiny_embedder: ManagedEmbedder,
    storage_root: Path,
    tmp_path: Path,
) -> None:
    limited = settings.model_copy(update={"max_files_per_request": 3})
    app = create_app(
        limited, session_factory=session_factory, embedder=tiny_embedder, threaded_worker=False
    )
    files = [("files", (f"{i}.jpg", jpeg_bytes(seed=50 + i), "image/jpeg")) for i in range(4)]
    with TestClient(app) as client:
        response = client.post("/images/upload", files=files)

        assert response.status_code == 400
        assert response.json() == {"detail": "Too many files in one request (4); the limit is 3."}
        assert_no_server_path([response], storage_root, tmp_path)
        assert row_count(session_factory) == 0
        assert stored_files(storage_root) == NOTHING_STORED

        at_limit = client.post("/images/upload", files=files[:3])
        assert at_limit.status_code == 200
        assert len(at_limit.json()) == 3


def test_bomb_between_the_limit_and_twice_it_is_refused_by_our_own_check(
    settings: Settings,
    session_factory: sessionmaker[Session],
    tiny_embedder: ManagedEmbedder,
    storage_root: Path,
) -> None:
    # Pillow only raises past twice its limit; below that it warns, and where warnings are not
    # errors (production) the upload must still be refused by the pixel check itself.
    limited = settings.model_copy(update={"max_image_pixels": 10_000})
    app = create_app(
        limited, session_factory=session_factory, embedder=tiny_embedder, threaded_worker=False
    )
    with pytest.warns(Image.DecompressionBombWarning), TestClient(app) as client:
        response = client.post(
            "/images/upload", files=[("files", ("big.png", png_declaring(150, 100)))]
        )
    assert response.status_code == 400
    assert "more pixels than the limit of 10000" in response.json()["detail"]
    assert row_count(session_factory) == 0
    assert stored_files(storage_root) == NOTHING_STORED
