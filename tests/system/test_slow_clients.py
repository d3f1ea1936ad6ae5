"""Slow clients against a real `run_server.py`: a request head must arrive within
HEADER_TIMEOUT_SECONDS, the connections still sending one are bounded (so are the server's
file descriptors), and a body slower than BODY_MIN_BYTES_PER_SECOND is answered 408 JSON and
its connection closed, with at most MAX_SLOW_BODIES behind that pace at once (issue 18)."""

from __future__ import annotations

import json
import os
import select
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from tests.conftest import truncate_all
from tests.system.conftest import ServerProcess, free_port, server_env

pytestmark = [pytest.mark.slow, pytest.mark.one_database]

HEADER_TIMEOUT = 3
MAX_PENDING_HEADS = 8
BODY_GRACE = 10
MAX_SLOW_BODIES = 2
# Generous: what is asserted is that the server closes, not how fast.
BOUND = 90.0


@pytest.fixture(scope="module")
def server(
    database_url: str,
    engine: Engine,
    tmp_path_factory: pytest.TempPathFactory,
    tiny_dinov3_dir: Path,
) -> Iterator[ServerProcess]:
    """`python run_server.py` (it serves uvicorn with the head deadline), one per module."""
    tmp_path = tmp_path_factory.mktemp("slow-clients")
    truncate_all(engine)
    port = free_port()
    env = server_env(
        database_url,
        tmp_path / "assets",
        tiny_dinov3_dir,
        HOST="127.0.0.1",
        PORT=str(port),
        HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
        MAX_PENDING_HEADS=str(MAX_PENDING_HEADS),
        BODY_GRACE_SECONDS=str(BODY_GRACE),
        MAX_SLOW_BODIES=str(MAX_SLOW_BODIES),
    )
    process = ServerProcess(
        env=env,
        log_path=tmp_path / "server.log",
        port=port,
        command=[sys.executable, "run_server.py"],
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()
        truncate_all(engine)


def connect(server: ServerProcess, first: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=BOUND)
    sock.sendall(first)
    return sock


def slow_body(server: ServerProcess, length: int = 1000) -> socket.socket:
    head = (
        "POST /batches/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    )
    return connect(server, head.encode() + b"{")


def closed(sock: socket.socket) -> bool:
    """Whether the server has closed `sock` (end of stream or reset), without waiting; for a
    socket the server sends nothing else on (what it sends is read and dropped)."""
    if not select.select([sock], [], [], 0)[0]:
        return False
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


def answer_then_close(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (BOUND at most)."""
    answer = b""
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        if not select.select([sock], [], [], deadline - time.monotonic())[0]:
            break
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            return answer
        answer += data
    raise AssertionError(f"not closed within {BOUND} s; received {answer!r}")


def open_fds(server: ServerProcess) -> int:
    assert server.process is not None
    return len(os.listdir(f"/proc/{server.process.pid}/fd"))


def test_a_slow_head_is_closed_while_a_normal_request_answers(server: ServerProcess) -> None:
    # Each sends a header line every half second: alive, but never done with its head.
    slow = [connect(server, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n") for _ in range(4)]
    assert httpx.get(f"{server.url}/", timeout=BOUND).status_code == 200
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline and not all(closed(sock) for sock in slow):
        for sock in slow:
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except OSError:
                pass  # closed by the server
        time.sleep(0.5)
    assert all(closed(sock) for sock in slow), "a slow head was held past the bound"
    for sock in slow:
        sock.close()


def test_connections_sending_a_head_are_bounded(server: ServerProcess) -> None:
    before = open_fds(server)
    slow = [connect(server, b"GET / HTTP/1.1\r\n") for _ in range(10 * MAX_PENDING_HEADS)]
    # Answered after the server has taken every connection above: by then it has closed all
    # but the newest of those still sending a head (twice MAX_PENDING_HEADS for a burst
    # younger than a second, so that a real client's head in the burst gets read).
    assert httpx.get(f"{server.url}/", timeout=BOUND).status_code == 200
    during = open_fds(server)
    held = sum(not closed(sock) for sock in slow)
    for sock in slow:
        sock.close()
    assert held <= 2 * MAX_PENDING_HEADS
    # A few descriptors of the server's own (a log, a database connection) may come and go.
    assert during <= before + 2 * MAX_PENDING_HEADS + 4, (before, during)


def test_a_body_left_unread_by_the_answer_is_not_drained_forever(server: ServerProcess) -> None:
    # `POST /batches` (no slash) is redirected without reading the body; the client goes on.
    head = b"POST /batches HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n"
    sock = connect(server, head)
    deadline = time.monotonic() + BOUND
    answer = b""
    ended = False
    while not ended and time.monotonic() < deadline:
        try:
            sock.sendall(b" ")
            if select.select([sock], [], [], 0.5)[0]:
                data = sock.recv(65536)
                answer += data
                ended = not data
        except OSError:
            ended = True  # reset
    sock.close()
    assert answer.startswith(b"HTTP/1.1 307"), answer
    assert ended, "the unread body was drained past the bound"


def test_a_slow_body_is_answered_408_and_closed(server: ServerProcess) -> None:
    sock = slow_body(server)
    deadline = time.monotonic() + BOUND
    answer = b""
    while time.monotonic() < deadline:
        try:
            sock.sendall(b" ")  # 2 bytes/s, a long way under 1024
        except OSError:
            break
        if select.select([sock], [], [], 0.5)[0]:
            answer += sock.recv(65536)
            break
    answer += answer_then_close(sock)
    sock.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer
    assert b"connection: close" in head.lower()
    assert "BODY_MIN_BYTES_PER_SECOND" in json.loads(body)["detail"]


def test_slow_bodies_are_bounded_and_a_normal_body_still_passes(server: ServerProcess) -> None:
    slow = [slow_body(server) for _ in range(MAX_SLOW_BODIES + 4)]
    # Those behind the pace over MAX_SLOW_BODIES are answered once behind (a second), not
    # after the grace: four answers come while MAX_SLOW_BODIES connections are still held.
    answered: list[bytes] = []
    waiting = list(slow)
    deadline = time.monotonic() + BOUND
    while len(answered) < 4 and time.monotonic() < deadline:
        for sock in select.select(waiting, [], [], deadline - time.monotonic())[0]:
            answered.append(answer_then_close(sock))
            waiting.remove(sock)
    assert len(answered) == 4, answered
    assert all(answer.startswith(b"HTTP/1.1 408") for answer in answered)
    assert not select.select(waiting, [], [], 0)[0]  # the held ones: nothing yet
    body = {"name": "on time", "image_ids": []}
    created = httpx.post(f"{server.url}/batches/", json=body, timeout=BOUND)
    assert created.status_code == 201, created.text
    # The held ones get theirs once the grace is spent.
    assert all(answer_then_close(sock).startswith(b"HTTP/1.1 408") for sock in waiting)
    for sock in slow:
        sock.close()
