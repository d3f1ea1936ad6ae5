"""Small request helpers shared by the API tests."""

from __future__ import annotations

from fastapi.testclient import TestClient


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
