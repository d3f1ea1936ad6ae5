"""Check before you write: what a request may send is decided before its body is read.

FastAPI parses a multipart body (spooling each file to the temp folder) before any dependency
runs: a 300 MB upload without an API key was written in full, then answered 401. This pure ASGI
middleware answers from the headers alone (wrong or missing key: 401; a `Content-Length` over
the request limit: 413), and while the body streams in it counts the whole body and each part
of a multipart body, stopping at the first byte over a limit (413). It reads nothing itself:
the counting happens as the application receives each chunk.
"""

from __future__ import annotations

import json
import secrets
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
    """401/413 from the headers before a body is read; body and part sizes bounded while
    streaming. `api_key` None means no key is required."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_key: str | None,
        max_request_bytes: int,
        max_part_bytes: int,
        protected_prefixes: tuple[str, ...] = ("/images", "/batches"),
    ) -> None:
        self.app = app
        self.api_key = api_key
        self.max_request_bytes = max_request_bytes
        self.max_part_bytes = max_part_bytes
        self.protected_prefixes = protected_prefixes

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
        await self.app(scope, counter.wrap(receive), send)

    def _request_too_large(self) -> str:
        return (
            f"The request is larger than the limit of {self.max_request_bytes} bytes "
            "(MAX_REQUEST_BYTES); send fewer files per request."
        )


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
