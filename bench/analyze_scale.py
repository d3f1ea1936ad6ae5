"""Analyze at scale: time, peak RSS, agreement with the exact path, planted noise, cold start.

Run by hand, never in the tests (each measure runs in a fresh subprocess, so its peak RSS is its
own and a cold start is really cold):
    python -m bench.analyze_scale                         # 1k..100k at 384-d, 1k..50k at 1280-d
    python -m bench.analyze_scale --sizes 1000,20000 --dims 384 --no-cold
    python -m bench.analyze_scale --before 20000          # + the old PCA + prims_kdtree path

Vectors imitate photo embeddings on the unit sphere: scenes sharing a common direction, bursts of
3-30 near-duplicates around them (power-law spectrum, as bench/grouping.py), 10% unrelated
shots near a scene, and 2% planted noise: isotropic directions, far from everything, which a
correct clustering labels "Ungrouped". Agreement is the adjusted Rand index of the kNN-graph
path against the exact path (ImageGrouper with the threshold raised) on the same vectors.

Each line "figure | target" is meant for bench/big_shoots.py; `figures()` returns them too.
The machine is shared: compare figures of one run (ratios) rather than absolute seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(n: int, dim: int, path: str, out: str, cold: bool) -> None:
    """One measure in this (fresh) process; prints one JSON line."""
    started = time.perf_counter()
    from processing.grouping import ImageGrouper

    imported = time.perf_counter() - started
    x, _ = photo_like(n, dim, seed=n + dim)
    rss_before = _maxrss_mb()
    if path == "pca":
        labels, seconds = _old_pca_path(x)
    else:
        threshold = {"exact": 10**9, "knn": 0, "auto": None}[path]
        grouper = ImageGrouper() if threshold is None else ImageGrouper(large_batch_rows=threshold)
        start = time.perf_counter()
        labels = grouper.fit_labels(x).labels
        seconds = time.perf_counter() - start
    second = None
    if cold:
        start = time.perf_counter()
        ImageGrouper().fit_labels(x)
        second = time.perf_counter() - start
    np.save(out, np.array(["" if label == "Ungrouped" else label for label in labels]))
    print(
        json.dumps(
            {
                "seconds": seconds,
                "second_seconds": second,
                "import_seconds": imported,
                "rss_mb": _maxrss_mb(),
                "rss_before_mb": rss_before,
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
    )


def _ari(a: NDArray[np.str_], b: NDArray[np.str_]) -> float:
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(a, b))


def _noise_found(m: Measure) -> float:
    _, planted = photo_like(m.n, m.dim, seed=m.n + m.dim)
    return float(np.mean(m.labels[planted] == ""))


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


if __name__ == "__main__":
    main()
