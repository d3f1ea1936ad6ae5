"""Entry point: check the port is free, migrate the database, then serve on HOST:PORT."""

from __future__ import annotations

import errno
import logging
import socket
import sys

import uvicorn
from pydantic import ValidationError

from api.slow_clients import head_deadline_protocol
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


def settings_problem(exc: ValidationError) -> str:
    """A settings error as one line: which variable, what is wrong, what was given."""
    parts = []
    for error in exc.errors():
        name = "_".join(str(part) for part in error["loc"]).upper() or "settings"
        given = error.get("input")
        shown = f" (got {given!r})" if isinstance(given, (str, int, float)) else ""
        parts.append(f"{name}: {error['msg']}{shown}")
    return "Invalid setting: " + "; ".join(parts) + " (see example.env)."


def storage_problem(settings: Settings) -> str | None:
    """Why STORAGE_ROOT cannot hold the library (one line), or None when it can."""
    try:
        ensure_storage_dirs(settings)  # the SQLite default lives under the storage root
        probe = settings.incoming_dir / ".pixal-write-check"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return f"STORAGE_ROOT={settings.storage_root} cannot be used ({reason}): pick a folder."
    return None


def exposure_warning(settings: Settings) -> str | None:
    """One line when the server listens beyond this machine without an API key."""
    if settings.api_key is not None or settings.host in {"127.0.0.1", "localhost", "::1"}:
        return None
    return (
        f"HOST={settings.host} serves the local network and API_KEY is not set: anyone on it "
        "can read and delete your photos. Set API_KEY, or HOST=127.0.0.1 for this machine only."
    )


def main(settings: Settings | None = None) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if settings is None:
        try:
            settings = get_settings()
        except ValidationError as exc:
            sys.exit(settings_problem(exc))  # one line on stderr, exit status 1
    problem = port_problem(settings.host, settings.port) or storage_problem(settings)
    if problem is not None:
        sys.exit(problem)  # one line on stderr, exit status 1
    warning = exposure_warning(settings)
    if warning is not None:
        logging.getLogger("run_server").warning(warning)
    upgrade_to_head(settings.resolved_database_url)
    uvicorn.run(
        "api.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        http=head_deadline_protocol(settings.header_timeout_seconds, settings.max_pending_heads),
    )


if __name__ == "__main__":
    main()
