"""The spool an upload is written into once: what lands on disk, its hash, and cleanup."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from starlette.datastructures import UploadFile

from tests.factories import jpeg_bytes
from utils.file_handling import HashingSpool


def test_a_spool_written_through_starlette_holds_the_file_and_its_hash(tmp_path: Path) -> None:

    data = jpeg_bytes((900, 700), seed=3, quality=98) * 3
    spool = HashingSpool(tmp_path, flush_bytes=64 * 1024)
    upload = UploadFile(spool)  # type: ignore[arg-type]
    upload._max_mem_size = spool.flush_bytes

    async def stream() -> None:
        for start in range(0, len(data), 10_000):
            await upload.write(data[start : start + 10_000])
        await upload.seek(0)

    asyncio.run(stream())
    assert 0 < spool.path.stat().st_size < len(data)  # full blocks written, the tail not yet
    spooled = spool.finish()
    assert spooled.path == spool.path
    assert spooled.path.read_bytes() == data
    assert (spooled.size, spooled.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    moved = tmp_path / "kept.jpg"
    spooled.path.rename(moved)
    spool.close()  # the end of the request: the moved file stays
    assert list(tmp_path.iterdir()) == [moved]


def test_a_spool_closed_before_it_is_finished_leaves_no_file(tmp_path: Path) -> None:

    spool = HashingSpool(tmp_path, flush_bytes=1024)
    spool.write(b"x" * 5000)
    assert spool.path.is_file()
    spool.close()
    assert list(tmp_path.iterdir()) == []
