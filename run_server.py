"""Entry point: migrate the database to the latest schema, then serve on 0.0.0.0:8000."""

from __future__ import annotations

import logging
import os

import uvicorn

from config import get_settings
from database.migrations import upgrade_to_head
from utils.file_handling import ensure_storage_dirs


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = get_settings()
    ensure_storage_dirs(settings)  # the SQLite default lives under the storage root
    upgrade_to_head(settings.resolved_database_url)
    uvicorn.run(
        "api.main:create_app",
        factory=True,
        host=os.environ.get("HOST", "0.0.0.0"),
        port=int(os.environ.get("PORT", "8000")),
    )


if __name__ == "__main__":
    main()
