"""HTTP upload until everything is stored, against its bound, in the same run, interleaved.

    python -m bench.ingest [--images 16] [--rounds 3] [--models lite0,dinov3,dinov3-int8]
                           [--code .,/path/to/other/tree] [--threads 2] [--latency]

A real `uvicorn api.main:app` per model (and per code tree given in --code: two trees compare
two versions of the server in the same run), each on a fresh PostgreSQL database, with the
server's own thread defaults (TORCH_THREADS unset). One round uploads --images photos of
4000x3000 (q92, photo-like content; each round's files carry a new JPEG comment so nothing
is a duplicate) from two clients, four files a request, and times until `/health` reports no
thumbnail, quality or embedding pending: EXIF, thumbnail, quality and vector all stored.

The bound, measured in this process between the rounds: one draft decode of each file at
the model's input size + the bare batched forward (batch 8) of the same model on ready
input, with --threads torch threads (default: every core). Ratio = end to end / bound.
DINOv3 is the ViT-S/16 architecture with random weights (no real weights offline): speed
only. --latency adds a round per server with a client reading `GET /images/?limit=100` in a
loop during the embedding, and prints its p50/p99.

CPU beside wall time (the machine is shared, and wall time there is mostly waiting for a
core): the CPU the server's processes (API and model) used per image in each round, read from
/proc, against the bound's own CPU (`time.process_time` around it, torch threads included).
The client polls `/health` every 50 ms (each answer costs the server some milliseconds of CPU:
polling every 20 ms took a sixth of a core from the work it was timing).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import torch
from PIL import Image, ImageFilter

from bench import scratch
from bench.embedding import save_vits16
from bench.scratch import scratch_postgres
from processing.feature_extraction import (
    EfficientNetLiteEmbedder,
    TransformersEmbedder,
    _TorchEmbedder,
    preprocess,
)
from processing.photo import load_oriented_rgb

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BATCH = 8
CLIENTS = 2
FILES_PER_REQUEST = 4
POLL_SECONDS = 0.05


@dataclass(frozen=True)
class ModelSetup:
    name: str
    env: dict[str, str]


def make_photo(seed: int, width: int = 4000, height: int = 3000) -> bytes:
    """A JPEG (q92) with photo-like content: smooth colour fields, edges, sensor noise."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, size=(height // 64, width // 64, 3), dtype=np.uint8)
    base = Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)
    noise = rng.normal(0, 8, size=(height, width, 1)).astype(np.float32)
    pixels = np.clip(np.asarray(base, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).filter(ImageFilter.SMOOTH).save(out, "JPEG", quality=92)
    return out.getvalue()


def with_comment(jpeg: bytes, text: str) -> bytes:
    """`jpeg` with a COM segment right after SOI: other bytes (another hash), same picture."""
    payload = text.encode()
    return jpeg[:2] + b"\xff\xfe" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[2:]


@dataclass
class Server:
    code: Path
    model: ModelSetup
    url: str = ""
    process: object = None
    log: Path = Path()
    rounds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)


@contextmanager
def running_server(code: Path, model: ModelSetup, database_url: str, root: Path) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if k != "TORCH_THREADS"}
    env.update(
        DATABASE_URL=database_url,
        STORAGE_ROOT=str(root / "storage"),
        EMBEDDING_DEVICE="cpu",
        API_KEY="",
        **model.env,
    )
    with scratch.running_server(code, env, root / "server.log") as url:
        yield url


def tree_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of `pid` and each of its descendants, by pid (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[int, float] = {}
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            found[current] = (int(fields[11]) + int(fields[12])) / ticks
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def server_pid(url: str) -> int:
    """The pid of the uvicorn serving `url` (started by `running_server`)."""
    port = url.rsplit(":", 1)[1].encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"uvicorn" in argv and port in argv:
            return int(entry.name)
    raise RuntimeError(f"no uvicorn serving {url}")


def cpu_used(pid: int, before: dict[int, float]) -> float:
    """CPU seconds the process tree of `pid` used since `before` (a `tree_cpu_seconds`)."""
    after = tree_cpu_seconds(pid)
    return sum(seconds - before.get(p, 0.0) for p, seconds in after.items())


def _pending(client: httpx.Client) -> int:
    report = client.get("/health", timeout=30).json()
    return sum(
        int(report.get(key) or 0)
        for key in ("pending_thumbnails", "pending_quality", "pending_embeddings")
    )


def upload_and_wait(url: str, files: list[tuple[str, bytes]]) -> float:
    """Seconds from the first byte sent until nothing is pending."""
    chunks = [files[i : i + FILES_PER_REQUEST] for i in range(0, len(files), FILES_PER_REQUEST)]
    errors: list[str] = []

    def client(mine: list[list[tuple[str, bytes]]]) -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            for chunk in mine:
                sent = [("files", (name, data, "image/jpeg")) for name, data in chunk]
                answer = http.post("/images/upload", files=sent)
                if answer.status_code != 200:
                    errors.append(f"{answer.status_code} {answer.text[:200]}")

    threads = [threading.Thread(target=client, args=(chunks[n::CLIENTS],)) for n in range(CLIENTS)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with httpx.Client(base_url=url) as http:
        while _pending(http):
            time.sleep(POLL_SECONDS)
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"uploads failed: {errors[:3]}")
    return elapsed


def read_while(url: str, busy: Callable[[], object], interval: float = 0.01) -> list[float]:
    """Latencies (s) of GET /images/?limit=100 in a loop, `interval` s apart, while `busy`
    runs."""
    done = threading.Event()
    latencies: list[float] = []

    def reader() -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            while not done.is_set():
                start = time.perf_counter()
                http.get("/images/", params={"limit": 100}).raise_for_status()
                latencies.append(time.perf_counter() - start)
                time.sleep(interval)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        busy()
    finally:
        done.set()
        thread.join()
    return latencies


def bound_ms(embedder: _TorchEmbedder, paths: list[Path]) -> tuple[float, float, float]:
    """(draft decode, bare batched forward, CPU of both) ms per image, on these files."""
    cpu_start = time.process_time()
    start = time.perf_counter()
    images = [load_oriented_rgb(path, embedder.input_size) for path in paths]
    decode = time.perf_counter() - start
    pixels = preprocess(images, embedder._spec)
    model = embedder._model
    assert model is not None
    forward = 0.0
    with torch.inference_mode():
        for i in range(0, len(pixels), BATCH):
            batch = pixels[i : i + BATCH]
            start = time.perf_counter()
            embedder._forward(model, batch)
            forward += time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    n = len(paths)
    return 1000 * decode / n, 1000 * forward / n, 1000 * cpu / n


def model_setups(names: list[str], vits16: Callable[[], Path]) -> list[ModelSetup]:
    setups = []
    for name in names:
        if name == "lite0":
            setups.append(ModelSetup(name, {"EMBEDDING_MODEL": "efficientnet-lite0"}))
        elif name in ("dinov3", "dinov3-int8"):
            precision = "int8" if name.endswith("int8") else "fp32"
            setups.append(
                ModelSetup(
                    name,
                    {
                        "EMBEDDING_MODEL": str(vits16()),
                        "EMBEDDING_PRECISION": precision,
                        "EMBEDDING_FALLBACK": "false",
                    },
                )
            )
        else:
            raise SystemExit(f"unknown model {name!r}")
    return setups


def bench_embedder(setup: ModelSetup) -> _TorchEmbedder:
    embedder: _TorchEmbedder
    if setup.name == "lite0":
        embedder = EfficientNetLiteEmbedder()
    else:
        embedder = TransformersEmbedder(
            setup.env["EMBEDDING_MODEL"], precision=setup.env["EMBEDDING_PRECISION"]
        )
    embedder.load()
    embedder.embed([Image.new("RGB", (640, 480))] * BATCH)  # warm-up
    return embedder


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default="lite0,dinov3,dinov3-int8")
    parser.add_argument("--code", default=".", help="comma-separated server code trees")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--latency", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    trees = [Path(code).resolve() for code in args.code.split(",")]

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        root = Path(tmp)
        print(f"making {args.images} photos of 4000x3000 ...", file=sys.stderr)
        photos = [make_photo(seed) for seed in range(args.images)]
        paths = []
        for n, data in enumerate(photos):
            paths.append(root / f"photo{n}.jpg")
            paths[-1].write_bytes(data)
        vits16_dir: list[Path] = []

        def vits16() -> Path:
            if not vits16_dir:
                vits16_dir.append(save_vits16(root / "vits16"))
            return vits16_dir[0]

        rows = []
        for setup in model_setups(args.models.split(","), vits16):
            embedder = bench_embedder(setup)
            servers: list[Server] = []
            with ExitStack() as per_model:
                for n, code in enumerate(trees):
                    url = per_model.enter_context(scratch_postgres(migrate=True))
                    server_root = root / f"{setup.name}-{n}"
                    server_root.mkdir()
                    server = Server(code, setup)
                    server.url = per_model.enter_context(
                        running_server(code, setup, url, server_root)
                    )
                    print(f"{setup.name}: server from {code} up", file=sys.stderr)
                    # Warm-up: the first forwards of a fresh process are slow.
                    upload_and_wait(
                        server.url,
                        [
                            (f"warm{i}.jpg", with_comment(photos[i], f"w{n}"))
                            for i in range(min(4, args.images))
                        ],
                    )
                    servers.append(server)
                bounds: list[tuple[float, float, float]] = []
                for round_no in range(args.rounds):
                    bounds.append(bound_ms(embedder, paths))
                    for n, server in enumerate(servers):
                        files = [
                            (f"r{round_no}-{i}.jpg", with_comment(data, f"{round_no}/{n}/{i}"))
                            for i, data in enumerate(photos)
                        ]
                        pid = server_pid(server.url)
                        before = tree_cpu_seconds(pid)
                        server.rounds.append(1000 * upload_and_wait(server.url, files) / len(files))
                        server.cpu.append(1000 * cpu_used(pid, before) / len(files))
                    print(
                        f"{setup.name} round {round_no}: bound {sum(bounds[-1][:2]):.0f} ms "
                        f"(CPU {bounds[-1][2]:.0f}), "
                        + ", ".join(
                            f"{s.rounds[-1]:.0f} ms (CPU {s.cpu[-1]:.0f})" for s in servers
                        ),
                        file=sys.stderr,
                    )
                bounds.append(bound_ms(embedder, paths))
                if args.latency:
                    for n, server in enumerate(servers):
                        files = [
                            (f"lat-{i}.jpg", with_comment(data, f"lat/{n}/{i}"))
                            for i, data in enumerate(photos)
                        ]
                        server.latencies = read_while(
                            server.url, lambda s=server, f=files: upload_and_wait(s.url, f)
                        )
            decode = [d for d, _, _ in bounds]
            forward = [f for _, f, _ in bounds]
            bound = [d + f for d, f, _ in bounds]
            bound_cpu = [c for _, _, c in bounds]
            rows.append((setup, servers, decode, forward, bound, bound_cpu))

    print(f"command: python -m bench.ingest {' '.join(sys.argv[1:])}".rstrip())
    print(
        f"{args.images} photos 4000x3000 q92 per round, {args.rounds} rounds interleaved, "
        f"{CLIENTS} clients x {FILES_PER_REQUEST} files/request; bound with {args.threads} "
        f"torch threads, batch {BATCH}; load average {os.getloadavg()[0]:.1f}"
    )
    for setup, servers, decode, forward, bound, bound_cpu in rows:
        b_min, b_med = min(bound), statistics.median(bound)
        print(
            f"\n{setup.name}: bound = draft decode {min(decode):.1f} + forward "
            f"{min(forward):.1f} = {b_min:.1f} ms/img (min; median {b_med:.1f}); "
            f"CPU {min(bound_cpu):.1f} ms/img (min)"
        )
        for server in servers:
            e_min, e_med = min(server.rounds), statistics.median(server.rounds)
            print(
                f"  server {server.code}: end to end {e_min:.1f} / {e_med:.1f} ms/img "
                f"(min / median); ratio {e_min / b_min:.2f} (min/min), "
                f"{e_med / b_med:.2f} (median/median)"
            )
            print(
                f"    CPU of the server's processes {min(server.cpu):.1f} / "
                f"{statistics.median(server.cpu):.1f} ms/img (min / median); "
                f"{min(server.cpu) / min(bound_cpu):.2f}x the bound's CPU (min/min)"
            )
            if server.latencies:
                print(
                    f"    GET /images/?limit=100 during embedding: p50 "
                    f"{1000 * pct(server.latencies, 0.5):.1f} ms, p99 "
                    f"{1000 * pct(server.latencies, 0.99):.1f} ms ({len(server.latencies)} reads)"
                )


if __name__ == "__main__":
    main()
