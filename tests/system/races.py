"""Interleaved writes against a real server (issue 18, items 4-6): the harness that
tests/system/test_races.py runs for a few rounds and `python -m bench.races` for a thousand.

Each round builds a batch of six processed images in two ranked groups, then releases at the
same instant (each then waits a random 0-0.5 s): an analysis, the removal of group 1's keeper
from the batch, the delete of another member image, a re-rank of group 1, the add of an image
being deleted (and a fresh one), a CSV export and a JSON read; every third round the batch
itself is deleted as well.
Afterwards the database is read directly: every group must still have exactly one keeper
(rank 1). A 500 is a defect; a 503 ("database unavailable") during a race is one too.

`reversed_uploads` sends the same files twice at once, one list reversed (item 6).
"""

from __future__ import annotations

import collections
import functools
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import httpx
from sqlalchemy import Engine, func, select

from database.models import ImageBatchAssociation
from tests.factories import jpeg_bytes

UNGROUPED = "Ungrouped"
ROUND_IMAGES = 6
MAX_DELAY = 0.5  # seconds
T = TypeVar("T")


@dataclass
class RaceReport:
    rounds: int = 0
    statuses: collections.Counter[tuple[str, int]] = field(default_factory=collections.Counter)
    # (operation, status, body excerpt) of every 5xx.
    server_errors: list[tuple[str, int, str]] = field(default_factory=list)
    groups_checked: int = 0
    keeperless: list[tuple[int, str | None, list[int | None]]] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: int) -> int:
        return sum(n for (_op, code), n in self.statuses.items() if code == status)

    def summary(self) -> str:
        by_op: dict[str, dict[int, int]] = collections.defaultdict(dict)
        for (op, code), n in sorted(self.statuses.items()):
            by_op[op][code] = n
        lines = [
            f"rounds: {self.rounds} in {self.seconds:.0f} s",
            f"500s: {self.count(500)}",
            f"503s: {self.count(503)}",
            f"groups checked: {self.groups_checked}",
            f"groups without exactly one keeper: {len(self.keeperless)}",
        ]
        lines += [f"  {op}: {codes}" for op, codes in by_op.items()]
        errors = collections.Counter(
            (op, code, body[:160]) for op, code, body in self.server_errors
        )
        lines += [f"  {n} x {op} {code}: {body}" for (op, code, body), n in errors.most_common(8)]
        lines += [
            f"  keeperless: batch {b} {label!r} ranks {r}" for b, label, r in self.keeperless[:8]
        ]
        return "\n".join(lines)


class ImagePool:
    """Processed images available to the rounds; uploads more (and waits for the worker to
    finish them, so an analysis can run) when it runs low."""

    def __init__(self, client: httpx.Client, seed: int, wait: Callable[[], object]) -> None:
        self.client, self.wait = client, wait
        self.seed = seed
        self.alive: list[int] = []

    def take(self, count: int, rng: random.Random) -> list[int]:
        if len(self.alive) < count + 8:
            self._upload(24)
        return rng.sample(self.alive, count)

    def _upload(self, count: int) -> None:
        files = []
        for _ in range(count):
            self.seed += 1
            files.append(("files", (f"r{self.seed}.jpg", jpeg_bytes(seed=self.seed), "image/jpeg")))
        response = self.client.post("/images/upload", files=files)
        assert response.status_code == 200, response.text
        self.alive.extend(item["id"] for item in response.json() if item["id"] not in self.alive)
        self.wait()

    def deleted(self, image_id: int) -> None:
        if image_id in self.alive:
            self.alive.remove(image_id)


def _setup_batch(client: httpx.Client, ids: list[int]) -> int:
    response = client.post("/batches/", json={"name": "race", "image_ids": ids})
    assert response.status_code == 201, response.text
    batch_id = int(response.json()["id"])
    group_map = {"Group 1": ids[:3], "Group 2": ids[3:5], UNGROUPED: ids[5:]}
    response = client.put(f"/batches/{batch_id}/groups", json={"group_map": group_map})
    assert response.status_code == 200, response.text
    return batch_id


def _operations(
    batch_id: int, ids: list[int], fresh: int, drop_batch: bool
) -> list[tuple[str, str, str, dict[str, object] | None]]:
    """(name, method, path, JSON body) of one round's concurrent requests."""
    keeper, doomed = ids[0], ids[1]
    ops: list[tuple[str, str, str, dict[str, object] | None]] = [
        ("analyze", "PUT", f"/batches/{batch_id}/analyze", {"min_cluster_size": 2}),
        ("remove", "DELETE", f"/batches/{batch_id}/images", {"image_ids": [keeper]}),
        ("delete_image", "DELETE", f"/images/{doomed}", None),
        ("rank", "POST", f"/batches/{batch_id}/groups/Group%201/rank", None),
        ("add", "POST", f"/batches/{batch_id}/images", {"image_ids": [fresh, doomed]}),
        ("export", "GET", f"/batches/{batch_id}/export?format=csv", None),
        ("read", "GET", f"/batches/{batch_id}", None),
    ]
    if drop_batch:
        ops.append(("delete_batch", "DELETE", f"/batches/{batch_id}", None))
    return ops


def _keeperless(
    engine: Engine, batch_ids: list[int]
) -> tuple[int, list[tuple[int, str | None, list[int | None]]]]:
    """(groups checked, groups whose members do not hold exactly one rank 1)."""
    a = ImageBatchAssociation
    query = (
        select(a.batch_id, a.group_label, func.count(), func.count().filter(a.quality_rank == 1))
        .where(a.batch_id.in_(batch_ids), a.group_label.is_not(None), a.group_label != UNGROUPED)
        .group_by(a.batch_id, a.group_label)
    )
    bad = []
    with engine.connect() as conn:
        rows = list(conn.execute(query))
        for batch_id, label, _members, keepers in rows:
            if keepers != 1:
                ranks = conn.scalars(
                    select(a.quality_rank).where(a.batch_id == batch_id, a.group_label == label)
                ).all()
                bad.append((batch_id, label, list(ranks)))
    return len(rows), bad


def together(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Call each from its own thread, all released at the same instant."""
    barrier = threading.Barrier(len(calls))
    results: list[T | None] = [None] * len(calls)

    def run(at: int) -> None:
        barrier.wait()
        results[at] = calls[at]()

    threads = [threading.Thread(target=run, args=(at,)) for at in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [result for result in results if result is not None]


def _send(
    client: httpx.Client,
    delay: float,
    name: str,
    method: str,
    path: str,
    body: dict[str, object] | None,
) -> tuple[str, int, str]:
    time.sleep(delay)
    try:
        response = client.request(method, path, json=body)
    except httpx.HTTPError as exc:
        return name, -1, repr(exc)
    return name, response.status_code, response.text


def _upload(url: str, files: list[tuple[str, bytes]]) -> str:
    with httpx.Client(base_url=url, timeout=300) as client:
        body = [("files", (name, data, "image/jpeg")) for name, data in files]
        try:
            return str(client.post("/images/upload", files=body).status_code)
        except httpx.HTTPError as exc:
            return type(exc).__name__


def race_rounds(
    url: str,
    engine: Engine,
    rounds: int,
    wait_processed: Callable[[], object],
    seed: int = 0,
    progress: Callable[[int, RaceReport], None] | None = None,
) -> RaceReport:
    """Run `rounds` rounds of interleaved operations against the server at `url`."""
    report = RaceReport()
    rng = random.Random(seed)
    started = time.monotonic()
    with httpx.Client(base_url=url, timeout=300) as setup:
        pool = ImagePool(setup, seed=10_000_000 + seed * 100_000, wait=wait_processed)
        clients = [httpx.Client(base_url=url, timeout=300) for _ in range(8)]
        try:
            for n in range(rounds):
                ids = pool.take(ROUND_IMAGES + 1, rng)
                members, fresh = ids[:ROUND_IMAGES], ids[ROUND_IMAGES]
                batch_id = _setup_batch(setup, members)
                ops = _operations(batch_id, members, fresh, drop_batch=n % 3 == 2)
                rng.shuffle(ops)
                # Each starts up to MAX_DELAY late: every order of the operations comes up,
                # including an analysis that finishes before the others change the batch.
                calls = [
                    functools.partial(_send, clients[at], rng.uniform(0, MAX_DELAY), *op)
                    for at, op in enumerate(ops)
                ]
                results = together(calls)
                for name, status, text in results:
                    report.statuses[(name, status)] += 1
                    if status >= 500 or status < 0:
                        report.server_errors.append((name, status, text))
                pool.deleted(members[1])
                checked, bad = _keeperless(engine, [batch_id])
                report.groups_checked += checked
                report.keeperless.extend(bad)
                report.rounds += 1
                if progress is not None:
                    progress(n + 1, report)
        finally:
            for client in clients:
                client.close()
    report.seconds = time.monotonic() - started
    return report


def reversed_uploads(
    url: str, trials: int, files: int = 20, seed: int = 0
) -> collections.Counter[str]:
    """Two uploads of the same `files` new JPEGs at once, one in reverse order; the statuses
    of both, over `trials` trials (each with new files)."""
    seen: collections.Counter[str] = collections.Counter()
    for trial in range(trials):
        batch = [
            (f"u{trial}-{k}.jpg", jpeg_bytes(seed=20_000_000 + seed * 100_000 + trial * files + k))
            for k in range(files)
        ]
        calls = [functools.partial(_upload, url, order) for order in (batch, batch[::-1])]
        statuses = together(calls)
        seen.update(statuses)
    return seen
