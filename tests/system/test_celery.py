"""TASK_BACKEND=celery with real processes: the server (uvicorn), Celery workers, Redis and the
test PostgreSQL database.

The workers make every thumbnail, quality score and embedding and the server none. SIGKILL
mid-batch loses nothing: a worker whose pool process dies gives the task back at once, a task
of a worker that dies whole goes to the next worker. The server's start-up backfill sends
unfinished images to the workers.
"""

from __future__ import annotations

import ast
import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker, undefer

from config import Settings
from database.models import Image
from services.background import celery_app
from services.background.queue import CeleryTaskQueue
from services.background.retry import Backoff
from tests.factories import jpeg_bytes
from tests.system.conftest import PROJECT_ROOT, ServerProcess
from tests.tiny_models import TINY_DINOV3_HIDDEN_SIZE
from utils.file_handling import thumbnail_relative_path

# A database of its own, flushed before and after: no stale message from another run.
# Emptied before and after each test: two test runs at once need one database each
# (scripts/test_both.sh gives the PostgreSQL and SQLite passes 15 and 14).
REDIS_URL = os.environ.get("TEST_CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
# Seconds before Redis gives a dead worker's unacknowledged message to another worker.
VISIBILITY_TIMEOUT = 2
BATCH_SIZE = 4
SUCCEEDED = re.compile(r"Task pixal_judge\.process_images\[[^\]]+\] succeeded in [\d.]+s: (\{.*\})")


@dataclass
class CeleryWorker:
    """`python -m services.background.celery_worker` in its own process group (main + pool)."""

    env: dict[str, str]
    log_path: Path
    name: str
    process: subprocess.Popen[bytes] | None = None
    module: str = "services.background.celery_worker"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    self.module,
                    "--pool=prefork",
                    "--concurrency=1",
                    f"--hostname={self.name}@%h",
                ],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Until the worker consumes and its pool process has loaded the model."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log()[-3000:]}")
            log = self.log()
            if " ready." in log and "published the active embedding model" in log:
                return
            time.sleep(0.2)
        raise TimeoutError(f"worker not ready: {self.log()[-3000:]}")

    def freeze(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL to the main process and its pool at once, like a machine that dies."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()  # warm shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # whatever is left of the pool
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)

    def pool_pids(self) -> list[int]:
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()] if children.exists() else []

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def summaries(self) -> list[dict[str, int]]:
        """What each finished task reports it made (process_images' summary)."""
        return [ast.literal_eval(match) for match in SUCCEEDED.findall(self.log())]


def kill_mid_task(
    worker: CeleryWorker, broker: str, engine: Engine, *, pool_only: bool
) -> list[str]:
    """SIGKILL the worker's pool process or the whole worker once a batch more is done, while
    it holds a task; the ids of the tasks it held."""
    target = pending_embeddings(engine) - BATCH_SIZE
    deadline = time.monotonic() + 60
    looks: list[tuple[int, int]] = []
    while time.monotonic() < deadline:
        pending = pending_embeddings(engine)
        if 0 < pending <= target:
            # Frozen, the worker cannot finish the task between this look and the kill.
            worker.freeze()
            held = unacknowledged_tasks(broker)
            looks.append((pending, len(held)))
            if held:
                if pool_only:
                    for pid in worker.pool_pids():
                        os.kill(pid, signal.SIGKILL)
                    worker.thaw()
                else:
                    worker.kill()
                return held
            worker.thaw()
        time.sleep(0.005)
    raise TimeoutError(f"the worker held no task to be killed in; (pending, held): {looks}")


def pending_embeddings(engine: Engine) -> int:
    """Images without any vector yet (one model throughout this test)."""
    with Session(engine) as session:
        return (
            session.scalar(
                select(func.count()).select_from(Image).where(Image.embedding_model.is_(None))
            )
            or 0
        )


def wait_for_log(worker: CeleryWorker, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in worker.log():
        assert time.monotonic() < deadline, f"not in the worker log: {text}"
        time.sleep(0.1)


def made(workers: list[CeleryWorker], what: str) -> int:
    return sum(summary[what] for worker in workers for summary in worker.summaries())


def maps_model_weights(pid: int) -> bool:
    """Whether the process has loaded a transformers checkpoint (safetensors' library)."""
    return "safetensors" in Path(f"/proc/{pid}/maps").read_text()


@pytest.fixture
def broker() -> Iterator[str]:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis does not answer at {REDIS_URL}: {exc}")
    client.flushdb()
    try:
        yield REDIS_URL
    finally:
        client.flushdb()
        client.close()


def unacknowledged_tasks(broker_url: str) -> list[str]:
    """Ids of the tasks a worker has taken and not acknowledged (kombu's Redis bookkeeping)."""
    import redis

    with redis.Redis.from_url(broker_url) as client:
        entries = client.hvals("unacked")
    return [json.loads(entry)[0]["headers"]["id"] for entry in entries]


@pytest.fixture
def celery_env(
    broker: str, database_url: str, clean_database: Engine, tmp_path: Path, tiny_dinov3_dir: Path
) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "STORAGE_ROOT": str(tmp_path / "assets"),
        "EMBEDDING_MODEL": str(tiny_dinov3_dir),
        "EMBEDDING_DEVICE": "cpu",
        "EMBEDDING_BATCH_SIZE": str(BATCH_SIZE),
        "TORCH_THREADS": "1",
        "API_KEY": "",
        "PYTHONUNBUFFERED": "1",
        "TASK_BACKEND": "celery",
        "CELERY_BROKER_URL": broker,
        "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
    }


@pytest.fixture
def workers(celery_env: dict[str, str], tmp_path: Path) -> Iterator[list[CeleryWorker]]:
    """Workers a test starts; every one is stopped at the end."""
    started: list[CeleryWorker] = []
    yield started
    for worker in started:
        worker.stop()


@pytest.fixture
def celery_server(celery_env: dict[str, str], tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(env=celery_env, log_path=tmp_path / "server.log")
    try:
        yield server
    finally:
        server.stop()


def upload(server: ServerProcess, prefix: str, images: list[bytes]) -> list[int]:
    files = [("files", (f"{prefix}{n}.jpg", data, "image/jpeg")) for n, data in enumerate(images)]
    response = httpx.post(f"{server.url}/images/upload", files=files, timeout=120)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()]


def check_every_image_done_once(
    engine: Engine, storage_root: Path, uploaded: list[int], model: str
) -> None:
    """One row per upload, each with its thumbnail file, quality and a vector of the model."""
    with Session(engine) as session:
        rows = list(session.scalars(select(Image).options(undefer(Image.features))))
    assert sorted(row.id for row in rows) == sorted(uploaded), "rows lost or duplicated"
    assert len({row.image_hash for row in rows}) == len(rows)
    for row in rows:
        assert row.processing_error is None, row.processing_error
        assert row.has_thumbnail
        assert (storage_root / thumbnail_relative_path(row.filename)).is_file()
        assert row.quality_score is not None
        assert row.sharpness is not None
        assert row.exposure is not None
        assert row.embedding_model == model
        assert row.features is not None
        assert len(row.features) == TINY_DINOV3_HIDDEN_SIZE * 4
    thumbnails = {p.name for p in (storage_root / "thumbnails").iterdir()}
    expected = {thumbnail_relative_path(row.filename).split("/")[1] for row in rows}
    # A worker killed while writing a thumbnail may leave a hidden temporary file, which
    # the server's start-up reconciliation removes.
    assert {name for name in thumbnails if not name.startswith(".")} == expected


@pytest.mark.slow
def test_celery_workers_do_the_heavy_work_and_survive_a_sigkill(
    celery_env: dict[str, str],
    celery_server: ServerProcess,
    workers: list[CeleryWorker],
    clean_database: Engine,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    storage_root = Path(celery_env["STORAGE_ROOT"])
    model = celery_env["EMBEDDING_MODEL"]
    broker = celery_env["CELERY_BROKER_URL"]
    first = CeleryWorker(celery_env, tmp_path / "worker-a.log", "worker-a")
    workers.append(first)
    first.start()
    celery_server.start()
    first.wait_ready()

    # 1. The worker makes everything; the server process runs no model.
    uploaded = upload(celery_server, "first", [jpeg_bytes((640, 480), seed=n) for n in range(12)])
    health = celery_server.wait_until_processed(timeout=180)
    check_every_image_done_once(clean_database, storage_root, uploaded, model)
    assert "torch threads in this worker process: 1" in first.log()  # TORCH_THREADS=1
    assert made(workers, "thumbnails") == len(uploaded)
    assert made(workers, "embeddings") == len(uploaded)
    assert health["status"] == "ok"
    # Published by the worker that loaded it; the server only read it.
    assert health["model"]["active_model"] == model
    assert (health["model"]["loaded"], health["model"]["device"]) == (True, "cpu")
    assert celery_server.process is not None
    if Path("/proc/self/maps").exists():
        assert not maps_model_weights(celery_server.process.pid), "the server loaded a model"
        assert any(maps_model_weights(pid) for pid in first.pool_pids()), "signal is unreliable"
    # Analysis and similarity know the workers' model without loading it.
    with httpx.Client(base_url=celery_server.url, timeout=60) as client:
        batch = client.post("/batches/", json={"name": "celery", "image_ids": uploaded})
        assert batch.status_code == 201, batch.text
        analyzed = client.put(
            f"/batches/{batch.json()['id']}/analyze", json={"min_cluster_size": 2}
        )
        assert analyzed.status_code == 200, analyzed.text
        similar = client.get(f"/images/{uploaded[0]}/similar", params={"limit": 3})
        assert similar.status_code == 200, similar.text

    # 2. SIGKILL mid-batch: first the pool process (its worker gives the task back at once),
    # then the whole worker (Redis gives it to the next worker); every image is done once.
    uploaded += upload(
        celery_server, "a", [jpeg_bytes((1600, 1200), seed=100 + n) for n in range(24)]
    )
    lost_by_pool = kill_mid_task(first, broker, clean_database, pool_only=True)
    wait_for_log(first, f"process_images[{lost_by_pool[0]}] succeeded", timeout=60)
    celery_server.wait_until_processed(timeout=180)
    burst = [jpeg_bytes((1600, 1200), seed=200 + n) for n in range(60)]
    uploaded += upload(celery_server, "b", burst)
    killed_tasks = kill_mid_task(first, broker, clean_database, pool_only=False)
    pending_at_kill = pending_embeddings(clean_database)
    assert 0 < pending_at_kill < len(burst), "the kill did not land mid-burst"

    time.sleep(VISIBILITY_TIMEOUT + 0.5)  # the killed worker's message is visible again
    second = CeleryWorker(celery_env, tmp_path / "worker-b.log", "worker-b")
    workers.append(second)
    second.start()
    celery_server.wait_until_processed(timeout=120)
    check_every_image_done_once(clean_database, storage_root, uploaded, model)
    for task_id in killed_tasks:  # given back by the broker, not only re-sent by a backfill
        assert f"process_images[{task_id}] succeeded" in second.log()
    assert unacknowledged_tasks(broker) == []

    # 3. Work whose messages were lost: the server's start-up backfill sends it again.
    celery_server.stop()
    lost = uploaded[:5]
    with clean_database.begin() as conn:
        conn.execute(
            update(Image)
            .where(Image.id.in_(lost))
            .values(
                has_thumbnail=False,
                quality_score=None,
                quality_version=None,
                sharpness=None,
                exposure=None,
                features=None,
                embedding_model=None,
            )
        )
    before = made(workers, "embeddings")
    celery_server.start()
    celery_server.wait_until_processed(timeout=180)
    check_every_image_done_once(clean_database, storage_root, uploaded, model)
    assert made(workers, "embeddings") - before == len(lost)
    thumbnails = {p.name for p in (storage_root / "thumbnails").iterdir()}
    assert not [name for name in thumbnails if name.startswith(".")], "temporary files left"

    with capsys.disabled():
        print(  # noqa: T201 - the figures of the run, as the other system tests print them
            f"\n[celery test] {len(uploaded)} images; pool process SIGKILLed holding "
            f"{len(lost_by_pool)} task(s), then the worker holding {len(killed_tasks)} with "
            f"{pending_at_kill}/{len(burst)} embeddings pending; "
            f"tasks run: worker-a {len(first.summaries())}, worker-b {len(second.summaries())}"
        )


@pytest.mark.slow
def test_int8_on_a_cuda_worker_the_api_takes_the_id_the_worker_published(
    celery_env: dict[str, str],
    celery_server: ServerProcess,
    workers: list[CeleryWorker],
    clean_database: Engine,
    tmp_path: Path,
) -> None:
    """Issue 19: EMBEDDING_PRECISION=int8, EMBEDDING_DEVICE=auto and a CUDA worker. The worker
    runs fp32 (int8 is CPU only) and stamps the plain id; the API used to work out "+int8" from
    its own settings, so every analyze answered 409 and /health's pending count never drained."""
    env = {**celery_env, "EMBEDDING_PRECISION": "int8", "EMBEDDING_DEVICE": "auto"}
    celery_server.env = env
    worker = CeleryWorker(
        env, tmp_path / "cuda-worker.log", "cuda", module="tests.system.cuda_lookalike_worker"
    )
    workers.append(worker)
    worker.start()
    celery_server.start()
    worker.wait_ready()
    assert "int8 ignored" in worker.log()  # it really took the CUDA path

    uploaded = upload(celery_server, "gpu", [jpeg_bytes((320, 240), seed=n) for n in range(6)])
    health = celery_server.wait_until_processed(timeout=180)
    model = celery_env["EMBEDDING_MODEL"]
    check_every_image_done_once(clean_database, Path(env["STORAGE_ROOT"]), uploaded, model)
    assert health["pending_embeddings"] == 0
    assert health["model"]["active_model"] == model  # not model + "+int8"
    assert health["model"]["device"] == "cuda"
    with httpx.Client(base_url=celery_server.url, timeout=60) as client:
        batch = client.post("/batches/", json={"name": "gpu", "image_ids": uploaded})
        assert batch.status_code == 201, batch.text
        analyzed = client.put(
            f"/batches/{batch.json()['id']}/analyze", json={"min_cluster_size": 2}
        )
        assert analyzed.status_code == 200, analyzed.text
        assert analyzed.json()["parameters"]["embedding_model"] == model
        similar = client.get(f"/images/{uploaded[0]}/similar", params={"limit": 3})
        assert similar.status_code == 200, similar.text


def test_celery_backend_needs_a_broker_url() -> None:
    with pytest.raises(ValidationError, match="CELERY_BROKER_URL"):
        Settings(_env_file=None, task_backend="celery")
    settings = Settings(
        _env_file=None,
        task_backend="celery",
        celery_broker_url="redis://127.0.0.1:6379/0",
    )
    assert settings.celery_broker_url == "redis://127.0.0.1:6379/0"


def test_celery_queue_sends_batches_and_the_backfill() -> None:
    sent: list[list[int]] = []
    queue = CeleryTaskQueue(sent.append, batch_size=3, backfill=lambda: [1, 2, 3, 4])
    queue.submit(range(10, 17))
    queue.start()
    assert queue.wait_idle(timeout=10)
    # In arrival order: ids submitted before the start, then the backfill's.
    assert sent == [[10, 11, 12], [13, 14, 15], [16, 1, 2], [3, 4]]
    assert queue.queued == 0
    queue.stop()


def test_celery_queue_keeps_what_the_broker_refused_until_it_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 10, item 1 (Celery): ids the broker refused used to be logged and dropped."""
    sent: list[list[int]] = []
    refusals = [ConnectionError("broker down")] * 3

    def flaky(batch: list[int]) -> None:
        if refusals:
            raise refusals.pop()
        sent.append(batch)

    queue = CeleryTaskQueue(flaky, batch_size=2, backoff=Backoff(first=0.01, cap=0.05))
    queue.start()
    queue.submit([1, 2, 3])
    assert queue.wait_idle(timeout=10)
    queue.stop()
    assert sent == [[1, 2], [3]]
    assert "could not queue images [1, 2] on the Celery broker (broker down); kept" in caplog.text


@pytest.mark.parametrize(
    "fault",
    [
        OperationalError("SELECT", {}, ConnectionError("database down")),
        OSError(errno.ENOSPC, "No space left on device"),
    ],
    ids=["database-down", "disk-full"],
)
def test_task_is_acked_late_and_retried_until_the_fault_is_gone(
    monkeypatch: pytest.MonkeyPatch, engine: Engine, fault: Exception
) -> None:
    settings = Settings(_env_file=None, task_backend="celery", celery_broker_url=REDIS_URL)
    app = celery_app.create_celery_app(settings)
    task = app.tasks[celery_app.PROCESS_IMAGES_TASK]
    assert (task.acks_late, task.reject_on_worker_lost, task.serializer) == (True, True, "json")
    assert app.conf.worker_prefetch_multiplier == 1
    # Longer than the 12 retries the task used to give up after (the work was then dropped).
    failing_attempts = 20
    attempts: list[int] = []
    working = sessionmaker(engine)

    def flaky_database() -> Session:
        attempts.append(1)
        if len(attempts) <= failing_attempts:
            raise fault
        return working()

    class NoModel:
        def load(self) -> None:
            raise RuntimeError("no model")

    worker = celery_app.WorkerProcess(settings, None, flaky_database, NoModel())  # type: ignore[arg-type]
    monkeypatch.setattr(celery_app, "worker_process", lambda: worker)
    result = task.apply(args=[[1, 2]])  # eager: the retries run at once, without the backoff
    assert result.state == "SUCCESS", result.result
    assert len(attempts) == failing_attempts + 1
