"""EMBEDDING_PRECISION=int8: the real tiny DINOv3 through from_pretrained, quantised at load;
its own model id, so vectors of the two precisions are never mixed."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

import config
from database.models import Image
from processing import feature_extraction as fe
from services.background.model_publisher import publish_loaded_model
from services.background.pipeline import process_images
from services.background.startup import find_pending_image_ids
from services.model_identity import published_model
from tests.api.helpers import upload
from tests.factories import jpeg_bytes, real_photo
from tests.tiny_models import TINY_DINOV3_HIDDEN_SIZE

PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "hubble_deep_field.jpg")


def make_settings(**overrides: Any) -> config.Settings:
    return config.Settings(_env_file=None, embedding_device="cpu", **overrides)  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def int8_embedder(tiny_dinov3_dir: Path) -> fe.ManagedEmbedder:
    settings = make_settings(embedding_model=str(tiny_dinov3_dir), embedding_precision="int8")
    managed = fe.ManagedEmbedder(settings.embedder_spec)
    managed.load()
    return managed


def test_precision_defaults_to_fp32() -> None:
    assert make_settings().embedding_precision == "fp32"


def test_int8_loads_through_from_pretrained_and_quantises_linear_layers(
    int8_embedder: fe.ManagedEmbedder, tiny_dinov3_dir: Path
) -> None:
    assert int8_embedder.status.fallback_reason is None
    assert int8_embedder.model_id == f"{tiny_dinov3_dir}+int8"
    model = int8_embedder.load()._model  # type: ignore[attr-defined]
    quantised = [m for m in model.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
    float_linear = [m for m in model.modules() if type(m) is torch.nn.Linear]
    assert quantised
    assert not float_linear


def test_int8_vectors_have_the_dim_and_stay_close_to_fp32(
    int8_embedder: fe.ManagedEmbedder, tiny_embedder: fe.ManagedEmbedder
) -> None:
    photos = [real_photo(name) for name in PHOTOS]
    int8 = int8_embedder.embed(photos)
    fp32 = tiny_embedder.embed(photos)
    assert int8.shape == fp32.shape == (len(PHOTOS), TINY_DINOV3_HIDDEN_SIZE)
    assert int8.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(int8, axis=1), 1.0, rtol=1e-5)
    cosines = np.sum(int8 * fp32, axis=1)
    assert cosines.min() > 0.98, cosines
    # Quantisation really changed the arithmetic: not the fp32 model under another name.
    assert not np.allclose(int8, fp32, atol=1e-6)


def test_int8_is_ignored_for_the_convolutional_offline_encoder(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger=fe.__name__):
        embedder = fe.EfficientNetLiteEmbedder(precision="int8")
    assert embedder.precision == "fp32"
    assert embedder.model_id == fe.offline_model_id()
    assert any("int8 ignored" in record.getMessage() for record in caplog.records)


def test_the_loader_publishes_the_id_its_vectors_carry(
    int8_embedder: fe.ManagedEmbedder, session_factory: sessionmaker[Session], tiny_dinov3_dir: Path
) -> None:
    active = publish_loaded_model(session_factory, int8_embedder)
    assert active is not None
    with session_factory() as session:
        published = published_model(session)
    assert published is not None
    assert published.model_id == active.model_id == f"{tiny_dinov3_dir}+int8"
    assert (published.configured_model, published.device) == (str(tiny_dinov3_dir), "cpu")
    assert published.fallback_reason is None


def test_switching_precision_re_embeds_and_never_mixes_vectors(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: config.Settings,
    tiny_embedder: fe.ManagedEmbedder,
    int8_embedder: fe.ManagedEmbedder,
) -> None:
    ids = upload(client, [(f"{i}.jpg", jpeg_bytes(seed=70 + i)) for i in range(3)])
    with session_factory() as session:
        before = {i.id: i.embedding_model for i in session.scalars(select(Image))}
    assert {before[i] for i in ids} == {tiny_embedder.model_id}

    # Restarted with EMBEDDING_PRECISION=int8: every fp32 vector is pending again.
    assert sorted(find_pending_image_ids(session_factory, int8_embedder.model_id)) == ids
    summary = process_images(session_factory, settings, int8_embedder.load(), ids)
    assert summary.embeddings == len(ids)
    with session_factory() as session:
        rows = session.execute(
            select(Image.id, Image.embedding_model, Image.features).where(Image.id.in_(ids))
        ).all()
    assert {row.embedding_model for row in rows} == {f"{tiny_embedder.model_id}+int8"}
    assert all(len(row.features) == 4 * TINY_DINOV3_HIDDEN_SIZE for row in rows)
    assert find_pending_image_ids(session_factory, int8_embedder.model_id) == []
    # And back to fp32: the int8 vectors are pending for the fp32 model.
    assert sorted(find_pending_image_ids(session_factory, tiny_embedder.model_id)) == ids
