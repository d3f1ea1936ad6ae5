"""Tables of one row (the published model, the fitted judge): written in one statement."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Session


def replace_row(session: Session, model: type[DeclarativeBase], values: dict[str, Any]) -> None:
    """Insert or replace the row whose `id` is in `values` (one statement: two writers at once
    both succeed, the last one wins)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(model).values(**values)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["id"],
            set_={key: statement.excluded[key] for key in values if key != "id"},
        )
    )
