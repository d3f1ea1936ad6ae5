"""Analyze (ImageGrouper.fit_labels) time and label agreement with exact cosine HDBSCAN.

Run by hand, never in the tests:
    python -m bench.grouping                               # time 1k, 10k; ARI at 1k, 5k (~1 min)
    python -m bench.grouping --sizes 1000,10000,50000      # + 50k: the kNN-graph path
    python -m bench.grouping --ari-sizes 1000,5000,10000   # + agreement at 10k (~30 s more)

The vectors imitate photo embeddings (384-d, on the unit sphere): scenes ("themes") sharing a
common direction, bursts of 3-30 near-duplicates (cosine ~0.9 within a burst) around them, and
10% unrelated shots. Directions are drawn with a power-law spectrum (std of the k-th principal
direction ~ k^-0.5), roughly how image-embedding variance is spread.

Agreement is the adjusted Rand index against `hdbscan.HDBSCAN(metric="cosine",
algorithm="generic")` on the raw vectors, twice: "ARI" counts noise as one label (as the brief
asks); "strict" makes each noise row its own singleton, so noise that our labels put into a
group (or the reverse) costs agreement too.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence

import hdbscan
import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import adjusted_rand_score

from processing.grouping import UNGROUPED, ImageGrouper

DIM = 384
MIN_CLUSTER_SIZE = 5
MIN_SAMPLES = 5


def photo_like(n: int, seed: int = 0, noise_frac: float = 0.1) -> NDArray[np.float32]:
    """n unit vectors: bursts of near-duplicates around a few scenes, plus unrelated shots."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(DIM, DIM)))[0]
    scale = (np.arange(DIM) + 1.0) ** -0.5

    def unit(a: NDArray[np.float64]) -> NDArray[np.float64]:
        normalised: NDArray[np.float64] = a / np.linalg.norm(a, axis=-1, keepdims=True)
        return normalised

    def directions(*shape: int) -> NDArray[np.float64]:
        return unit((rng.normal(size=(*shape, DIM)) * scale) @ basis.T)

    common = unit(rng.normal(size=DIM))
    themes = unit(0.6 * common + directions(max(1, n // 150)))
    bursts, total = [], 0
    while total < n * (1 - noise_frac):
        size = int(rng.integers(3, 31))
        centre = unit(themes[rng.integers(len(themes))] + 0.9 * directions())
        bursts.append(unit(centre + rng.uniform(0.15, 0.45) * directions(size)))
        total += size
    x = np.concatenate(bursts)[: int(n * (1 - noise_frac))]
    k = n - len(x)
    unrelated = unit(themes[rng.integers(len(themes), size=k)] + 1.2 * directions(k))
    return np.concatenate([x, unrelated])[rng.permutation(n)].astype(np.float32)


def strict_ari(reference: Sequence[object], ours: Sequence[object]) -> float:
    """ARI with every noise row ("Ungrouped" / -1) its own singleton label."""

    def singletons(labels: Sequence[object]) -> list[str]:
        return [
            f"noise {i}" if lab in (-1, UNGROUPED) else str(lab) for i, lab in enumerate(labels)
        ]

    return float(adjusted_rand_score(singletons(reference), singletons(ours)))


def timed_labels(grouper: ImageGrouper, x: NDArray[np.float32]) -> tuple[list[str], float, str]:
    start = time.perf_counter()
    result = grouper.fit_labels(x)
    seconds = time.perf_counter() - start
    fallback = ", single-cluster fallback" if result.used_single_cluster_fallback else ""
    return result.labels, seconds, f"{result.n_groups} groups{fallback}"


def bench_time(sizes: list[int]) -> None:
    print("\n== analyze time (ImageGrouper(5, 5).fit_labels, cosine) ==")
    ImageGrouper(5, 5).fit_labels(
        photo_like(200)
    )  # warm-up: first-call imports are not analyze time
    for n in sizes:
        x = photo_like(n, seed=n)
        _, seconds, info = timed_labels(ImageGrouper(5, 5), x)
        print(f"n={n:>6}: {seconds:7.2f} s   ({info})", flush=True)


def bench_agreement(sizes: list[int]) -> None:
    print("\n== agreement with hdbscan(metric='cosine', algorithm='generic') on raw vectors ==")
    for n in sizes:
        x = photo_like(n, seed=n)
        start = time.perf_counter()
        reference = hdbscan.HDBSCAN(
            min_cluster_size=MIN_CLUSTER_SIZE,
            min_samples=MIN_SAMPLES,
            metric="cosine",
            algorithm="generic",
        ).fit(x.astype(np.float64))
        ref_labels = [int(label) for label in reference.labels_]
        ref_seconds = time.perf_counter() - start
        print(
            f"n={n:>6}: reference {ref_seconds:6.2f} s, "
            f"{max(ref_labels) + 1} clusters, {ref_labels.count(-1) / n:.0%} noise",
            flush=True,
        )
        # large_batch_rows=0 forces the kNN-graph path: its agreement at sizes that use exact.
        for name, grouper in [
            ("ours", ImageGrouper(5, 5)),
            ("kNN graph", ImageGrouper(5, 5, large_batch_rows=0)),
        ]:
            labels, seconds, info = timed_labels(grouper, x)
            print(
                f"  {name:>10}: ARI {adjusted_rand_score(ref_labels, labels):.4f}, "
                f"strict {strict_ari(ref_labels, labels):.4f}, {seconds:6.2f} s "
                f"({ref_seconds / seconds:.1f}x reference; {info})",
                flush=True,
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="rows to time, comma-separated")
    parser.add_argument("--ari-sizes", default="1000,5000", help="rows to compare, comma-separated")
    args = parser.parse_args(argv)
    print("command: python -m bench.grouping " + shlex.join(sys.argv[1:] if argv is None else argv))
    bench_time([int(n) for n in args.sizes.split(",") if n])
    bench_agreement([int(n) for n in args.ari_sizes.split(",") if n])


if __name__ == "__main__":
    main()
