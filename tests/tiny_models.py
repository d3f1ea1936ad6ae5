"""A tiny, randomly initialised DINOv3 checkpoint written to disk, for the real loading path."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import DINOv3ViTConfig, DINOv3ViTModel

TINY_DINOV3_HIDDEN_SIZE = 64
# Small input keeps the forward pass trivial; DINOv3's RoPE works at any multiple of the patch.
TINY_DINOV3_INPUT_SIZE = 64
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def build_tiny_dinov3(path: Path) -> Path:
    """Save a seeded, randomly initialised tiny DINOv3 ViT and its preprocessor config in `path`."""
    config = DINOv3ViTConfig(
        hidden_size=TINY_DINOV3_HIDDEN_SIZE,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        patch_size=16,
        image_size=TINY_DINOV3_INPUT_SIZE,
        num_register_tokens=4,
    )
    # fork_rng: seeding must not leak into the global RNG other tests may rely on.
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = DINOv3ViTModel(config)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    # Same keys as the hub checkpoints' preprocessor_config.json, at the tiny input size.
    preprocessor = {
        "image_processor_type": "DINOv3ViTImageProcessor",
        "do_resize": True,
        "size": {"height": TINY_DINOV3_INPUT_SIZE, "width": TINY_DINOV3_INPUT_SIZE},
        "resample": 2,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": IMAGENET_MEAN,
        "image_std": IMAGENET_STD,
    }
    (path / "preprocessor_config.json").write_text(json.dumps(preprocessor), encoding="utf-8")
    return path
