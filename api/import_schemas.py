"""Request and response bodies of /imports (folders imported in place)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from pydantic import BaseModel, Field, field_validator

from api.schemas import BatchName, _strip_non_blank
from database.models import FolderImport

# One name of a path that is not the parent ('..'): empty, '.', or a name that does not start
# with two dots and end there; no NUL. Written without look-ahead, so that pydantic's regex
# engine, ECMA-262 (the published schema) and schemathesis' generator all read it alike.
_NAME = r"(?:[^/\x00.][^/\x00]*|\.(?:[^/\x00.][^/\x00]*)?|\.\.[^/\x00]+)?"
# A path whose names are none of them '..' and hold no NUL: services.import_service refuses
# those too (for the command line); here they are 422, as the published schema says. Published
# as the pattern, checked by a validator that says what is wrong in words (as BatchName).
IMPORT_PATH_PATTERN = rf"^{_NAME}(?:/{_NAME})*$"
_IMPORT_PATH = re.compile(IMPORT_PATH_PATTERN)


class ImportRequest(BaseModel):
    path: str = Field(
        min_length=1,
        max_length=4096,
        json_schema_extra={"pattern": IMPORT_PATH_PATTERN},
        description="A folder under one of IMPORT_ROOTS: absolute, or relative to a root. No "
        "'..' name and no NUL.",
    )
    batch_name: str = BatchName

    @field_validator("path")
    @classmethod
    def _inside(cls, value: str) -> str:
        if not _IMPORT_PATH.fullmatch(value):
            raise ValueError("must not contain a '..' name (the parent folder) or a NUL character")
        return value

    @field_validator("batch_name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        return _strip_non_blank(value)


class ImportFailure(BaseModel):
    file: str
    reason: str


class ImportResponse(BaseModel):
    """An import's progress. `done` counts files handled (indexed, duplicate or failed) of
    `found`; `files_per_second` is `done` over the time since it started."""

    id: int
    path: str
    batch_id: int | None
    status: str
    found: int
    done: int
    failed: int
    duplicates: int
    refused: int
    files_per_second: float | None
    failures: list[ImportFailure]
    error: str | None
    changed: int = Field(description="Originals whose size or time changed since indexed.")
    missing: int = Field(description="Originals no longer where they were imported from.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, row: FolderImport, sources: dict[str, int]) -> ImportResponse:
        rate = None
        if row.started_at is not None:
            end = row.finished_at or datetime.now(UTC)
            seconds = (end - row.started_at).total_seconds()
            rate = round(row.done / seconds, 2) if seconds > 0 else None
        return cls(
            id=row.id,
            path=row.path,
            batch_id=row.batch_id,
            status=row.status,
            found=row.found,
            done=row.done,
            failed=row.failed,
            duplicates=row.duplicates,
            refused=row.refused,
            files_per_second=rate,
            failures=[ImportFailure(**f) for f in row.failures or []],
            error=row.error,
            changed=sources.get("changed", 0),
            missing=sources.get("missing", 0),
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
        )


class SidecarsResponse(BaseModel):
    """Sidecars written beside the originals: new ones, ones merged into the photographer's
    own, and the photos skipped (with why)."""

    written: int
    merged: int
    skipped: list[ImportFailure]
