"""The real server as a subprocess (uvicorn, the test database), for crash and race tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """Starts, kills and restarts `uvicorn api.main:app` on a free port."""

    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    # Default: uvicorn on `port`; run_server.py tests pass their own (it reads HOST/PORT).
    command: list[str] | None = None
    # The checkout it runs from (a benchmark compares an older one).
    cwd: Path = PROJECT_ROOT

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> None:
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                self.command
                or [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(self.port)],
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"server did not start: {self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, like a power cut or the OOM killer."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def health(self) -> dict:
        return httpx.get(f"{self.url}/health", timeout=10).json()  # type: ignore[no-any-return]

    def wait_until_model_loaded(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.health()["model"]["loaded"]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"model not loaded: {self.health()['model']}")
            time.sleep(0.2)

    def wait_until_processed(self, timeout: float = 180.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            health = self.health()
            pending = health["pending_thumbnails"] + health["pending_embeddings"]
            if pending + health["pending_quality"] == 0 and health["queued"] == 0:
                return health
            time.sleep(0.3)
        raise TimeoutError(f"still pending: {self.health()}")


def server_env(
    database_url: str, storage_root: Path, model_dir: Path, **extra: str
) -> dict[str, str]:
    """The environment of a test server: this test's database and storage, the tiny model
    on one CPU thread, no API key; `extra` adds or overrides settings."""
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "STORAGE_ROOT": str(storage_root),
        "EMBEDDING_MODEL": str(model_dir),
        "EMBEDDING_DEVICE": "cpu",
        "TORCH_THREADS": "1",
        "API_KEY": "",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


@pytest.fixture
def server(
    database_url: str, clean_database: Engine, tmp_path: Path, tiny_dinov3_dir: Path
) -> Iterator[ServerProcess]:
    env = server_env(
        database_url,
        tmp_path / "assets",
        tiny_dinov3_dir,
        # Some tests hold a table lock to freeze a request mid-flight for as long as they need.
        DB_LOCK_TIMEOUT_SECONDS="600",
        DB_STATEMENT_TIMEOUT_SECONDS="600",
    )
    process = ServerProcess(env=env, log_path=tmp_path / "server.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()
