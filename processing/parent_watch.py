"""For a worker process the server spawned: end it when the server is gone."""

from __future__ import annotations

import multiprocessing
import os
import threading


def exit_with_parent() -> None:
    """In a spawned process: exit as soon as the parent process is gone, however it ended (a
    SIGKILL runs no shutdown, and an idle worker would otherwise wait for work forever)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
