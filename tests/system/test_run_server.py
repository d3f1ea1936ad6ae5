"""`python run_server.py` as a user runs it: HOST and PORT from Settings, busy port said first."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from config import Settings
from run_server import exposure_warning
from tests.system.conftest import PROJECT_ROOT, ServerProcess, free_port


def _env(tmp_path: Path, port: int) -> dict[str, str]:
    return {
        **os.environ,
        # A database URL that would fail loudly if migrations ran: the port check comes first.
        "DATABASE_URL": "postgresql+psycopg2://nobody@127.0.0.1:1/none",
        "STORAGE_ROOT": str(tmp_path / "assets"),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "PYTHONUNBUFFERED": "1",
    }


def test_busy_port_ends_with_one_clear_line_before_anything_slow(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "run_server.py"],
            cwd=PROJECT_ROOT,
            env=_env(tmp_path, port),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines  # nothing else: no migration, no model, no traceback
    assert f"Port {port} on 127.0.0.1 is already in use" in lines[0]
    assert f"PORT={port + 1}" in lines[0]
    assert not (tmp_path / "assets").exists()  # stopped before touching storage


@pytest.mark.slow
def test_host_and_port_come_from_settings(tmp_path: Path, database_url: str) -> None:
    port = free_port()
    env = {**_env(tmp_path, port), "DATABASE_URL": database_url}
    env.update({"EMBEDDING_MODEL": "efficientnet-lite0", "TORCH_THREADS": "1", "API_KEY": ""})
    server = ServerProcess(
        env=env,
        log_path=tmp_path / "server.log",
        port=port,
        command=[sys.executable, "run_server.py"],
    )
    server.start()
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 200
    finally:
        server.stop()


def _one_line(env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "run_server.py"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines  # no traceback
    return lines[0]


@pytest.mark.parametrize(("port", "said"), [("abc", "valid integer"), ("99999", "65535")])
def test_a_bad_port_is_one_line(tmp_path: Path, port: str, said: str) -> None:
    line = _one_line({**_env(tmp_path, 8000), "PORT": port})
    assert line.startswith("Invalid setting: PORT:")
    assert said in line


def test_a_storage_root_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    root = tmp_path / "a-file"
    root.write_text("not a folder")
    line = _one_line({**_env(tmp_path, free_port()), "STORAGE_ROOT": str(root)})
    assert line.startswith(f"STORAGE_ROOT={root} cannot be used")


def test_listening_beyond_this_machine_without_a_key_is_warned() -> None:
    open_settings = Settings(_env_file=None, host="0.0.0.0")  # type: ignore[call-arg]
    warning = exposure_warning(open_settings)
    assert warning is not None
    assert "API_KEY" in warning
    assert Settings(_env_file=None).host == "127.0.0.1"  # type: ignore[call-arg]
    assert exposure_warning(Settings(_env_file=None)) is None  # type: ignore[call-arg]
    keyed = Settings(_env_file=None, host="0.0.0.0", api_key="k")  # type: ignore[call-arg]
    assert exposure_warning(keyed) is None
