"""Embedding throughput: the full pipeline against a bare batched forward loop, same run.

    python -m bench.embedding [--images 32] [--megapixels 12] [--batch 8]

Pipeline = JPEG files on disk -> draft decode -> thumbnail -> pre-processing -> DINOv3
ViT-S/16 forward -> vectors written to the database (what the background worker does).
Bare loop = the same model's forward pass on ready-made input tensors, batched.
The model is the DINOv3 ViT-S/16 architecture with random weights (nothing to download).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter
from sqlalchemy import update
from transformers import DINOv3ViTConfig, DINOv3ViTModel

from config import Settings
from database.database import create_db_engine, create_session_factory
from database.migrations import upgrade_to_head
from database.models import Image as ImageRow
from database.unit_of_work import hand_ids_to
from processing.feature_extraction import TransformersEmbedder, configure_torch_threads, preprocess
from processing.photo import load_oriented_rgb
from services.background.pipeline import process_images
from services.image_service import IncomingUpload, upload_images
from utils.file_handling import ensure_storage_dirs


def make_photo(path: Path, megapixels: float, seed: int) -> None:
    """A JPEG with photo-like content (smooth gradients, texture, edges) of ~`megapixels`."""
    width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = width * 3 // 4
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, size=(height // 64, width // 64, 3), dtype=np.uint8)
    base = Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)
    noise = rng.normal(0, 10, size=(height, width, 1)).astype(np.float32)
    pixels = np.clip(np.asarray(base, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
    Image.fromarray(pixels).filter(ImageFilter.SMOOTH).save(path, "JPEG", quality=90)


def save_vits16(directory: Path) -> Path:
    torch.manual_seed(0)
    # DINOv3 ViT-S/16: 384 wide, 12 layers, 6 heads, 4 register tokens.
    config = DINOv3ViTConfig(
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=6,
        intermediate_size=1536,
        patch_size=16,
        num_register_tokens=4,
    )
    DINOv3ViTModel(config).eval().save_pretrained(directory)
    return directory


def bare_loop(embedder: TransformersEmbedder, tensors: torch.Tensor, batch: int) -> float:
    """Images/s of the forward pass alone, on ready input."""
    model = embedder._model  # the benchmark times the loaded model itself
    assert model is not None
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(tensors), batch):
            _ = model(pixel_values=tensors[i : i + batch]).pooler_output
    return len(tensors) / (time.perf_counter() - start)


def pipeline(settings: Settings, factory, embedder, ids: list[int], batch: int) -> float:  # type: ignore[no-untyped-def]
    """Images/s from files on disk to vectors (and thumbnails) in the database."""
    with factory() as session, session.begin():
        session.execute(
            update(ImageRow).values(has_thumbnail=False, features=None, embedding_model=None)
        )
    start = time.perf_counter()
    for i in range(0, len(ids), batch):
        process_images(factory, settings, embedder, ids[i : i + batch])
    return len(ids) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--megapixels", type=float, default=12.0)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    configure_torch_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = Settings(_env_file=None, storage_root=root / "assets")  # type: ignore[call-arg]
        ensure_storage_dirs(settings)
        Image.MAX_IMAGE_PIXELS = settings.max_image_pixels
        print(f"making {args.images} JPEGs of {args.megapixels} MP ...", file=sys.stderr)
        files = []
        for n in range(args.images):
            path = root / f"photo{n}.jpg"
            make_photo(path, args.megapixels, seed=n)
            files.append(path)

        url = settings.resolved_database_url
        upgrade_to_head(url)
        factory = create_session_factory(create_db_engine(url))
        # The bench runs the pipeline itself on the accepted ids, so nothing is handed on.
        hand_ids_to(factory, lambda ids: None)
        with factory() as session:
            handles = [p.open("rb") for p in files]
            report = upload_images(
                session,
                settings,
                [IncomingUpload(p.name, h) for p, h in zip(files, handles, strict=True)],
            )
            session.commit()
            for handle in handles:
                handle.close()
        ids = [r.image.id for r in report.accepted]

        embedder = TransformersEmbedder(str(save_vits16(root / "vits16")))
        embedder.load()
        inputs = [load_oriented_rgb(p, embedder.input_size) for p in files]
        tensors = preprocess(inputs, embedder._spec)
        bare_loop(embedder, tensors[: args.batch], args.batch)  # warm-up

        bare, full, single = [], [], []
        for _ in range(args.repeats):
            bare.append(bare_loop(embedder, tensors, args.batch))
            full.append(pipeline(settings, factory, embedder, ids, args.batch))
            single.append(pipeline(settings, factory, embedder, ids, 1))

    b, f, s = (statistics.median(x) for x in (bare, full, single))
    print(f"command: python -m bench.embedding {' '.join(sys.argv[1:])}".rstrip())
    print(f"images: {args.images} x {args.megapixels} MP JPEG, torch threads {args.threads}")
    print(f"bare batched forward (batch {args.batch}): {b:6.2f} img/s")
    print(f"pipeline, batch {args.batch} (decode+thumbnail+embed+DB): {f:6.2f} img/s")
    print(f"pipeline, one image at a time:          {s:6.2f} img/s")
    print(f"pipeline / bare loop: {f / b:.2f} (target >= 0.85)")
    print(f"batched / one-at-a-time pipeline: {f / s:.2f}")


if __name__ == "__main__":
    main()
