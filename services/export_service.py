"""A batch's judged result as rows, for CSV or JSON export to other tools."""

from __future__ import annotations

import csv
import io
from typing import Any

from sqlalchemy.orm import Session

from database import readiness
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
    "camera_make",
    "camera_model",
    "width",
    "height",
    "filename",
)
# A spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def export_rows(session: Session, batch_id: int) -> list[dict[str, Any]]:
    """One row per image, in the batch's order (group, rank, id)."""
    batch = batch_service.get_batch(session, batch_id)
    rows = []
    for association in batch.image_associations:
        image = association.image
        rows.append(
            {
                "image_id": image.id,
                "original_filename": image.original_filename,
                "group_label": association.group_label,
                "quality_rank": association.quality_rank,
                # The decision where there is one (decided_by: user or judge), else the
                # judge's suggestion; that suggestion is always beside it.
                "is_keeper": readiness.is_keeper(association),
                "pick": association.pick,
                "rating": association.rating,
                "color_label": association.color_label,
                "decided_by": association.decided_by,
                "suggested_keeper": readiness.is_suggested_keeper(
                    association.group_label, association.suggested_rank
                ),
                "group_kind": association.group_kind,
                # As the API writes them (processing/capture_time.py).
                "shot_at": iso_text(captured_at(image.shot_at, image.shot_at_offset_minutes)),
                "shot_at_local": image.shot_at_local,
                "shot_at_offset": image.shot_at_offset,
                "quality_score": image.quality_score,
                "sharpness": image.sharpness,
                "exposure": image.exposure,
                "rank_reason": association.rank_reason,
                "motion_blur": image.motion_blur,
                "brightness": image.brightness,
                "face_count": image.face_count,
                "face_sharpness": image.face_sharpness,
                "eyes": image.eyes,
                "face_sharpnesses": image.face_sharpnesses,
                "camera_make": image.camera_make,
                "camera_model": image.camera_model,
                "width": image.width,
                "height": image.height,
                "filename": image.filename,
            }
        )
    return rows


def _cell(value: Any) -> Any:
    if isinstance(value, bool):  # as in the JSON export, not Python's True/False
        return "true" if value else "false"
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return "" if value is None else value


def to_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS)
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _cell(value) for key, value in row.items()})
    return buffer.getvalue()
