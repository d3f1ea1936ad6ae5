"""Runs schemathesis (every check, stateful phases) against a real server on PostgreSQL.

Issue 18 asks for >= 20k cases with 0 failures.

    python -m bench.schemathesis_campaign [--max-examples 400] [--seed 18] [--out FILE]

Starts the server (uvicorn, a throwaway database, the tiny random DINOv3 of the tests, an API
key required, IMPORT_ROOTS set to a scratch folder of real JPEGs), stores a few images and two
batches through the API and imports one folder in place (so that ids found by the stateful phase
name real rows), then runs the schemathesis CLI over HTTP with every phase (examples, coverage,
fuzzing, stateful: links inferred from the responses) and every check.

What is reached: every operation of the schema, with ids 1 and 2 naming real images, batches
and an import. Under /imports: the import root holds two folders of 3 JPEGs each, `shoot`
(imported once before the campaign: import 1, complete, so `getImport` and
`writeImportSidecars` read and write real sidecars beside real originals) and `0` (the
shortest string the generators draw for a path, so generated `importFolder` requests import
it again and again: hashing, a new batch, duplicates, the processing of the first time);
other generated paths answer 404 (no such folder under the root), 403 (absolute, outside the
root) or 400 (`..`, NUL). What is not reached: imports with failures of their own (files
that are not photos, symlinks out of the root: tests/api/test_imports.py covers them), a
Celery worker (tasks run inline), a model still loading, and any dependency outage (the 503s
are exercised by tests/system, not here).
The only settings are the statuses a schema-valid request may still get for what a schema
cannot say (the SPEC's 400s: a file that is not an image, a group map that misses a member;
413 for a file over the size limit), as in tests/api/test_schemathesis.py. Prints the CLI's
summary; the exit code is the CLI's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.scratch import scratch_postgres
from tests.factories import jpeg_bytes
from tests.system.conftest import ServerProcess
from tests.tiny_models import build_tiny_dinov3

DEFAULT_POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
API_KEY = "campaign-key"

CONFIG = """
[checks]
# Starlette answers a wrong method with the Allow header of the first route whose path
# matched; checked all the same (all checks), reported if it fails.

[[operations]]
include-operation-id = ["uploadImages", "uploadAndAddImagesToBatch"]
checks.positive_data_acceptance.expected-statuses = ["2xx", 400, 401, 403, 404, 409, 413, 429]

[[operations]]
include-operation-id = ["analyzeBatch", "updateGroupsInBatch"]
checks.positive_data_acceptance.expected-statuses = ["2xx", 400, 401, 403, 404, 409, 429]
"""


# Folders under the import root: `shoot` is imported before the campaign, `0` is the path the
# generators draw most often (see the docstring). Seeds apart from the uploads' (no duplicates).
IMPORT_FOLDERS = {"shoot": (10, 11, 12), "0": (20, 21, 22)}


def make_import_root(root: Path) -> Path:
    """A scratch import root with a few real JPEGs in each of IMPORT_FOLDERS."""
    for folder, seeds in IMPORT_FOLDERS.items():
        (root / folder).mkdir(parents=True)
        for seed in seeds:
            (root / folder / f"IMG_{seed:04d}.JPG").write_bytes(jpeg_bytes(seed=seed))
    return root


def seed_rows(url: str) -> None:
    """Images, two batches (one grouped) and an import in place (complete), through the API."""
    headers = {"X-API-Key": API_KEY}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        files = [("files", (f"{i}.jpg", jpeg_bytes(seed=i), "image/jpeg")) for i in range(4)]
        response = client.post("/images/upload", files=files)
        response.raise_for_status()
        ids = [item["id"] for item in response.json()]
        for name, members in (("Grouped", ids), ("Single", ids[:1])):
            client.post("/batches/", json={"name": name, "image_ids": members}).raise_for_status()
        client.put(
            "/batches/1/groups", json={"group_map": {"Group 1": ids[:3], "Ungrouped": ids[3:]}}
        )
        started = client.post("/imports", json={"path": "shoot", "batch_name": "Imported"})
        started.raise_for_status()
        progress_url = f"/imports/{started.json()['id']}"
        deadline = time.monotonic() + 120
        while (progress := client.get(progress_url).json())["status"] in {"pending", "running"}:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the seed import did not finish: {progress}")
            time.sleep(0.2)
        if (progress["status"], progress["done"], progress["failed"]) != ("complete", 3, 0):
            raise RuntimeError(f"the seed import did not index its 3 photos: {progress}")


def count_imports(url: str) -> dict[str, int]:
    """How many imports the server holds, by status: shows the campaign reached /imports."""
    counts: dict[str, int] = {}
    with httpx.Client(base_url=url, headers={"X-API-Key": API_KEY}, timeout=60) as client:
        import_id = 1
        while (response := client.get(f"/imports/{import_id}")).status_code == 200:
            status = response.json()["status"]
            counts[status] = counts.get(status, 0) + 1
            import_id += 1
    return counts


def last_lines_of_tracebacks(log: str, limit: int = 20) -> list[str]:
    """The exception line that ends each traceback in the server log (the first `limit`)."""
    found: list[str] = []
    lines = log.splitlines()
    for start, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last)"):
            rest = (text for text in lines[start + 1 :] if text and not text[0].isspace())
            found.append(f"  {next(rest, '?')[:300]}")
    return found[:limit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=400)
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--workers", default="2")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory() as tmp,
        scratch_postgres(args.postgres_url, migrate=True) as db_url,
    ):
        env = {
            **os.environ,
            "DATABASE_URL": db_url,
            "STORAGE_ROOT": str(Path(tmp) / "assets"),
            "EMBEDDING_MODEL": str(build_tiny_dinov3(Path(tmp) / "tiny")),
            "EMBEDDING_DEVICE": "cpu",
            "TORCH_THREADS": "1",
            "TASK_BACKEND": "inline",
            "API_KEY": API_KEY,
            "IMPORT_ROOTS": str(make_import_root(Path(tmp) / "roots")),
            "PYTHONUNBUFFERED": "1",
        }
        server = ServerProcess(env=env, log_path=Path(tmp) / "server.log")
        server.start()
        try:
            seed_rows(server.url)
            config = Path(tmp) / "schemathesis.toml"
            config.write_text(CONFIG)
            command = [
                str(Path(sys.executable).with_name("schemathesis")),
                "--config-file",
                str(config),
                "run",
                f"{server.url}/openapi.json",
                "--checks",
                "all",
                "--phases",
                "examples,coverage,fuzzing,stateful",
                "--max-examples",
                str(args.max_examples),
                "--seed",
                str(args.seed),
                "--workers",
                args.workers,
                "--generation-database",
                "none",
                "--header",
                f"X-API-Key: {API_KEY}",
                "--continue-on-failure",
                "--no-color",
                "--output-truncate",
                "true",
            ]
            # In the temp folder: the CLI keeps a crash cache under its working directory.
            result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=tmp)
            imports = count_imports(server.url)
            log = server.log_path.read_text(errors="replace")
        finally:
            server.stop()

    shown = " ".join(command).replace(str(config), "<the CONFIG above>")
    text = "\n".join(
        [
            f"$ python -m bench.schemathesis_campaign {' '.join(sys.argv[1:])}",
            f"# runs: {shown}",
            result.stdout[-20000:],
            result.stderr[-3000:],
            f"exit code: {result.returncode}",
            f"imports in place made (by status, the seed's included): {imports}",
            f"tracebacks in the server log: {log.count('Traceback (most recent call last)')}",
            *last_lines_of_tracebacks(log),
        ]
    )
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
