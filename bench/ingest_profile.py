"""Where the CPU of one uploaded photo goes, stage by stage, against the bound's CPU.

    python -m bench.ingest_profile [--images 16] [--repeats 3] [--models lite0,dinov3]
                                   [--server]

CPU time, not wall time (the machine is shared): each stage runs the project's own function
on the same 4000x3000 q92 photos as `bench.ingest`, timed with `time.thread_time` (one
thread) or `time.process_time` (stages where torch runs its own threads); min over
--repeats, per image. The stages follow one photo through the server: read + SHA-256, the
upload's check (sniff, header, EXIF, the decode kept for the worker), thumbnail resize and
JPEG write, quality, the hand-over to the model process (array + pickle both ways),
preprocess, forward (batch 8). The bound is `bench.ingest`'s: a draft decode at the model's
input size + the bare forward. With --server, one round through a real server as well: the
CPU its API process and its model process used per image (from /proc), beside the sum.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import pickle
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.embedding import save_vits16
from bench.ingest import (
    BATCH,
    ModelSetup,
    bench_embedder,
    make_photo,
    model_setups,
    running_server,
    server_pid,
    tree_cpu_seconds,
    upload_and_wait,
    with_comment,
)
from bench.scratch import scratch_postgres
from processing.feature_extraction import _TorchEmbedder, preprocess
from processing.photo import load_oriented_rgb
from processing.quality import assess_quality
from processing.validation import inspect_image_file
from services.background.pipeline import analysis_side
from utils.file_handling import THUMBNAIL_QUALITY, make_thumbnail

THUMBNAIL_SIZE = 512
MAX_PIXELS = 200_000_000


def cpu_ms(work: Callable[[], object], repeats: int, clock: Callable[[], float]) -> float:
    """Min CPU ms of `work` over `repeats` runs."""
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        work()
        best = min(best, clock() - start)
    return 1000 * best


def _jpeg(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=THUMBNAIL_QUALITY, optimize=True)
    return out.getvalue()


def stage_table(
    embedder: _TorchEmbedder, paths: list[Path], repeats: int
) -> list[tuple[str, float]]:
    """(stage, CPU ms per image) of one photo's way through the server, then the bound."""
    n = len(paths)
    side = analysis_side(THUMBNAIL_SIZE, embedder.input_size)
    images = [load_oriented_rgb(path, side) for path in paths]
    thumbs = [make_thumbnail(img, THUMBNAIL_SIZE) for img in images]
    arrays = [np.asarray(img.convert("RGB")) for img in images]
    batches = [arrays[i : i + BATCH] for i in range(0, n, BATCH)]
    received = [pickle.loads(pickle.dumps(b, protocol=5)) for b in batches]
    pixels = preprocess([Image.fromarray(a) for a in arrays], embedder._spec)
    model = embedder._model
    assert model is not None
    thread = time.thread_time
    process = time.process_time

    def forward() -> None:
        with torch.inference_mode():
            for i in range(0, n, BATCH):
                embedder._forward(model, pixels[i : i + BATCH])

    bound_images = [load_oriented_rgb(path, embedder.input_size) for path in paths]
    bound_pixels = preprocess(bound_images, embedder._spec)

    def bound_forward() -> None:
        with torch.inference_mode():
            for i in range(0, n, BATCH):
                embedder._forward(model, bound_pixels[i : i + BATCH])

    rows = [
        (
            "read + SHA-256",
            cpu_ms(lambda: [hashlib.sha256(p.read_bytes()) for p in paths], repeats, thread),
        ),
        (
            f"upload check: sniff, header, EXIF, decode kept (side {side})",
            cpu_ms(
                lambda: [inspect_image_file(p, MAX_PIXELS, side) for p in paths], repeats, thread
            ),
        ),
        (
            f"  of which the decode alone (side {side}, {images[0].size[0]}x{images[0].size[1]})",
            cpu_ms(lambda: [load_oriented_rgb(p, side) for p in paths], repeats, thread),
        ),
        (
            "thumbnail resize",
            cpu_ms(lambda: [make_thumbnail(i, THUMBNAIL_SIZE) for i in images], repeats, thread),
        ),
        ("thumbnail JPEG encode", cpu_ms(lambda: [_jpeg(t) for t in thumbs], repeats, thread)),
        (
            "quality (sharpness, faces, eyes, tiles)",
            cpu_ms(lambda: [assess_quality(i) for i in images], repeats, thread),
        ),
        (
            "hand-over to the model process: array + pickle + unpickle",
            cpu_ms(
                lambda: [
                    pickle.loads(
                        pickle.dumps(
                            [np.asarray(i.convert("RGB")) for i in images[k : k + BATCH]],
                            protocol=5,
                        )
                    )
                    for k in range(0, n, BATCH)
                ],
                repeats,
                thread,
            ),
        ),
        (
            "preprocess (model process)",
            cpu_ms(
                lambda: [
                    preprocess([Image.fromarray(a) for a in b], embedder._spec) for b in received
                ],
                repeats,
                process,
            ),
        ),
        ("forward (batch 8, torch threads)", cpu_ms(forward, repeats, process)),
    ]
    rows = [(name, ms / n) for name, ms in rows]
    rows.append(
        (
            "bound: draft decode at input size",
            cpu_ms(
                lambda: [load_oriented_rgb(p, embedder.input_size) for p in paths], repeats, thread
            )
            / n,
        )
    )
    rows.append(
        (
            "bound: preprocess",
            cpu_ms(lambda: preprocess(bound_images, embedder._spec), repeats, process) / n,
        )
    )
    rows.append(("bound: forward", cpu_ms(bound_forward, repeats, process) / n))
    return rows


def server_cpu(setup: ModelSetup, root: Path, photos: list[bytes]) -> tuple[float, float, float]:
    """(API process, model process, wall) ms per image for one round through a real server."""
    with scratch_postgres(migrate=True) as url:
        server_root = root / f"server-{setup.name}"
        server_root.mkdir()
        with running_server(Path.cwd(), setup, url, server_root) as address:
            warm = [(f"w{i}.jpg", with_comment(p, f"w{i}")) for i, p in enumerate(photos[:4])]
            upload_and_wait(address, warm)
            pid = server_pid(address)
            before = tree_cpu_seconds(pid)
            files = [(f"r{i}.jpg", with_comment(p, f"r{i}")) for i, p in enumerate(photos)]
            wall = upload_and_wait(address, files)
            after = tree_cpu_seconds(pid)
    api = after.get(pid, 0.0) - before.get(pid, 0.0)
    children = sum(after[c] - before.get(c, 0.0) for c in after if c != pid)
    n = len(photos)
    return 1000 * api / n, 1000 * children / n, 1000 * wall / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default="lite0,dinov3")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--server", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"command: python -m bench.ingest_profile {' '.join(sys.argv[1:])}".rstrip())
    print(f"load average at start {os.getloadavg()[0]:.1f}; torch threads {args.threads}")
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        root = Path(tmp)
        photos = [make_photo(seed) for seed in range(args.images)]
        paths = []
        for n, data in enumerate(photos):
            paths.append(root / f"photo{n}.jpg")
            paths[-1].write_bytes(data)
        for setup in model_setups(args.models.split(","), lambda: save_vits16(root / "vits16")):
            embedder = bench_embedder(setup)
            rows = stage_table(embedder, paths, args.repeats)
            print(f"\n{setup.name}: CPU ms per image (min of {args.repeats})")
            server_rows = [r for r in rows if not r[0].startswith(("bound", "  "))]
            for name, ms in rows:
                print(f"  {name:<66} {ms:7.1f}")
            total = sum(ms for _, ms in server_rows)
            bound = sum(ms for name, ms in rows if name.startswith("bound"))
            print(f"  {'sum of the server stages':<66} {total:7.1f}")
            print(f"  {'bound (draft decode + preprocess + forward)':<66} {bound:7.1f}")
            print(f"  {'ratio sum / bound':<66} {total / bound:7.2f}")
            if args.server:
                api, model, wall = server_cpu(setup, root, photos)
                print(
                    f"  one HTTP round, {len(photos)} photos: API process {api:.1f} + model "
                    f"process {model:.1f} = {api + model:.1f} CPU ms/img "
                    f"({(api + model) / bound:.2f}x the bound's CPU); wall {wall:.1f} ms/img"
                )
    print(f"\nload average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
