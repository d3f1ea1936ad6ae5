"""The model in a process of its own (processing/model_process.py): the same vectors as in the
server's process, a process killed under it replaced with its batch sent again, a model that
cannot load reported as such, and nothing left running after `close`."""

from __future__ import annotations

import io
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from processing.embedding_spec import EmbedderSpec
from processing.feature_extraction import EmbedderLoadError, ManagedEmbedder
from processing.model_process import InferenceProcess
from tests.factories import jpeg_bytes
from tests.system.test_analysis_pool import running

pytestmark = pytest.mark.slow


def photos(count: int) -> list[Image.Image]:
    return [
        Image.open(io.BytesIO(jpeg_bytes((320, 240), seed=seed))).convert("RGB")
        for seed in range(count)
    ]


def test_the_process_embeds_as_this_one_and_replaces_itself_when_killed(
    tiny_dinov3_dir: Path, tiny_embedder: ManagedEmbedder
) -> None:
    host = InferenceProcess(EmbedderSpec(str(tiny_dinov3_dir), device="cpu", torch_threads=1))
    try:
        embedder = host.load()
        first = host.pid
        assert first is not None
        assert first != os.getpid()
        assert embedder.model_id == tiny_embedder.status.active_model
        assert host.status.loaded
        assert host.status.device == "cpu"
        images = photos(5)
        expected = tiny_embedder.embed(images)
        np.testing.assert_allclose(embedder.embed(images), expected, atol=1e-6)

        os.kill(first, signal.SIGKILL)
        again = embedder.embed(images)  # a new process, the batch sent again

        np.testing.assert_allclose(again, expected, atol=1e-6)
        assert host.restarts == 1
        assert host.pid not in (None, first)
        assert not running(first)
    finally:
        last = host.pid
        host.close()
    assert last is not None
    assert not running(last)


def test_a_model_that_cannot_load_is_reported_by_the_process(tmp_path: Path) -> None:
    spec = EmbedderSpec(str(tmp_path / "no-such-model"), device="cpu", fallback=False)
    host = InferenceProcess(spec)
    try:
        with pytest.raises(EmbedderLoadError, match="no-such-model"):
            host.load()
        assert host.status.active_model is None
        assert host.status.configured_model == spec.model
    finally:
        host.close()
