"""A tiny, randomly initialised DINOv3 checkpoint written to disk, for the real loading path."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import DINOv3ViTConfig, DINOv3ViTModel


def build_tiny_dinov3(directory: Path) -> Path:
    config = DINOv3ViTConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        patch_size=16,
        image_size=64,
        num_register_tokens=4,
    )
    torch.manual_seed(0)
    DINOv3ViTModel(config).eval().save_pretrained(directory)
    preprocessor = {
        "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225],
        "size": {"height": 64, "width": 64},
    }
    (directory / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    return directory
