"""A batch's judged result as rows, for CSV or JSON export to other tools."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from database import readiness
from database.models import ImageBatchAssociation
from processing.capture_time import captured_at, iso_text
from services import batch_service

EXPORT_FIELDS = (
    "image_id",
    "original_filename",
    "group_label",
    "quality_rank",
    "is_keeper",
    "pick",
    "rating",
    "color_label",
    "decided_by",
    "suggested_keeper",
    "group_kind",
    "shot_at",
    "shot_at_local",
    "shot_at_offset",
    "quality_score",
    "sharpness",
    "exposure",
    "rank_reason",
    "motion_blur",
    "brightness",
    "face_count",
    "face_sharpness",
    "eyes",
    "face_sharpnesses",
    "eye_sharpness",
    "camera_make",
    "camera_model",
    "width",
    "height",
    "filename",
    # A RAW+JPEG pair's second file (services/companions.py); empty for a photo with one.
    "companion_original_filename",
)
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection)...
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# ...except a signed number, time or offset ("-05:00", "+2", "-1.5e-3"): a spreadsheet reads
# those as values, and a quote in front would change the data.
_SIGNED_VALUE = re.compile(r"[+-]\d+(?:[.,:]\d+)*(?:[eE][+-]?\d+)?")


# Fields read from the membership as stored (the others: from the image, or computed below).
_MEMBER_FIELDS = frozenset(
    {
        "group_label",
        "quality_rank",
        "rank_reason",
        "pick",
        "rating",
        "color_label",
        "decided_by",
        "group_kind",
    }
)
_COMPUTED: dict[str, Callable[[ImageBatchAssociation], Any]] = {
    "image_id": lambda a: a.image_id,
    # The decision where there is one (decided_by: user or judge), else the judge's
    # suggestion; that suggestion is always beside it.
    "is_keeper": readiness.is_keeper,
    "suggested_keeper": lambda a: readiness.is_suggested_keeper(a.group_label, a.suggested_rank),
    # As the API writes it (processing/capture_time.py).
    "shot_at": lambda a: iso_text(captured_at(a.image.shot_at, a.image.shot_at_offset_minutes)),
}


def _value(association: ImageBatchAssociation, name: str) -> Any:
    if name in _COMPUTED:
        return _COMPUTED[name](association)
    return getattr(association if name in _MEMBER_FIELDS else association.image, name)


def export_rows(session: Session, batch_id: int) -> list[dict[str, Any]]:
    """One row per image, in the batch's order (group, rank, id)."""
    batch = batch_service.get_batch(session, batch_id)
    return [
        {name: _value(association, name) for name in EXPORT_FIELDS}
        for association in batch.image_associations
    ]


def _cell(value: Any) -> Any:
    if isinstance(value, bool):  # as in the JSON export, not Python's True/False
        return "true" if value else "false"
    if isinstance(value, str) and is_formula(value):
        return "'" + value
    return "" if value is None else value


def is_formula(text: str) -> bool:
    """Whether a spreadsheet opening the CSV would run `text` as a formula."""
    return text.startswith(_FORMULA_START) and not _SIGNED_VALUE.fullmatch(text)


def to_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS)
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _cell(value) for key, value in row.items()})
    return buffer.getvalue()
