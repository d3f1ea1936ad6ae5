"""Which embedding model is active, as its loader published it (crud.crud_model).

Readers never work the id out from their own settings: the process that embeds resolved the
device, decided the precision and maybe fell back to the offline encoder, and stamps its
vectors with the id it published (services.background.model_publisher)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from crud import crud_model
from crud.crud_model import PublishedModel
from services.errors import Unavailable


def published_model(session: Session) -> PublishedModel | None:
    """What the process that embeds published, or None before it has loaded anything."""
    return crud_model.published_model(session)


def published_model_id(session: Session) -> str | None:
    """The id current vectors carry, or None (no model loaded yet, or none could load)."""
    published = crud_model.published_model(session)
    return published.model_id if published is not None else None


def active_model_id(session: Session) -> str:
    """The id current vectors carry; 503 while no model is loaded or none could load."""
    published = crud_model.published_model(session)
    if published is None:
        raise Unavailable("The embedding model is still loading; try again shortly.")
    if published.model_id is None:
        raise Unavailable(
            "No embedding model could be loaded: "
            f"{published.fallback_reason or 'see the server log'}."
        )
    return published.model_id
