"""A worker that judged a RAW while its JPEG arrived and took the RAW's place: its results
(made from the RAW) are refused and its thumbnail removed; the JPEG's stay (services/
companions.py, crud_image.update_processed_image(made_from=...))."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from config import Settings
from crud import crud_image
from processing.feature_extraction import ManagedEmbedder
from services.background.pipeline import finish_images, prepare_images
from tests.api.test_raw_jpeg_pairs import SPEC, camera_jpeg
from tests.raw_factory import dng_bytes


def _upload(client: TestClient, name: str, data: bytes) -> int:
    response = client.post("/images/upload", files=[("files", (name, data, "image/x-any"))])
    assert response.status_code == 200, response.text
    return int(response.json()[0]["id"])


def test_results_from_the_replaced_raw_are_refused(
    client: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    tiny_embedder: ManagedEmbedder,
    storage_root: Path,
) -> None:
    image_id = _upload(client, "IMG_0001.DNG", dng_bytes(SPEC))
    with session_factory() as session:  # as if the worker had not got to the RAW yet
        crud_image.update_processed_image(
            session,
            image_id,
            has_thumbnail=False,
            quality_version=None,
            features=None,
            embedding_model=None,
        )
        session.commit()
    # The worker decodes the RAW and writes its thumbnail; the model has yet to run...
    in_hand = prepare_images(session_factory, settings, tiny_embedder, [image_id])
    assert [job.image_id for job in in_hand.jobs] == [image_id]
    # ...when the JPEG arrives, takes the main file's place and is processed.
    assert _upload(client, "IMG_0001.JPG", camera_jpeg(size=(600, 600))) == image_id
    with session_factory() as session:
        from_jpeg = crud_image.get_image(session, image_id)
        assert from_jpeg is not None
        assert from_jpeg.mime_type == "image/jpeg"
        vector, filename = from_jpeg.features, from_jpeg.filename
    assert vector is not None

    summary = finish_images(session_factory, in_hand)  # the RAW's results come in late

    assert (summary.thumbnails, summary.embeddings) == (0, 0)
    with session_factory() as session:
        image = crud_image.get_image(session, image_id)
        assert image is not None
        assert (image.features, image.filename) == (vector, filename)
    # Only the JPEG's thumbnail is left: the RAW's, written by the late worker, is gone.
    thumbnails = [p.name for p in (storage_root / "thumbnails").iterdir()]
    assert thumbnails == [Path(filename).stem + ".jpg"]
