"""The thread that finishes imports a crashed process left unfinished.

At start-up a server alone on its storage takes over every unfinished import at once; then,
every half IMPORT_STALE_SECONDS, any server takes over an import whose heartbeat is older than
that (its process died while another server, sharing the database, kept running).
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.orm import Session, sessionmaker

from services import import_service
from services.import_service import ImportSettings

logger = logging.getLogger(__name__)


class ImportWatch:
    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: ImportSettings,
        stale_seconds: float,
        alone: bool,
    ) -> None:
        self._factory = factory
        self._settings = settings
        self._stale = stale_seconds
        self._alone = alone
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="import-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop looking; an import being finished goes on until the process ends (its
        heartbeat then stops, and it is resumed where it stood)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        stale = 0.0 if self._alone else self._stale
        while not self._stop.is_set():
            try:
                import_service.resume_stale_imports(self._factory, self._settings, stale)
            except Exception:
                logger.exception("looking for unfinished imports failed; trying again later")
            stale = self._stale
            self._stop.wait(self._stale / 2)
