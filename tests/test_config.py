"""The settings hand processing plain values: every embedding knob reaches the EmbedderSpec."""

from __future__ import annotations

import pytest

from config import Settings
from processing.embedding_spec import EmbedderSpec


def test_the_embedding_settings_reach_the_embedder_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "EMBEDDING_MODEL": "/models/dinov3",
        "EMBEDDING_DEVICE": "cuda",
        "EMBEDDING_PRECISION": "int8",
        "EMBEDDING_DESCRIPTOR": "cls+patches",
        "HF_TOKEN": "hf_secret",
        "EMBEDDING_FALLBACK": "false",
        "TORCH_THREADS": "3",
    }.items():
        monkeypatch.setenv(name, value)
    spec = Settings(_env_file=None).embedder_spec  # type: ignore[call-arg]
    assert spec == EmbedderSpec(
        model="/models/dinov3",
        device="cuda",
        precision="int8",
        descriptor="cls+patches",
        token="hf_secret",
        fallback=False,
        torch_threads=3,
    )
    assert "hf_secret" not in repr(spec)  # the token is a secret in logs too


def test_an_empty_token_is_no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", " ")
    monkeypatch.delenv("EMBEDDING_MODEL", raising=False)
    spec = Settings(_env_file=None).embedder_spec  # type: ignore[call-arg]
    assert spec.token is None
    assert spec.model == Settings.model_fields["embedding_model"].default
