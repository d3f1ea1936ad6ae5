"""A batch's result as a picture: its groups in order, keeper first and marked, labels on it.

A page holds at most `per_page` images in the batch's order (group, rank, id); a group that
spills over a page boundary is continued on the next under the same label. `group=` draws one
group only. Tiles come from the stored thumbnails (a grey tile says when there is none yet).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError
from sqlalchemy.orm import Session

from database import readiness
from database.models import ImageBatchAssociation
from processing.decode_gate import DecodeBusy, DecodeTooLarge
from processing.photo import load_oriented_rgb
from services import batch_service
from services.errors import NotFound, Unavailable
from utils.file_handling import StorageLayout, storage_path, thumbnail_relative_path

COLUMNS = 6
TILE = 220  # square cell for the picture
CAPTION = 40  # two lines under it
GAP = 12
MARGIN = 24
HEADER = 64  # batch name and page
BAND = 44  # a group's label
BACKGROUND = (34, 34, 36)
PANEL = (52, 52, 56)
TEXT = (235, 235, 235)
MUTED = (160, 160, 165)
KEEPER = (64, 200, 96)
PLACEHOLDER = (80, 80, 84)
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
FONT_FILE = files("manimgx_fonts_cjk") / "NotoSansCJK-VF.otf.ttc"


@dataclass(frozen=True, slots=True)
class ContactSheet:
    jpeg: bytes
    page: int
    pages: int
    images: int  # on this page


def render(
    session: Session,
    settings: StorageLayout,
    batch_id: int,
    page: int = 1,
    per_page: int = 48,
    group: str | None = None,
) -> ContactSheet:
    """Page `page` (1-based) of the batch's contact sheet as a JPEG."""
    batch = batch_service.get_batch(session, batch_id)
    tiles = list(batch.image_associations)
    if group is not None:
        tiles = [a for a in tiles if (a.group_label or readiness.UNGROUPED) == group]
        if not tiles:
            raise NotFound(f"Batch {batch_id} has no group {group!r}.")
    pages = max(1, math.ceil(len(tiles) / per_page))
    if page > pages:
        raise NotFound(f"Page {page} does not exist: the contact sheet has {pages} page(s).")
    shown = tiles[(page - 1) * per_page : page * per_page]
    title = f"{batch.batch_name}  ·  {len(tiles)} images  ·  page {page} of {pages}"
    before = tiles[(page - 1) * per_page - 1] if page > 1 else None
    continued = before is not None and before.group_label == shown[0].group_label
    canvas = _draw(settings, title, _by_group(shown, continued))
    buffer = io.BytesIO()
    canvas.save(buffer, "JPEG", quality=88, optimize=True)
    return ContactSheet(jpeg=buffer.getvalue(), page=page, pages=pages, images=len(shown))


def _by_group(
    shown: list[ImageBatchAssociation], continued: bool
) -> list[tuple[str, list[ImageBatchAssociation]]]:
    """Consecutive runs of one label; the first run of a later page may be a continuation."""
    runs: list[tuple[str, list[ImageBatchAssociation]]] = []
    for association in shown:
        label = association.group_label or "Not analysed"
        if runs and runs[-1][0] == label:
            runs[-1][1].append(association)
        else:
            runs.append((label, [association]))
    if continued:
        runs[0] = (f"{runs[0][0]} (continued)", runs[0][1])
    return runs


def _draw(
    settings: StorageLayout, title: str, runs: list[tuple[str, list[ImageBatchAssociation]]]
) -> Image.Image:
    width = 2 * MARGIN + COLUMNS * TILE + (COLUMNS - 1) * GAP
    row = TILE + CAPTION + GAP
    height = MARGIN + HEADER + MARGIN
    for _label, members in runs:
        height += BAND + math.ceil(len(members) / COLUMNS) * row + GAP
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    big, medium, small = sheet_font(30), sheet_font(22), sheet_font(15)
    draw.text((MARGIN, MARGIN), title, font=big, fill=TEXT)
    y = MARGIN + HEADER
    for label, members in runs:
        draw.rectangle((MARGIN, y, width - MARGIN, y + BAND - 8), fill=PANEL)
        count = f"{len(members)} image" + ("s" if len(members) != 1 else "")
        draw.text((MARGIN + 12, y + 6), f"{label}   {count}", font=medium, fill=TEXT)
        y += BAND
        for index, association in enumerate(members):
            x = MARGIN + (index % COLUMNS) * (TILE + GAP)
            top = y + (index // COLUMNS) * row
            _tile(canvas, draw, settings, association, (x, top), small)
        y += math.ceil(len(members) / COLUMNS) * row + GAP
    return canvas


def _tile(
    canvas: Image.Image,
    draw: ImageDraw.ImageDraw,
    settings: StorageLayout,
    association: ImageBatchAssociation,
    origin: tuple[int, int],
    font: Font,
) -> None:
    x, y = origin
    image = association.image
    picture = _thumbnail(settings, image.filename) if image.has_thumbnail else None
    if picture is None:
        draw.rectangle((x, y, x + TILE - 1, y + TILE - 1), fill=PLACEHOLDER)
        draw.text((x + 12, y + TILE // 2 - 8), "no thumbnail yet", font=font, fill=MUTED)
    else:
        picture.thumbnail((TILE - 12, TILE - 12))
        canvas.paste(picture, (x + (TILE - picture.width) // 2, y + (TILE - picture.height) // 2))
    is_keeper = readiness.is_keeper(association)
    if is_keeper:
        draw.rectangle((x, y, x + TILE - 1, y + TILE - 1), outline=KEEPER, width=5)
        draw.rectangle((x, y, x + 92, y + 26), fill=KEEPER)
        draw.text((x + 8, y + 4), "KEEPER", font=font, fill=(0, 0, 0))
    rank = f"#{association.quality_rank}" if association.quality_rank else "–"
    score = f"  q {image.quality_score:.2f}" if image.quality_score is not None else ""
    draw.text((x, y + TILE + 4), f"{rank}{score}", font=font, fill=TEXT if is_keeper else MUTED)
    name = _fit(draw, image.original_filename, font, TILE)
    draw.text((x, y + TILE + 21), name, font=font, fill=MUTED)


def _thumbnail(settings: StorageLayout, filename: str) -> Image.Image | None:
    try:
        path: Path = storage_path(settings.storage_root, thumbnail_relative_path(filename))
        # Through the decode gate, like every decode: a thumbnail file is small, unless
        # something else was put in its place.
        return load_oriented_rgb(path, TILE)
    except DecodeBusy as exc:
        raise Unavailable(str(exc)) from None
    except (OSError, ValueError, UnidentifiedImageError, SyntaxError, DecodeTooLarge):
        return None  # a thumbnail deleted or damaged on disk: the sheet is still drawn


def _fit(
    draw: ImageDraw.ImageDraw,
    text: str,
    font: Font,
    room: int,
) -> str:
    if draw.textlength(text, font=font) <= room:
        return text
    while text and draw.textlength(text + "…", font=font) > room:
        text = text[:-1]
    return text + "…"


def sheet_font(size: int) -> Font:
    """The sheet's font at `size` pixels: Noto Sans CJK Regular (the manimgx-fonts-cjk wheel,
    OFL-1.1), which draws accented Latin, dashes, Greek, Cyrillic and Chinese, Japanese and
    Korean; Pillow's bundled font drew a box for each of "—", "ü" or "東". A new face per
    sheet: FreeType faces are not to be shared between threads, and opening one takes <1 ms."""
    font = ImageFont.truetype(str(FONT_FILE), size, index=0)  # face 0: Japanese glyph forms
    font.set_variation_by_name("Regular")  # a variable font; its default instance is Thin
    return font
