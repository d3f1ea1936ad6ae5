"""Application settings: one typed class, read from the environment and `.env`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from database.deadlines import DatabaseDeadlines
from processing.embedding_spec import Device, EmbedderSpec, Precision, TransformerDescriptor

DEFAULT_CORS_ORIGINS = [
    "http://localhost:3000",
    "http://localhost:5173",
    "http://127.0.0.1:3000",
]


class Settings(BaseSettings):
    """Every knob of the server; see `example.env` for the documented list."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; empty means a SQLite file under STORAGE_ROOT.",
    )
    storage_root: Path = Path("./assets")
    # Below this much free space the storage counts as full: /health says so and uploads
    # answer 503 before writing anything (0: never).
    storage_min_free_mb: int = Field(default=64, ge=0)

    embedding_model: str = "facebook/dinov3-vits16-pretrain-lvd1689m"
    embedding_device: Device = "auto"
    embedding_batch_size: int = Field(default=8, ge=1, le=256)
    embedding_fallback: bool = True
    # int8: dynamic quantisation of the transformer's linear layers (CPU); a separate model id.
    embedding_precision: Precision = "fp32"
    # A transformers model's vector: its CLS token, or CLS beside the mean of its patch tokens
    # (processing/feature_extraction.py; another embedding id, so stored vectors are re-made).
    embedding_descriptor: TransformerDescriptor = "cls"
    # process: the inline backend runs the model in a process of its own (the API process holds
    # no model, its request threads never wait for the forward's GIL); thread: in the API
    # process, on the worker's thread (the old way, for comparison).
    embedding_isolation: Literal["process", "thread"] = "process"
    torch_threads: int | None = Field(default=None, ge=1, le=256)
    hf_token: SecretStr | None = None

    thumbnail_size: int = Field(default=512, ge=32, le=4096)
    max_upload_bytes: int = Field(default=200 * 1024 * 1024, ge=1)
    max_files_per_request: int = Field(default=500, ge=1)
    # A request whose Content-Length (or streamed body) exceeds this is refused with 413
    # before its body is read (api/guards.py); each file is held to MAX_UPLOAD_BYTES while
    # it streams in.
    max_request_bytes: int = Field(default=4 * 1024 * 1024 * 1024, ge=1)
    max_image_pixels: int = Field(default=250_000_000, ge=1)
    # Every decode (upload check, worker, thumbnails, contact sheet) passes one gate: at most
    # this many at once, their pixels within this budget together; a decode waits this long
    # for room, then answers 503 (processing/decode_gate.py). An image whose pixels alone
    # exceed the budget is refused with 413.
    # Folders under these roots can be imported in place (POST /imports); empty: imports off.
    import_roots: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    # An unfinished import whose process showed no sign of life for this long (a crash) is
    # taken over and finished by a running server; at start-up, by a server alone on its
    # storage, at once.
    import_stale_seconds: float = Field(default=60.0, ge=1.0, le=86400.0)
    decode_concurrency: int = Field(default=2, ge=1, le=64)
    decode_memory_mb: int = Field(default=640, ge=16)
    decode_wait_seconds: float = Field(default=20.0, ge=0.0, le=600.0)

    # Clustering runs on its own small pool: how many at once, how many may wait for a place,
    # and how long a request waits for one before answering 503 (services/clustering_pool.py).
    # The wait is short: a waiting request holds one of the request threads every route shares.
    analysis_workers: int = Field(default=1, ge=1, le=32)
    analysis_queue: int = Field(default=2, ge=0, le=1000)
    analysis_wait_seconds: float = Field(default=0.25, ge=0.0, le=600.0)
    # process: each worker is a process of its own that runs the whole analysis on its own
    # database connection (reads, clustering, labels, the answer's bytes; the server relays
    # them); thread: the same analysis on threads of the server (for comparison).
    analysis_isolation: Literal["process", "thread"] = "process"
    # The niceness of a worker process's clustering thread: above 0, requests get the CPU
    # first on a busy machine (a 50k analysis then takes longer only while the CPU is short).
    # Its reads, ranking and answer run at the server's own niceness, as before they moved.
    analysis_niceness: int = Field(default=10, ge=0, le=19)

    # PostgreSQL time bounds (database/deadlines.py): a silent database fails a request
    # within DB_ANSWER_TIMEOUT_SECONDS (503 + Retry-After), never hangs it.
    db_connect_timeout_seconds: int = Field(default=3, ge=1, le=120)
    db_answer_timeout_seconds: float = Field(default=4.0, gt=0, le=3600)
    db_statement_timeout_seconds: float = Field(default=30.0, gt=0, le=86400)
    db_lock_timeout_seconds: float = Field(default=10.0, gt=0, le=86400)
    db_pool_timeout_seconds: float = Field(default=3.0, gt=0, le=600)
    db_breaker_cooldown_seconds: float = Field(default=5.0, ge=0, le=600)

    task_backend: Literal["inline", "celery"] = "inline"
    celery_broker_url: str | None = None
    celery_visibility_timeout: int = Field(default=600, ge=1)

    # Slow clients (api/slow_clients.py, api/guards.py): a request head must arrive whole within
    # HEADER_TIMEOUT_SECONDS, and at most MAX_PENDING_HEADS connections may be sending one (a
    # newer connection closes the oldest; twice as many for a burst younger than a second). A
    # body must keep up BODY_MIN_BYTES_PER_SECOND on average once BODY_GRACE_SECONDS of waiting
    # for it are spent, else 408; at most MAX_SLOW_BODIES requests may be behind that pace at
    # once (408 for one more).
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=3600)
    max_pending_heads: int = Field(default=32, ge=1, le=100_000)
    body_min_bytes_per_second: int = Field(default=1024, ge=1)
    body_grace_seconds: float = Field(default=10.0, ge=0, le=3600)
    max_slow_bodies: int = Field(default=8, ge=1, le=100_000)

    # This machine only by default: a photographer's library is not for the whole network
    # unless asked (HOST=0.0.0.0, with API_KEY; run_server.py warns without one).
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=8000, ge=1, le=65535)
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_CORS_ORIGINS)
    )
    api_key: SecretStr | None = None

    @field_validator("import_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: object) -> object:
        # Comma-separated, like CORS_ORIGINS (a path holding a comma cannot be a root).
        if isinstance(value, str):
            return [root.strip() for root in value.split(",") if root.strip()]
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator(
        "database_url", "api_key", "hf_token", "torch_threads", "celery_broker_url", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _celery_needs_a_broker(self) -> Self:
        if self.task_backend == "celery" and not self.celery_broker_url:
            raise ValueError(
                "TASK_BACKEND=celery needs CELERY_BROKER_URL "
                "(e.g. redis://127.0.0.1:6379/0 or amqp://guest:guest@127.0.0.1:5672//)"
            )
        return self

    @property
    def resolved_database_url(self) -> str:
        """The configured URL, or the embedded SQLite default under the storage root."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.storage_root / 'pixal_judge.db').resolve()}"

    @property
    def database_deadlines(self) -> DatabaseDeadlines:
        """The PostgreSQL time bounds, as plain numbers for database/."""
        return DatabaseDeadlines(
            connect_timeout=self.db_connect_timeout_seconds,
            answer_timeout=self.db_answer_timeout_seconds,
            statement_timeout=self.db_statement_timeout_seconds,
            lock_timeout=self.db_lock_timeout_seconds,
            pool_timeout=self.db_pool_timeout_seconds,
            breaker_cooldown=self.db_breaker_cooldown_seconds,
        )

    @property
    def embedder_spec(self) -> EmbedderSpec:
        """The embedding model to load and how, as plain values for processing/."""
        return EmbedderSpec(
            model=self.embedding_model,
            device=self.embedding_device,
            precision=self.embedding_precision,
            descriptor=self.embedding_descriptor,
            token=self.hf_token.get_secret_value() if self.hf_token else None,
            fallback=self.embedding_fallback,
            torch_threads=self.torch_threads,
        )

    @property
    def storage_min_free_bytes(self) -> int:
        return self.storage_min_free_mb * 1024 * 1024

    @property
    def images_dir(self) -> Path:
        return self.storage_root / "images"

    @property
    def thumbnails_dir(self) -> Path:
        return self.storage_root / "thumbnails"

    @property
    def incoming_dir(self) -> Path:
        """Where uploads are staged until their row is committed."""
        return self.storage_root / "incoming"


@lru_cache
def get_settings() -> Settings:
    return Settings()
