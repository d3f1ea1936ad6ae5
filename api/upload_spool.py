"""Uploads written once: each file of a multipart body goes straight into `incoming/`, hashed
as it arrives, and the service takes that file as it is (issue 22).

Starlette's parser spools each file to a temporary file of its own (in memory, then in the
temp folder), which the service then copied into `incoming/` while hashing it: every byte was
written twice. Here the parser is Starlette's, with each file part's temporary file replaced
by a `HashingSpool` in `incoming/`. The request guard (api/guards.py) has already checked the
API key and the declared size before the body is read, and counts each part as it streams.
A failed or aborted body closes every spool, which deletes its file; so does the end of the
request for any file the service did not move on.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from contextlib import aclosing
from pathlib import Path
from typing import Any, BinaryIO, cast

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.formparsers import MultiPartException, MultiPartParser

from utils.file_handling import HashingSpool, check_storage, storage_dirs


class _SpoolingParser(MultiPartParser):
    """Starlette's multipart parser, each file part written to a `HashingSpool`."""

    def __init__(self, directory: Path, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.directory = directory

    def on_headers_finished(self) -> None:
        super().on_headers_finished()
        upload = self._current_part.file
        if upload is None:
            return
        # Starlette made an in-memory SpooledTemporaryFile for this part; nothing was written
        # to it yet. Opening the spool is one syscall on the event loop.
        self._files_to_close_on_error.pop().close()
        spool = HashingSpool(self.directory)
        self._files_to_close_on_error.append(cast("Any", spool))
        upload.file = cast("BinaryIO", spool)
        upload._max_mem_size = spool.flush_bytes  # writes that fill a block go to the pool


class _SpoolingRequest(Request):
    async def _get_form(
        self,
        *,
        max_files: int | float = 1000,
        max_fields: int | float = 1000,
        max_part_size: int = 1024 * 1024,
    ) -> FormData:
        content_type, _ = parse_options_header(self.headers.get("Content-Type"))
        if self._form is not None or content_type != b"multipart/form-data":
            return await super()._get_form(
                max_files=max_files, max_fields=max_fields, max_part_size=max_part_size
            )
        settings = self.app.state.settings
        # Refused before any byte is written (a StorageUnavailable becomes a 503, api/errors).
        await run_in_threadpool(
            check_storage, storage_dirs(settings), settings.storage_min_free_bytes, remake=True
        )
        try:
            async with aclosing(self.stream()) as stream:
                parser = _SpoolingParser(
                    settings.incoming_dir,
                    self.headers,
                    stream,
                    max_files=max_files,
                    max_fields=max_fields,
                    max_part_size=max_part_size,
                )
                self._form = await parser.parse()
        except MultiPartException as exc:
            raise HTTPException(status_code=400, detail=exc.message) from exc
        return self._form


class SpoolingRoute(APIRoute):
    """A route whose multipart files are written once, into `incoming/` (module docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def spooling_handler(request: Request) -> Response:
            return await handler(_SpoolingRequest(request.scope, request.receive))

        return spooling_handler
