"""The published embedding model (one row, `active_model`): written by the process that loads
the model, read by everyone else."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from crud.single_row import replace_row
from database.models import ActiveModel, utcnow

_ROW_ID = 1


@dataclass(frozen=True, slots=True)
class PublishedModel:
    """What the loader says about the model it embeds with."""

    model_id: str | None
    configured_model: str
    device: str
    fallback_reason: str | None = None
    loaded_at: datetime | None = None


def publish_model(session: Session, model: PublishedModel) -> None:
    """Insert or replace the row (one statement: two workers publishing at once both succeed,
    the last one wins; they run the same configuration)."""
    values = asdict(model) | {"id": _ROW_ID, "loaded_at": model.loaded_at or utcnow()}
    replace_row(session, ActiveModel, values)


def published_model(session: Session) -> PublishedModel | None:
    """The published model, or None while no process has loaded one yet."""
    row = session.scalar(select(ActiveModel).where(ActiveModel.id == _ROW_ID))
    if row is None:
        return None
    return PublishedModel(
        row.model_id, row.configured_model, row.device, row.fallback_reason, row.loaded_at
    )
