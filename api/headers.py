"""Headers: what every response carries, and what a 405 must list."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class NoSniffMiddleware:
    """Adds `X-Content-Type-Options: nosniff` to every HTTP response (pure ASGI: a streamed
    file stays streamed)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).setdefault("X-Content-Type-Options", "nosniff")
            await send(message)

        await self.app(scope, receive, send_with_header)


def _routes(routes: Iterable[BaseRoute]) -> Iterator[Route | APIRoute]:
    """Every route, through included routers (FastAPI keeps an included router whole; ours are
    included without a prefix of their own, so their routes' paths are the full paths)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _routes(inner.routes)
        elif isinstance(route, Route | APIRoute):
            yield route


async def method_not_allowed_handler(request: Request, exc: Exception) -> Response:
    """A 405 lists every method of every route on that path in `Allow` (Starlette lists only
    those of the first route whose path matched: `OPTIONS /images/1` said `GET`, not `DELETE`)."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code != 405:
        # The one handler of other HTTP errors (a full temp folder's 400 becomes a 503).
        from api.errors import http_error_handler

        return await http_error_handler(request, exc)
    methods: set[str] = set()
    for route in _routes(request.app.router.routes):
        match, _ = route.matches(request.scope)
        if match != Match.NONE and route.methods:
            methods |= route.methods
    headers = {"Allow": ", ".join(sorted(methods))} if methods else dict(exc.headers or {})
    return JSONResponse({"detail": exc.detail}, status_code=405, headers=headers)
