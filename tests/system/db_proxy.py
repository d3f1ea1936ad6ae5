"""A TCP proxy between a server process and PostgreSQL that a test can cut and restore.

A database outage without stopping the shared PostgreSQL: `cut()` closes every forwarded
connection and refuses new ones (the client sees "connection refused" / "server closed the
connection unexpectedly", as when the database goes down); `restore()` forwards again.
Threads, one pair per connection: a handful of pooled connections is all it carries.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import suppress

from sqlalchemy.engine import make_url


class DatabaseProxy:
    """Listens on 127.0.0.1:<free port> and forwards to `target_host:target_port`."""

    def __init__(self, target_host: str = "127.0.0.1", target_port: int = 5432) -> None:
        self._target = (target_host, target_port)
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._cut = False
        self._stalled = threading.Event()
        self._closed = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name="db-proxy", daemon=True)
        self._thread.start()

    @classmethod
    def for_url(cls, url: str) -> DatabaseProxy:
        parsed = make_url(url)
        return cls(parsed.host or "127.0.0.1", parsed.port or 5432)

    def url_through(self, url: str) -> str:
        """`url` with its host and port replaced by the proxy's."""
        proxied = make_url(url).set(host="127.0.0.1", port=self.port)
        return proxied.render_as_string(hide_password=False)

    def cut(self) -> None:
        """Drop every connection now and refuse new ones until `restore()`."""
        with self._lock:
            self._cut = True
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            _close(sock)

    def restore(self) -> None:
        with self._lock:
            self._cut = False
        self._stalled.clear()

    def stall(self) -> None:
        """Stop forwarding without closing anything, as a silent network partition does: bytes
        and new connections are held (no RST, no FIN) until `restore()`."""
        self._stalled.set()

    def _hold_while_stalled(self) -> None:
        while self._stalled.is_set() and not self._closed:
            time.sleep(0.05)

    def close(self) -> None:
        self._closed = True
        self.cut()
        _close(self._listener)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                refuse = self._cut
            if refuse:
                # Closed at once, as a refused connection looks to the driver.
                _close(client)
                continue
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        self._hold_while_stalled()  # accepted, then silence: a SYN-ACK and nothing after it
        try:
            upstream = socket.create_connection(self._target, timeout=5)
            upstream.settimeout(None)
        except OSError:
            _close(client)
            return
        with self._lock:
            if self._cut:
                _close(client)
                _close(upstream)
                return
            self._open.update((client, upstream))
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                self._hold_while_stalled()
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(source)
                self._open.discard(sink)
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with suppress(OSError):
        sock.close()
