"""The model's forward time idle and with another process busy on one core, per thread count.

    python -m bench.forward_under_load [--rounds 5] [--forwards 10] [--threads 2,1]

The offline encoder (EfficientNet-Lite0, real weights), batch 8 at 224 px, on ready input.
For each torch thread count (2 = torch's default on two cores, 1 = processing/threads.py's
policy there), interleaved rounds time --forwards forwards idle, then again while a second
process spins on one core (what a request decoding an upload, or a neighbour, does).
Printed: min and median ms per batch, and busy / idle (target <= 1.5x).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import torch
from PIL import Image

from processing.feature_extraction import EfficientNetLiteEmbedder, preprocess

BATCH = 8


def forwards(embedder: EfficientNetLiteEmbedder, pixels: torch.Tensor, n: int) -> list[float]:
    model = embedder._model
    assert model is not None
    times = []
    with torch.inference_mode():
        for _ in range(n):
            start = time.perf_counter()
            embedder._forward(model, pixels)
            times.append(1000 * (time.perf_counter() - start))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--forwards", type=int, default=10)
    parser.add_argument("--threads", default="2,1")
    args = parser.parse_args()
    counts = [int(n) for n in args.threads.split(",")]
    embedder = EfficientNetLiteEmbedder()
    embedder.load()
    pixels = preprocess([Image.new("RGB", (640, 480), (90, 120, 150))] * BATCH, embedder._spec)
    forwards(embedder, pixels, 3)  # warm-up
    idle: dict[int, list[float]] = {n: [] for n in counts}
    busy: dict[int, list[float]] = {n: [] for n in counts}
    for _ in range(args.rounds):
        for n in counts:
            torch.set_num_threads(n)
            idle[n] += forwards(embedder, pixels, args.forwards)
            spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            try:
                time.sleep(0.2)
                busy[n] += forwards(embedder, pixels, args.forwards)
            finally:
                spinner.kill()
                spinner.wait()
    print(f"command: python -m bench.forward_under_load {' '.join(sys.argv[1:])}".rstrip())
    print(
        f"offline encoder, batch {BATCH}, {args.rounds} rounds x {args.forwards} forwards, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"
    )
    for n in counts:
        i_med, b_med = statistics.median(idle[n]), statistics.median(busy[n])
        print(
            f"torch threads {n}: idle {min(idle[n]):.0f} / {i_med:.0f} ms, one core busy "
            f"{min(busy[n]):.0f} / {b_med:.0f} ms (min / median); busy/idle median "
            f"{b_med / i_med:.2f}x, p90 {statistics.quantiles(busy[n], n=10)[-1]:.0f} ms"
        )


if __name__ == "__main__":
    main()
