"""Small request helpers shared by the API tests."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient


@contextmanager
def tmpfs_at(directory: Path, size_mb: int) -> Iterator[Path]:
    """`directory` on its own tmpfs of `size_mb` (needs the right to mount; skips otherwise)."""
    directory.mkdir(parents=True, exist_ok=True)
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(directory)]
    if subprocess.run(mount, capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=True)


def upload(client: TestClient, files: list[tuple[str, bytes]]) -> list[int]:
    """Upload (name, bytes) pairs in one request; the ids of the answered images."""
    response = client.post(
        "/images/upload", files=[("files", (n, d, "image/jpeg")) for n, d in files]
    )
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()]


def new_batch(client: TestClient, image_ids: list[int], name: str = "shoot") -> int:
    response = client.post("/batches/", json={"name": name, "image_ids": image_ids})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])
