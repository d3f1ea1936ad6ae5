"""Big batches, small answers: the image list's count, creating a 100k batch, analyze's summary.

    python -m bench.big_answers [--rows 100000] [--before ab876e0] [--rounds 5] [--no-analyze]

Before and after in the same run: the code at `--before` (a git revision, unpacked with
`git archive` into a temporary folder) and this checkout each run a real `uvicorn api.main:app`
(offline encoder) on a fresh PostgreSQL database of their own, migrated by their own Alembic,
with the same `--rows` image rows inserted directly (384-d photo-like vectors). Then, in
interleaved rounds (the machine is shared):
- `GET /images/?limit=100` p50 (the list plus its `X-Total-Count`), before vs after;
- `POST /batches/` with every id, before vs after, full answer and `view=summary` (a `before`
  without the summary view answers the full page there: see its answer's size);
- this checkout only: `PUT /batches/{id}/analyze?view=summary` on the whole library, and the
  size of the full page (`GET /batches/{id}`: the same body as analyze's default answer)
  against the summary (`GET /batches/{id}?view=summary`), whose groups must equal the page's.
The count query itself is timed in-process too: `count(*)` against the trigger-kept counter.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
from sqlalchemy import String, cast, func, select, update
from sqlalchemy.orm import Session

from bench.analyze_scale import insert_photo_like
from bench.batch_reads import PROJECT_ROOT, running_server
from bench.scratch import scratch_postgres
from crud import crud_image
from database.database import create_db_engine
from database.models import Image, ImageBatchAssociation

# The revision measured as 'before' by default: main before the third round of issue 22
# point 5 (memberships checked per statement; the first round started from ab876e0, the
# second from 64b818e).
BEFORE = "b96635d"
TARGETS = {
    "list": "GET /images/?limit=100 p50 <= 15 ms at 100k rows",
    "create": "POST /batches/ with 100k ids <= 2 s",
    "analyze": "analyze answer <= 1 MB at 100k when a summary is asked",
}


def unpack(revision: str, into: Path) -> Path:
    """The tree of `revision` of this repository, as files under `into`."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision],
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
    ).stdout
    into.mkdir(parents=True)
    tar = into.with_suffix(".tar")
    tar.write_bytes(archive)
    with tarfile.open(tar) as opened:
        opened.extractall(into, filter="data")
    tar.unlink()
    return into


def migrate(checkout: Path, url: str) -> None:
    """`alembic upgrade head` with the migrations of `checkout`."""
    code = (
        "import sys; from database.migrations import upgrade_to_head; upgrade_to_head(sys.argv[1])"
    )
    subprocess.run([sys.executable, "-c", code, url], cwd=checkout, check=True)


@contextmanager
def side(checkout: Path, tmp: Path, rows: int) -> Iterator[tuple[str, str, list[int]]]:
    """A server of `checkout` (its URL) on a fresh database (its URL) holding `rows` images."""
    tmp.mkdir(parents=True, exist_ok=True)
    with scratch_postgres() as url:
        migrate(checkout, url)
        with running_server(url, tmp / "assets", checkout) as base:
            health = httpx.get(f"{base}/health", timeout=60).json()
            model = health["model"]["active_model"] or health["model"]["configured_model"]
            yield base, url, insert_photo_like(url, rows, model)


def timed(client: httpx.Client, method: str, path: str, **kwargs: object) -> tuple[float, bytes]:
    start = time.perf_counter()
    response = client.request(method, path, **kwargs)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - start
    response.raise_for_status()
    return elapsed, response.content


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def line(figure: str, before: str, after: str, target: str) -> None:
    print(f"{figure:<44} | {before:>16} | {after:>16} | {target}", flush=True)


def count_queries(url: str, repeats: int = 20) -> tuple[float, float]:
    """Median seconds of `count(*)` over images and of the counter's read, in-process."""
    engine = create_db_engine(url)
    full: list[float] = []
    counter: list[float] = []
    with Session(engine) as session:
        for _ in range(repeats):
            start = time.perf_counter()
            exact = session.scalar(select(func.count()).select_from(Image))
            full.append(time.perf_counter() - start)
            start = time.perf_counter()
            kept = crud_image.count_images(session)
            counter.append(time.perf_counter() - start)
            assert exact == kept, (exact, kept)
    engine.dispose()
    return statistics.median(full), statistics.median(counter)


def labelled_groups(client: httpx.Client, url: str, ids: list[int], size: int = 8) -> None:
    """A batch of every image labelled directly in groups of `size`, ranked (many groups: the
    summary's size grows with them, ~100 bytes each): full page against summary."""
    response = client.post("/batches/?view=summary", json={"name": "groups", "image_ids": ids})
    batch_id = response.raise_for_status().json()["id"]
    at = ImageBatchAssociation.image_id - ids[0]
    engine = create_db_engine(url)
    with engine.begin() as conn:
        conn.execute(
            update(ImageBatchAssociation)
            .where(ImageBatchAssociation.batch_id == batch_id)
            .values(
                group_label="Group " + cast(at // size + 1, String),
                quality_rank=at % size + 1,
            )
        )
    engine.dispose()
    full = timed(client, "GET", f"/batches/{batch_id}")[1]
    answered = client.get(f"/batches/{batch_id}?view=summary").raise_for_status()
    summary, listed = answered.content, answered.json()["groups"]
    page = httpx.Response(200, content=full).json()
    # The summary lists the first groups of the page (all of them before group paging).
    same = page["groups"][: len(listed)] == listed
    total = answered.headers.get("X-Total-Groups", "-")
    line(
        f"{len(ids)} in {len(page['groups'])} groups of {size} (full / summary)",
        f"{len(full) / 1e6:.1f} MB",
        f"{len(summary) / 1e3:.0f} KB",
        f"{len(listed)} groups listed, X-Total-Groups {total}, equal to the page's: {same}",
    )
    client.delete(f"/batches/{batch_id}").raise_for_status()


def run(rows: int, revision: str, rounds: int, analyze: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp_dir, ExitStack() as stack:
        tmp = Path(tmp_dir)
        before_tree = unpack(revision, tmp / "before")
        old, _, old_ids = stack.enter_context(side(before_tree, tmp / "b", rows))
        new, new_url, new_ids = stack.enter_context(side(PROJECT_ROOT, tmp / "a", rows))
        print(
            f"\n{rows} images on PostgreSQL, before = {revision}, after = this checkout "
            f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
        )
        line("figure", "before", "after", "target")
        clients = {
            name: stack.enter_context(httpx.Client(base_url=base, timeout=3600))
            for name, base in (("before", old), ("after", new))
        }
        lists: dict[str, list[float]] = {"before": [], "after": []}
        for round_ in range(rounds):
            order = ("before", "after") if round_ % 2 == 0 else ("after", "before")
            for name in order:
                timed(clients[name], "GET", "/images/?limit=100")  # warm-up
                for _ in range(30):
                    lists[name].append(timed(clients[name], "GET", "/images/?limit=100")[0])
        line(
            "GET /images/?limit=100 p50",
            ms(statistics.median(lists["before"])),
            ms(statistics.median(lists["after"])),
            TARGETS["list"],
        )
        full_count, kept_count = count_queries(new_url)
        line("count(*) vs counter read (in-process)", ms(full_count), ms(kept_count), "-")

        names = ("before", "after", "summary", "summary before")
        creates: dict[str, list[float]] = {name: [] for name in names}
        sizes: dict[str, int] = {}
        ids = {"before": old_ids, "after": new_ids, "summary": new_ids, "summary before": old_ids}
        for round_ in range(max(1, rounds // 2)):
            for name in names if round_ % 2 == 0 else names[::-1]:
                client = clients["before" if name.endswith("before") else "after"]
                view = "?view=summary" if name.startswith("summary") else ""
                body = {"name": f"bench {name} {round_}", "image_ids": ids[name]}
                seconds, content = timed(client, "POST", f"/batches/{view}", json=body)
                creates[name].append(seconds)
                sizes[name] = len(content)
                batch_id = httpx.Response(201, content=content).json()["id"]
                client.delete(f"/batches/{batch_id}").raise_for_status()
        line(
            f"POST /batches/ {rows} ids, full answer, median",
            f"{statistics.median(creates['before']):.2f} s",
            f"{statistics.median(creates['after']):.2f} s",
            TARGETS["create"],
        )
        line(
            f"POST /batches/?view=summary {rows} ids",
            f"{statistics.median(creates['summary before']):.2f} s",
            f"{statistics.median(creates['summary']):.2f} s",
            f"answer {sizes['summary'] / 1e3:.1f} KB (full: {sizes['after'] / 1e6:.1f} MB; "
            f"before: {sizes['summary before'] / 1e3:.1f} KB)",
        )
        labelled_groups(clients["after"], new_url, new_ids)
        if analyze:
            client = clients["after"]
            batch = client.post(
                "/batches/?view=summary", json={"name": "analyze", "image_ids": new_ids}
            )
            batch_id = batch.raise_for_status().json()["id"]
            seconds, answer = timed(client, "PUT", f"/batches/{batch_id}/analyze?view=summary")
            full = timed(client, "GET", f"/batches/{batch_id}")[1]
            summary = timed(client, "GET", f"/batches/{batch_id}?view=summary")[1]
            answered = httpx.Response(200, content=answer).json()
            page = httpx.Response(200, content=full).json()
            same = (
                answered["groups"]
                == page["groups"]
                == httpx.Response(200, content=summary).json()["groups"]
            )
            line(
                f"analyze answer at {rows} (full / summary)",
                f"{len(full) / 1e6:.1f} MB",
                f"{len(answer) / 1e3:.0f} KB",
                TARGETS["analyze"],
            )
            print(
                f"  analyze?view=summary took {seconds:.1f} s; {len(page['groups'])} groups; "
                f"summary groups equal to the page's: {same}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--before", default=BEFORE, help="git revision measured as 'before'")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-analyze", action="store_true", help="skip the 100k analysis")
    args = parser.parse_args()
    print(f"command: python -m bench.big_answers {' '.join(sys.argv[1:])}".rstrip())
    run(args.rows, args.before, args.rounds, not args.no_analyze)


if __name__ == "__main__":
    main()
