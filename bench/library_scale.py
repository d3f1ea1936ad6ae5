"""Runs the library-scale benchmarks one after the other and prints each figure by its target.

    python -m bench.library_scale [--only int8,similar] [--quick]

The figures: batch reads, analyze up to 100k images, int8 embeddings, similar-image queries at
200k vectors (issue 11 set their targets; bench/results/library_scale.txt is a full run).

Runs each topic's benchmark as its own process (its own memory peak, its own imports), one
after the other, streams its output, and ends with a summary: per topic, the target and the
lines of the output that carry the figures. A benchmark module that is not in this checkout
is reported "not available" and the others still run.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Topic:
    module: str
    what: str
    target: str
    # Lines of the output worth repeating in the summary (substring match).
    keys: tuple[str, ...] = ("target", "p50", "ratio", "x ", "ARI", "RSS", "speed-up")
    quick: tuple[str, ...] = field(default=())
    full: tuple[str, ...] = field(default=())


TOPICS = (
    Topic(
        "bench.batch_reads",
        "batch page at 2k/5k images (both databases); list of 20 batches x 2.5k; image list",
        "GET /batches/{id} 5k: p50 <= 100 ms; GET /images/?limit=100 p99 <= 50 ms under uploads",
        keys=(" | ",),
        quick=("--quick",),
    ),
    Topic(
        "bench.analyze_scale",
        "analyze at 1k/10k/20k/50k/100k: time, peak RSS, ARI vs exact; cold-start first analyze;"
        " 50k through a real server, GET /images/ latency meanwhile",
        "50k <= 20 s, 100k <= 45 s, peak RSS <= 1.5 GB at 100k, ARI >= 0.95 at 20k; "
        "GET /images/?limit=100 p99 < 100 ms during the 50k analysis",
        keys=(" | ",),
        quick=("--sizes", "1000,10000,20000", "--dims", "384", "--no-cold"),
        full=("--http", "50000"),
    ),
    Topic(
        "bench.int8",
        "embedding img/s int8 vs fp32 and cosine on real photos (ViT-S/16 architecture)",
        "int8 ~2x fp32 img/s, cosine to fp32 >= 0.99 (random weights: speed only)",
        keys=("target", "img/s", "ViT-S/16 int8", "ARI"),
        quick=("--images", "16", "--rounds", "1"),
    ),
    Topic(
        "bench.similar",
        "GET /images/{id}/similar at 200k vectors",
        "p50 <= 20 ms after the first query; index memory ~ the vectors' size",
        keys=("target", "first query", "p50", "graph ready", "recall", "memory", "speed-up"),
        quick=("--images", "30000", "--queries", "60"),
    ),
)


def available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def run(topic: Topic, quick: bool) -> tuple[str, float, list[str]]:
    """Stream the benchmark's output; (status, seconds, output lines)."""
    command = [sys.executable, "-m", topic.module, *(topic.quick if quick else topic.full)]
    print(f"\n=== {topic.module}: {topic.what}\n$ {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    lines: list[str] = []
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", flush=True)
            lines.append(line.rstrip())
    took = time.perf_counter() - start
    status = "ok" if process.returncode == 0 else f"failed (exit {process.returncode})"
    return status, took, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated topics, e.g. int8,similar")
    parser.add_argument("--quick", action="store_true", help="smaller runs where supported")
    args = parser.parse_args()
    print(f"command: python -m bench.library_scale {' '.join(sys.argv[1:])}".rstrip())
    wanted = set(args.only.split(",")) if args.only else None
    summary: list[tuple[Topic, str, float, list[str]]] = []
    for topic in TOPICS:
        if wanted is not None and topic.module.removeprefix("bench.") not in wanted:
            continue
        if not available(topic.module):
            print(f"\n=== {topic.module}: not available in this checkout")
            summary.append((topic, "not available", 0.0, []))
            continue
        summary.append((topic, *run(topic, args.quick)))

    print("\n=== Summary: library-scale figures next to their targets")
    for topic, status, took, lines in summary:
        print(f"\n[{topic.module}] {status}" + (f" in {took:.0f} s" if took else ""))
        print(f"  measures: {topic.what}")
        print(f"  target:   {topic.target}")
        for line in lines:
            if any(key in line for key in topic.keys) and not line.startswith("command"):
                print(f"  | {line}")


if __name__ == "__main__":
    main()
