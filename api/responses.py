"""Responses for stored files that a concurrent delete may remove."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, BinaryIO

import anyio
from starlette.responses import FileResponse
from starlette.types import Receive, Scope, Send


class OpenedFileResponse(FileResponse):
    """A FileResponse over a file opened before the response starts (Range requests and all).

    Starlette's FileResponse opens its path only after it has sent the headers: a delete that
    removes the file in between cuts the answer short. An open descriptor still reads a file
    that has been unlinked, so the whole file is sent; a file already gone was a 404."""

    def __init__(self, file: BinaryIO, **kwargs: Any) -> None:
        super().__init__(file.name, stat_result=os.fstat(file.fileno()), **kwargs)
        self._file = file

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._file.close()

    @asynccontextmanager
    async def _open_file(self) -> AsyncIterator[anyio.AsyncFile[bytes]]:
        self._file.seek(0)
        yield anyio.wrap_file(self._file)
