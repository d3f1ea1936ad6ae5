"""Analyze at scale: time, peak RSS, agreement with the exact path, planted noise, cold start.

Run by hand, never in the tests (each measure runs in a fresh subprocess, so its peak RSS is its
own and a cold start is really cold):
    python -m bench.analyze_scale                         # 1k..100k at 384-d, 1k..50k at 1280-d
    python -m bench.analyze_scale --sizes 1000,20000 --dims 384 --no-cold
    python -m bench.analyze_scale --before 20000          # + the old PCA + prims_kdtree path
    python -m bench.analyze_scale --http 50000 --sizes "" # end to end: a real server, PostgreSQL
    python -m bench.analyze_scale --http 50000 --sizes "" --no-cold --isolation process,thread

--http N: a fresh PostgreSQL database (bench/scratch.py: BENCH_POSTGRES_URL, default local), N image
rows with 384-d photo-like vectors inserted directly, a real `uvicorn api.main:app` process, then
`PUT /batches/{id}/analyze` timed while another client polls `GET /images/?limit=100` (its
p50/p99 while the analysis runs), and the peak RSS (VmHWM) of the server and of each of its
child processes (the clustering worker; the 10-20 MB one is multiprocessing's resource tracker).
--isolation process,thread runs it once per ANALYSIS_ISOLATION: the worker process (default)
against the old in-process threads, in the same run.

Vectors imitate photo embeddings on the unit sphere: scenes sharing a common direction, bursts of
3-30 near-duplicates around them (power-law spectrum, as bench/grouping.py), 10% unrelated
shots near a scene, and 2% planted noise: isotropic directions, far from everything, which a
correct clustering labels "Ungrouped". Agreement is the adjusted Rand index of the kNN-graph
path against the exact path (ImageGrouper with the threshold raised) on the same vectors.

Each line "figure | target" is meant for bench/library_scale.py; `figures()` returns them too.
The machine is shared: compare figures of one run (ratios) rather than absolute seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

PLANTED_NOISE = 0.02
MIN_CLUSTER_SIZE = 5
MIN_SAMPLES = 5
TARGET_SECONDS = {50_000: 20.0, 100_000: 45.0}
TARGET_RSS_MB = 1536.0
TARGET_ARI = 0.95
# The exact path at 10k 384-d rows on this machine when idle (processing/grouping.py).
IDLE_EXACT_10K_SECONDS = 2.2


def photo_like(n: int, dim: int, seed: int = 0) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """n unit vectors (bursts, singles near scenes, planted noise) and the planted-noise mask."""
    rng = np.random.default_rng(seed)
    # A random orthogonal basis via QR of dim×dim is slow at 1280; a random rotation is not
    # needed for the spectrum, only its decay: std of the k-th direction ~ k^-0.5.
    scale = (np.arange(dim) + 1.0) ** -0.5
    perm = rng.permutation(dim)

    def unit(a: NDArray[np.float64]) -> NDArray[np.float64]:
        normalised: NDArray[np.float64] = a / np.linalg.norm(a, axis=-1, keepdims=True)
        return normalised

    def directions(*shape: int) -> NDArray[np.float64]:
        return unit((rng.normal(size=(*shape, dim)) * scale)[..., perm])

    common = unit(rng.normal(size=dim))
    themes = unit(0.6 * common + directions(max(1, n // 150)))
    n_noise = int(n * PLANTED_NOISE)
    n_single = int(n * 0.1)
    n_burst = n - n_noise - n_single
    bursts, total = [], 0
    while total < n_burst:
        size = int(rng.integers(3, 31))
        centre = unit(themes[rng.integers(len(themes))] + 0.9 * directions())
        bursts.append(unit(centre + rng.uniform(0.15, 0.45) * directions(size)).astype(np.float32))
        total += size
    x = np.concatenate(bursts)[:n_burst]
    singles = unit(themes[rng.integers(len(themes), size=n_single)] + 1.2 * directions(n_single))
    noise = unit(rng.normal(size=(n_noise, dim)))
    rows = np.concatenate([x, singles.astype(np.float32), noise.astype(np.float32)])
    planted = np.zeros(n, dtype=bool)
    planted[n - n_noise :] = True
    order = rng.permutation(n)
    return np.ascontiguousarray(rows[order]), planted[order]


def _maxrss_mb() -> float:
    """This process's peak RSS since its exec (VmHWM; ru_maxrss would carry the parent's)."""
    return _vm_hwm_mb(os.getpid())


def _child(n: int, dim: int, path: str, out: str, cold: bool) -> None:
    """One measure in this (fresh) process; prints one JSON line."""
    started = time.perf_counter()
    from processing.grouping import ImageGrouper

    imported = time.perf_counter() - started
    x, planted = photo_like(n, dim, seed=n + dim)
    rss_before = _maxrss_mb()
    if path == "pca":
        labels, seconds = _old_pca_path(x)
    else:
        threshold = {"exact": 10**9, "knn": 0, "auto": None}[path]
        grouper = (
            ImageGrouper(5, 5)
            if threshold is None
            else ImageGrouper(5, 5, large_batch_rows=threshold)
        )
        start = time.perf_counter()
        labels = grouper.fit_labels(x).labels
        seconds = time.perf_counter() - start
    second = None
    if cold:
        start = time.perf_counter()
        ImageGrouper(5, 5).fit_labels(x)
        second = time.perf_counter() - start
    named = np.array(["" if label == "Ungrouped" else label for label in labels])
    np.save(out, named)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "second_seconds": second,
                "import_seconds": imported,
                "rss_mb": _maxrss_mb(),
                "rss_before_mb": rss_before,
                "noise_found": float(np.mean(named[planted] == "")),
            }
        )
    )


def _old_pca_path(x: NDArray[np.float32]) -> tuple[list[str], float]:
    """What large batches ran before: PCA to 50 dims + hdbscan's prims_kdtree (labels named
    only by id: agreement and noise do not need the names)."""
    import hdbscan
    from sklearn.decomposition import PCA

    start = time.perf_counter()
    reduced = PCA(n_components=50, svd_solver="covariance_eigh").fit_transform(x.astype(np.float64))
    raw = (
        hdbscan.HDBSCAN(
            min_cluster_size=MIN_CLUSTER_SIZE,
            min_samples=MIN_SAMPLES,
            metric="euclidean",
            algorithm="prims_kdtree",
        )
        .fit(reduced)
        .labels_
    )
    seconds = time.perf_counter() - start
    return [f"Group {r}" if r >= 0 else "Ungrouped" for r in raw], seconds


@dataclass
class Measure:
    n: int
    dim: int
    path: str
    seconds: float
    rss_mb: float
    labels: NDArray[np.str_]
    second_seconds: float | None = None
    import_seconds: float = 0.0
    noise_found: float = 0.0


def measure(n: int, dim: int, path: str, *, cold: bool = False) -> Measure:
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "labels.npy")
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        args = [sys.executable, "-m", "bench.analyze_scale", "--child", str(n), str(dim), path]
        args += [out] + (["--cold"] if cold else [])
        done = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{shlex.join(args)} failed:\n{done.stderr[-2000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        labels = np.load(out)
    return Measure(
        n,
        dim,
        path,
        result["seconds"],
        result["rss_mb"],
        labels,
        result["second_seconds"],
        result["import_seconds"],
        result["noise_found"],
    )


def _ari(a: NDArray[np.str_], b: NDArray[np.str_]) -> float:
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(a, b))


def _noise_found(m: Measure) -> float:
    return m.noise_found


def figures(
    sizes: list[int],
    dims: list[int],
    exact_limit: int,
    before: list[int],
    cold: bool,
    big_dim_limit: int,
) -> list[str]:
    lines: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    if sizes:
        # The machine is shared: one known workload, timed in this run, says how loaded it is.
        reference = measure(10_000, 384, "exact")
        factor = reference.seconds / IDLE_EXACT_10K_SECONDS
        say(
            f"load reference: exact path 10000 x 384 {reference.seconds:.2f} s here vs "
            f"{IDLE_EXACT_10K_SECONDS} s on an idle machine (processing/grouping.py): "
            f"times below are ~{factor:.1f}x idle"
        )
    for dim in dims:
        say(f"== {dim}-d ==")
        crossover = None
        for n in sizes:
            if dim > 384 and n > big_dim_limit:
                continue
            graph = measure(n, dim, "knn")
            noise = _noise_found(graph)
            text = (
                f"analyze {n:>6} x {dim}: kNN graph {graph.seconds:6.2f} s, "
                f"peak RSS {graph.rss_mb:6.0f} MB, planted noise as noise {noise:.0%}"
            )
            if n <= exact_limit:
                exact = measure(n, dim, "exact")
                ari = _ari(exact.labels, graph.labels)
                text += (
                    f"; exact {exact.seconds:6.2f} s, {exact.rss_mb:6.0f} MB, "
                    f"ratio exact/kNN {exact.seconds / graph.seconds:4.2f}, ARI {ari:.3f}"
                    f", exact finds {_noise_found(exact):.0%} of planted noise"
                )
                if exact.seconds <= graph.seconds and exact.rss_mb <= TARGET_RSS_MB:
                    crossover = n
                if n == exact_limit:
                    text += f" | target ARI >= {TARGET_ARI}"
            target = TARGET_SECONDS.get(n)
            if target:
                text += f" | target <= {target:.0f} s"
            if n == max(sizes):
                text += f", peak RSS <= {TARGET_RSS_MB:.0f} MB"
            say(text)
        say(
            f"crossover {dim}-d: exact path both faster and <= {TARGET_RSS_MB:.0f} MB up to "
            f"{crossover or 'none of the sizes'} rows"
        )
        for n in before:
            old = measure(n, dim, "pca")
            new = measure(n, dim, "auto")
            say(
                f"before/after {n} x {dim}: PCA+prims_kdtree {old.seconds:6.2f} s, "
                f"{old.rss_mb:6.0f} MB, noise {_noise_found(old):.0%} -> default path "
                f"{new.seconds:6.2f} s, {new.rss_mb:6.0f} MB, noise {_noise_found(new):.0%} "
                f"(ratio {old.seconds / new.seconds:.1f}x)"
            )
    if cold:
        n = 50_000
        first = measure(n, 384, "auto", cold=True)
        say(
            f"cold start, fresh process, {n} x 384: import {first.import_seconds:.2f} s, first "
            f"analyze {first.seconds:.2f} s, second {first.second_seconds or 0:.2f} s "
            f"(ratio {first.seconds / (first.second_seconds or first.seconds):.2f}) "
            "| target: first ~ second (no JIT on a user's request)"
        )
    return lines


def insert_photo_like(url: str, n: int, model: str, **columns: object) -> list[int]:
    """`n` image rows with photo-like 384-d vectors of `model` (and `columns`), straight into
    the database at `url` (their files are never read by an analysis); their ids. Into the
    table as the database has it (reflected): an older schema (bench.big_answers) takes them."""
    import uuid

    from sqlalchemy import MetaData, Table, create_engine, insert, select

    from database.models import SCHEMA

    x, _ = photo_like(n, 384, seed=n + 384)
    engine = create_engine(url)
    images = Table("images", MetaData(schema=SCHEMA), autoload_with=engine)
    tag = uuid.uuid4().hex[:8]
    with engine.begin() as conn:
        for start in range(0, n, 5000):
            conn.execute(
                insert(images),
                [
                    {
                        "filename": f"{tag}-{i}.jpg",
                        "original_filename": f"{i}.jpg",
                        "file_path": f"bench/{tag}-{i}.jpg",
                        "image_hash": f"{tag}{i:056d}",
                        "file_size": 1,
                        "mime_type": "image/jpeg",
                        "has_thumbnail": False,
                        "features": x[i].tobytes(),
                        "embedding_model": model,
                        **columns,
                    }
                    for i in range(start, min(n, start + 5000))
                ],
            )
        query = select(images.c.id).where(images.c.filename.like(f"{tag}-%"))
        ids = list(conn.scalars(query.order_by(images.c.id)))
    engine.dispose()
    return ids


def http_figures(n: int, isolation: str = "process") -> list[str]:
    """End to end through the API on PostgreSQL, clustering on `isolation` workers (process or
    thread, ANALYSIS_ISOLATION); see the module docstring."""
    import socket
    import threading

    import httpx

    from bench.scratch import scratch_postgres
    from processing.feature_extraction import offline_model_id

    # Entered here, closed in the finally below: the server stops before the database goes.
    scratch = contextlib.ExitStack()
    url = scratch.enter_context(scratch_postgres(migrate=True))
    lines: list[str] = []
    server: subprocess.Popen[bytes] | None = None
    try:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        with tempfile.TemporaryDirectory() as storage:
            env = {
                **os.environ,
                "DATABASE_URL": url,
                "STORAGE_ROOT": storage,
                "EMBEDDING_MODEL": "efficientnet-lite0",
                "EMBEDDING_DEVICE": "cpu",
                "API_KEY": "",
                "ANALYSIS_ISOLATION": isolation,
            }
            args = [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(port)]
            server = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL)
            deadline = time.monotonic() + 300
            while True:
                try:
                    health = httpx.get(f"{base}/health", timeout=5).json()
                    break
                except (httpx.HTTPError, ValueError):
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError("the server did not start") from None
                    time.sleep(0.5)
            # The id the server's vectors carry (the offline encoder's name plus its pooling).
            model = health["model"]["active_model"] or offline_model_id()
            ids = insert_photo_like(url, n, model)
            with httpx.Client(base_url=base, timeout=3600) as client:
                batch = client.post("/batches/", json={"name": "bench", "image_ids": ids})
                batch.raise_for_status()
                batch_id = batch.json()["id"]
                rss_before = _vm_hwm_mb(server.pid)
                latencies: list[float] = []
                done = threading.Event()

                def poll() -> None:
                    with httpx.Client(base_url=base, timeout=60) as other:
                        while not done.is_set():
                            start = time.perf_counter()
                            other.get("/images/", params={"limit": 100}).raise_for_status()
                            latencies.append(time.perf_counter() - start)
                            time.sleep(0.05)

                poller = threading.Thread(target=poll)
                poller.start()
                start = time.perf_counter()
                response = client.put(f"/batches/{batch_id}/analyze", json={})
                seconds = time.perf_counter() - start
                done.set()
                poller.join()
                response.raise_for_status()
                groups = response.json()["parameters"]["groups"]
                peak = _vm_hwm_mb(server.pid)
                workers = [_vm_hwm_mb(pid) for pid in _children(server.pid)]
        p50, p99 = (float(np.percentile(latencies, q)) * 1000 for q in (50, 99))
        slow = sum(latency > 0.1 for latency in latencies)
        target = TARGET_SECONDS.get(n)
        for line in [
            f"HTTP analyze {n} x 384 (PostgreSQL, real server, {isolation} workers): "
            f"{seconds:.2f} s, {groups} groups"
            + (f" | target <= {target:.0f} s" if target else ""),
            f"server peak RSS {peak:.0f} MB (before the analyze {rss_before:.0f} MB), worker "
            f"processes {', '.join(f'{mb:.0f}' for mb in workers) or 'none'} MB"
            f" | target <= {TARGET_RSS_MB:.0f} MB each",
            f"GET /images/?limit=100 during it: p50 {p50:.0f} ms, p99 {p99:.0f} ms, max "
            f"{max(latencies) * 1000:.0f} ms, {slow} over 100 ms, of {len(latencies)} requests "
            f"(load average {os.getloadavg()[0]:.2f}) | target p99 < 100 ms",
        ]:
            print(line, flush=True)
            lines.append(line)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=60)
        scratch.close()
    return lines


def _children(pid: int) -> list[int]:
    """The process's child processes (the clustering workers)."""
    pids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        pids += [int(child) for child in (task / "children").read_text().split()]
    return pids


def _vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--child", nargs=4, metavar=("N", "DIM", "PATH", "OUT"))
    parser.add_argument("--cold", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default="1000,10000,20000,50000,100000")
    parser.add_argument("--dims", default="384,1280")
    parser.add_argument("--exact-limit", type=int, default=20_000, help="ARI vs exact up to")
    parser.add_argument("--big-dim-limit", type=int, default=50_000, help="max rows above 384-d")
    parser.add_argument("--before", default="", help="sizes to also run the old PCA path at")
    parser.add_argument("--no-cold", action="store_true")
    parser.add_argument("--http", default="", help="rows for the end-to-end measure(s)")
    parser.add_argument(
        "--isolation", default="process", help="clustering workers for --http: process,thread"
    )
    args = parser.parse_args(argv)
    if args.child:
        n, dim, path, out = args.child
        _child(int(n), int(dim), path, out, args.cold)
        return
    print(
        "command: python -m bench.analyze_scale "
        + shlex.join(sys.argv[1:] if argv is None else argv)
    )
    figures(
        [int(n) for n in args.sizes.split(",") if n],
        [int(d) for d in args.dims.split(",") if d],
        args.exact_limit,
        [int(n) for n in args.before.split(",") if n],
        not args.no_cold,
        args.big_dim_limit,
    )
    for n in [int(n) for n in args.http.split(",") if n]:
        for isolation in args.isolation.split(","):
            http_figures(n, isolation)


if __name__ == "__main__":
    main()
