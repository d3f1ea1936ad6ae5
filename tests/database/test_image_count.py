"""The image count (`X-Total-Count` of GET /images/): exact, and read without a scan of images."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, event, func, insert, select
from sqlalchemy.orm import Session

from crud import crud_image
from database.models import Image


def _rows(first: int, count: int) -> list[dict[str, object]]:
    return [
        {
            "filename": f"c{n}.jpg",
            "original_filename": f"c{n}.jpg",
            "file_path": f"images/c{n}.jpg",
            "image_hash": f"{n:064x}",
            "file_size": 1,
            "mime_type": "image/jpeg",
        }
        for n in range(first, first + count)
    ]


def _scanned(db: Session) -> int:
    return int(db.scalar(select(func.count()).select_from(Image)) or 0)


def test_the_count_follows_inserts_deletes_and_rolled_back_savepoints(db: Session) -> None:
    start = crud_image.count_images(db)
    db.execute(insert(Image), _rows(0, 250))  # executemany: several statements
    db.execute(insert(Image), _rows(250, 1))
    assert crud_image.count_images(db) == _scanned(db) == start + 251

    savepoint = db.begin_nested()
    db.execute(insert(Image), _rows(1000, 40))
    db.execute(delete(Image).where(Image.filename.in_(["c0.jpg", "c1.jpg"])))
    assert crud_image.count_images(db) == start + 289
    savepoint.rollback()
    assert crud_image.count_images(db) == _scanned(db) == start + 251

    db.execute(delete(Image).where(Image.filename.like("c1%")))
    db.execute(delete(Image).where(Image.filename == "no such file"))  # deletes nothing
    assert crud_image.count_images(db) == _scanned(db)


def _tables_read(db: Session) -> set[str]:
    """The tables read by the plans of the statements `crud_image.count_images` executes."""
    connection = db.connection()
    executed: list[tuple[str, Any]] = []

    def remember(*args: Any) -> None:
        executed.append((args[2], args[3]))  # (conn, cursor, statement, parameters, ...)

    event.listen(connection, "before_cursor_execute", remember)
    try:
        crud_image.count_images(db)
    finally:
        event.remove(connection, "before_cursor_execute", remember)
    found: set[str] = set()
    for statement, parameters in executed:
        if db.get_bind().dialect.name == "postgresql":
            explain = f"EXPLAIN (FORMAT JSON) {statement}"
            [[plan]] = connection.exec_driver_sql(explain, parameters).all()
            found |= _relations(plan[0]["Plan"])
        else:
            rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            found |= {word.split(".")[-1] for row in rows for word in str(row[-1]).split()}
    return found


def _relations(node: dict[str, Any]) -> set[str]:
    found = {str(node["Relation Name"])} if "Relation Name" in node else set()
    for child in node.get("Plans", []):
        found |= _relations(child)
    return found


def test_the_count_never_reads_the_images_table(db: Session) -> None:
    db.execute(insert(Image), _rows(0, 50))
    tables = _tables_read(db)
    assert "image_count" in tables or "images" in tables, tables  # the plan was read
    assert "images" not in tables
