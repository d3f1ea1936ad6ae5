"""Check before you write: what a request may send is decided before its body is read.

FastAPI parses a multipart body (spooling each file to the temp folder) before any dependency
runs: a 300 MB upload without an API key was written in full, then answered 401. This pure ASGI
middleware answers from the headers alone (wrong or missing key: 401; a `Content-Length` over
the request limit: 413), and while the body streams in it counts the whole body and each part
of a multipart body, stopping at the first byte over a limit (413). It reads nothing itself:
the counting happens as the application receives each chunk. A body that arrives slower than
a minimum rate is answered 408 and its connection closed (`BodyPace`), so slow clients cannot
hold connections for as long as they like (issue 18; slow request heads: api/slow_clients.py).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import python_multipart
from fastapi import HTTPException
from python_multipart.multipart import parse_options_header
from starlette.requests import HTTPConnection

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Requests that carry a body; the routes' own dependency still checks every request.
_BODY_METHODS = {"POST", "PUT", "PATCH"}
UNAUTHORIZED = "Missing or wrong API key: send it as X-API-Key or a Bearer token."


def offered_api_key(headers: Any) -> str | None:
    """The key a request offers: X-API-Key, else an `Authorization: Bearer` token."""
    key: str | None = headers.get("x-api-key")
    if key is not None:
        return key
    scheme, _, credentials = (headers.get("authorization") or "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None


def api_key_matches(offered: str | None, expected: str) -> bool:
    return offered is not None and secrets.compare_digest(offered.encode(), expected.encode())


class RequestGuard:
    """401/413 from the headers before a body is read; body and part sizes bounded, and its
    pace kept, while streaming. `api_key` None means no key is required."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_key: str | None,
        max_request_bytes: int,
        max_part_bytes: int,
        body_pace: BodyPace,
        protected_prefixes: tuple[str, ...] = ("/images", "/batches"),
    ) -> None:
        self.app = app
        self.api_key = api_key
        self.max_request_bytes = max_request_bytes
        self.max_part_bytes = max_part_bytes
        self.protected_prefixes = protected_prefixes
        self.body_pace = body_pace

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = HTTPConnection(scope).headers
        if self.api_key is not None and scope["path"].startswith(self.protected_prefixes):
            if not api_key_matches(offered_api_key(headers), self.api_key):
                await _answer(send, 401, UNAUTHORIZED, {"WWW-Authenticate": "Bearer"})
                return
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_request_bytes:
            await _answer(send, 413, self._request_too_large())
            return
        counter = _BodyCounter(self, headers.get("content-type", ""))
        paced = _PacedBody(self.body_pace, receive)
        try:
            await self.app(scope, counter.wrap(paced.receive), send)
        finally:
            paced.release()

    def _request_too_large(self) -> str:
        return (
            f"The request is larger than the limit of {self.max_request_bytes} bytes "
            "(MAX_REQUEST_BYTES); send fewer files per request."
        )


class BodyPace:
    """A body keeps up `min_rate` bytes/s on average, over the time spent waiting for it (not
    the time the application spends between reads), with `grace` seconds of credit; else 408
    and the connection closes. A request is behind when it has used more than a second of
    that credit; at most `max_behind` requests may be behind at once (one more: 408 at once),
    so slow bodies hold a bounded number of connections."""

    def __init__(self, min_rate: float, grace: float, max_behind: int) -> None:
        self.min_rate = min_rate
        self.grace = grace
        self.max_behind = max_behind
        self.behind = 0

    def too_slow(self) -> HTTPException:
        return HTTPException(
            408,
            f"The request body arrived too slowly (under {self.min_rate:g} bytes/s once "
            f"{self.grace:g} s of waiting were spent, BODY_MIN_BYTES_PER_SECOND and "
            "BODY_GRACE_SECONDS); send it again on a faster connection.",
            headers={"Connection": "close"},  # what is left of the body is not read
        )


# Waiting up to this much longer than the body's pace has earned is not yet "behind": a chunk
# can take a moment to come over a busy network or a busy event loop.
_BEHIND_AFTER_SECONDS = 1.0
# The shortest wait for a chunk, so that one already there is always taken.
_MIN_WAIT_SECONDS = 0.01


class _PacedBody:
    """One request's body under a `BodyPace`: `receive` with a deadline on each chunk."""

    def __init__(self, pace: BodyPace, receive: Receive) -> None:
        self.pace = pace
        self.upstream = receive
        self.waited = 0.0
        self.received = 0
        self.complete = False
        self.behind = False

    async def receive(self) -> Message:
        if self.complete:
            return await self.upstream()  # e.g. a streaming answer listening for a disconnect
        pending = asyncio.ensure_future(self.upstream())
        began = time.monotonic()
        try:
            while True:
                credit = self.pace.grace if self.behind else _BEHIND_AFTER_SECONDS
                left = self.received / self.pace.min_rate + credit - self.waited
                left -= time.monotonic() - began
                done, _ = await asyncio.wait({pending}, timeout=max(left, _MIN_WAIT_SECONDS))
                if done:
                    break
                if self.behind or self.pace.behind >= self.pace.max_behind:
                    raise self.pace.too_slow()
                self.behind = True
                self.pace.behind += 1
        finally:
            if not pending.done():
                pending.cancel()
            self.waited += time.monotonic() - began
        message = pending.result()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            self.complete = not message.get("more_body", False)
        else:
            self.complete = True  # http.disconnect
        earned = self.received / self.pace.min_rate + _BEHIND_AFTER_SECONDS
        if self.complete or self.waited <= earned:
            self.release()  # caught up
        return message

    def release(self) -> None:
        if self.behind:
            self.behind = False
            self.pace.behind -= 1


class _BodyCounter:
    """Counts a body as the application receives it; raises a 413 at the first byte over."""

    def __init__(self, guard: RequestGuard, content_type: str) -> None:
        self.guard = guard
        self.total = 0
        self.part = 0
        self.parser: python_multipart.MultipartParser | None = None
        kind, options = parse_options_header(content_type)
        boundary = options.get(b"boundary")
        if kind == b"multipart/form-data" and boundary:
            self.parser = python_multipart.MultipartParser(
                boundary,
                {"on_part_begin": self._part_begins, "on_part_data": self._part_data},
            )

    def wrap(self, receive: Receive) -> Receive:
        async def counted() -> Message:
            message = await receive()
            body = message.get("body", b"") if message["type"] == "http.request" else b""
            if body:
                self.total += len(body)
                if self.total > self.guard.max_request_bytes:
                    raise HTTPException(413, self.guard._request_too_large())
                if self.parser is not None:
                    try:
                        self.parser.write(body)
                    except python_multipart.exceptions.MultipartParseError:
                        self.parser = None  # malformed: the application's parser says so
            return message

        return counted

    def _part_begins(self) -> None:
        self.part = 0

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self.part += end - start
        if self.part > self.guard.max_part_bytes:
            raise HTTPException(
                413,
                f"A file is larger than the limit of {self.guard.max_part_bytes} bytes "
                "(MAX_UPLOAD_BYTES).",
            )


async def _answer(
    send: Send, status: int, detail: str, headers: dict[str, str] | None = None
) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    # The body is not read: the connection cannot be reused, so the client is told to close.
    raw.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
