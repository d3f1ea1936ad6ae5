"""Entry point: check the port is free, migrate the database, then serve on HOST:PORT."""

from __future__ import annotations

import errno
import logging
import socket
import sys

import uvicorn

from config import Settings, get_settings
from database.migrations import upgrade_to_head
from utils.file_handling import ensure_storage_dirs


def port_problem(host: str, port: int) -> str | None:
    """Why HOST:PORT cannot be served (one line), or None when it is free."""
    # Bound and released at once: migrations and model loading take seconds, and a busy port
    # must be said before them, not buried after them. uvicorn binds with SO_REUSEADDR too.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:
        other = f"PORT={port + 1} make run (or PORT= in .env)"
        if exc.errno == errno.EADDRINUSE:
            return (
                f"Port {port} on {host} is already in use by another program: stop it, "
                f"or pick another port, e.g. {other}."
            )
        if exc.errno == errno.EACCES:
            return f"Port {port} needs privileges on this system: pick another, e.g. {other}."
        return f"Cannot listen on {host}:{port} ({exc.strerror or exc}): check HOST and PORT."
    return None


def main(settings: Settings | None = None) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = settings or get_settings()
    problem = port_problem(settings.host, settings.port)
    if problem is not None:
        sys.exit(problem)  # one line on stderr, exit status 1
    ensure_storage_dirs(settings)  # the SQLite default lives under the storage root
    upgrade_to_head(settings.resolved_database_url)
    uvicorn.run("api.main:create_app", factory=True, host=settings.host, port=settings.port)


if __name__ == "__main__":
    main()
