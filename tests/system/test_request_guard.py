"""Check before you write, against a real server: a refused upload is refused from its headers
(or at the first byte over a limit), and what the server wrote meanwhile is measured from
/proc/PID/io (wchar: every byte it passed to write(), the temp folder's spooled files
included)."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import Engine

from tests.conftest import truncate_all
from tests.factories import jpeg_bytes
from tests.system.conftest import ServerProcess, server_env

KEY = "guard-test-key"
MB = 1024 * 1024
MAX_UPLOAD = 4 * MB
MAX_REQUEST = 12 * MB
BOUNDARY = "pixalboundary"


@pytest.fixture(scope="module")
def guarded(
    database_url: str,
    engine: Engine,
    tmp_path_factory: pytest.TempPathFactory,
    tiny_dinov3_dir: Path,
) -> Iterator[ServerProcess]:
    """One server for the module (it starts in about a minute on a loaded machine)."""
    tmp_path = tmp_path_factory.mktemp("guarded")
    truncate_all(engine)
    env = server_env(
        database_url,
        tmp_path / "assets",
        tiny_dinov3_dir,
        API_KEY=KEY,
        MAX_UPLOAD_BYTES=str(MAX_UPLOAD),
        MAX_REQUEST_BYTES=str(MAX_REQUEST),
    )
    process = ServerProcess(env=env, log_path=tmp_path / "server.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()
        truncate_all(engine)


def written_bytes(server: ServerProcess) -> int:
    assert server.process is not None
    for line in Path(f"/proc/{server.process.pid}/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise KeyError("wchar")


def file_part(name: str, size: int) -> bytes:
    return data_part(name, b"\xff" * size)


def data_part(name: str, data: bytes) -> bytes:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    return head + data + b"\r\n"


def multipart(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def send(
    server: ServerProcess, body: bytes, headers: dict[str, str], chunked: bool = False
) -> tuple[int, bytes, int]:
    """POST /images/upload over a raw socket, the whole body sent as a client would (even
    after the server has answered); the status, the answer, and the bytes the server wrote."""
    before = written_bytes(server)
    lines = [
        "POST /images/upload HTTP/1.1",
        f"Host: 127.0.0.1:{server.port}",
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}",
        "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=120) as sock:
        sock.sendall(head)

        def push() -> None:
            try:
                for start in range(0, len(body), 256 * 1024):
                    chunk = body[start : start + 256 * 1024]
                    sock.sendall(
                        f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk
                    )
                if chunked:
                    sock.sendall(b"0\r\n\r\n")
            except OSError:
                pass  # the server answered and closed: the rest is not wanted

        sender = threading.Thread(target=push, daemon=True)
        sender.start()
        answer = b""
        while b"\r\n\r\n" not in answer or not _complete(answer):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
        sender.join(120)
    status = int(answer.split(b" ", 2)[1])
    return status, answer.split(b"\r\n\r\n", 1)[1], written_bytes(server) - before


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def test_an_upload_without_the_key_is_401_before_its_body_is_written(
    guarded: ServerProcess,
) -> None:
    status, answer, written = send(guarded, multipart(file_part("big.jpg", 10 * MB)), {})
    assert status == 401
    assert b"API key" in answer
    assert written <= MB


def test_a_request_over_the_limit_is_413_from_its_content_length(guarded: ServerProcess) -> None:
    body = multipart(*(file_part(f"{n}.jpg", 3 * MB) for n in range(5)))  # 15 MB > 12 MB
    status, answer, written = send(guarded, body, {"X-API-Key": KEY})
    assert status == 413
    assert b"MAX_REQUEST_BYTES" in answer
    assert written <= MB


def test_a_chunked_body_is_counted_as_it_streams(guarded: ServerProcess) -> None:
    body = multipart(*(file_part(f"{n}.jpg", 3 * MB) for n in range(5)))
    status, answer, written = send(guarded, body, {"X-API-Key": KEY}, chunked=True)
    assert status == 413
    assert b"MAX_REQUEST_BYTES" in answer
    assert written <= MAX_REQUEST + MB


def test_a_file_over_its_limit_is_stopped_while_streaming(guarded: ServerProcess) -> None:
    body = multipart(file_part("small.jpg", MB), file_part("huge.jpg", 10 * MB))
    status, answer, written = send(guarded, body, {"X-API-Key": KEY})
    assert status == 413
    assert b"MAX_UPLOAD_BYTES" in answer
    assert written <= MB + MAX_UPLOAD + MB  # the first file, the limit, a chunk


def test_an_upload_with_the_key_still_works(guarded: ServerProcess) -> None:
    files = [("files", ("ok.jpg", jpeg_bytes(seed=3), "image/jpeg"))]
    response = httpx.post(
        f"{guarded.url}/images/upload", files=files, headers={"X-API-Key": KEY}, timeout=60
    )
    assert response.status_code == 200, response.text
    bearer = httpx.post(
        f"{guarded.url}/images/upload",
        files=[("files", ("ok2.jpg", jpeg_bytes(seed=4), "image/jpeg"))],
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=60,
    )
    assert bearer.status_code == 200, bearer.text


def noise_jpeg(seed: int, size: tuple[int, int] = (1400, 1000)) -> bytes:
    """A valid JPEG of about 1.6 MB: noise does not compress."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), np.uint8)
    out = io.BytesIO()
    PILImage.fromarray(pixels).save(out, "JPEG", quality=95)
    return out.getvalue()


def incoming_files(server: ServerProcess) -> list[Path]:
    return list((Path(server.env["STORAGE_ROOT"]) / "incoming").iterdir())


def test_an_upload_is_written_once(guarded: ServerProcess) -> None:
    data = noise_jpeg(seed=7)
    assert MB < len(data) < MAX_UPLOAD
    body = multipart(data_part("noise.jpg", data))
    status, answer, written = send(guarded, body, {"X-API-Key": KEY})
    assert status == 200, answer
    # Once into incoming/ (then renamed); copied a second time it would be 2x. The rest is
    # the answer, a log line, and perhaps the worker's thumbnail.
    assert written < 1.3 * len(data)
    stored = Path(guarded.env["STORAGE_ROOT"]) / json.loads(answer)[0]["file_path"]
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()


def test_an_aborted_upload_leaves_no_file(guarded: ServerProcess) -> None:
    body = multipart(file_part("cut.jpg", 3 * MB))
    head = (
        "POST /images/upload HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{guarded.port}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(body)}\r\nX-API-Key: {KEY}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=120) as sock:
        sock.sendall(head + body[: 2 * MB])
        deadline = time.monotonic() + 60
        while not incoming_files(guarded) and time.monotonic() < deadline:
            time.sleep(0.05)  # the spool exists while the body streams in
        assert incoming_files(guarded), "the upload was not being written into incoming/"
    deadline = time.monotonic() + 60
    while incoming_files(guarded) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert incoming_files(guarded) == []
