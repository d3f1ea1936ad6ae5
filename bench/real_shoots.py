"""Grouping on real shoots: cards of real captures, analysed through the real HTTP API.

Run by hand, never in the tests (~2-4 min on 2 cores, most of it embedding):
    python -m bench.real_shoots                       # every card, every parameter set
    python -m bench.real_shoots --cards wedding       # one card
    python -m bench.real_shoots --descriptors mean,gem,mac  # compare pooling of the offline encoder
    python -m bench.real_shoots --cards wedding,fives --gaps 1,2,5,10,30,40,120  # the time gap

The cards are real captures, not augmented copies of one photo: consecutive frames of real
videos (opencv-doc's vtest.avi: a plaza filmed from a window; Megamind.avi: four shots of a
dialogue; tree.avi: a tree in the wind) and real photo sequences (calibration frames, stereo
and optical-flow pairs), plus real unrelated photographs (opencv-doc, mate-backgrounds,
scikit-image and scikit-learn samples). EXIF written with Pillow makes them look like a shoot:
- bursts of 2-12 frames at the video's own frame intervals (0.1-0.4 s) or hand-clicked 1-3 s
  apart; the same place a moment later (the plaza 35 s later with other people in it, the tree
  45 s later, the other character of the dialogue) as separate bursts;
- two subjects a few seconds apart (the photographer turns around: the Leuven street, then
  the toy whale 2 s later; the aloe, then the graffiti 2 s later);
- a second body of the same make and model (another serial) shooting another moment of the
  plaza, and the tree, at the very same seconds as the first body;
- singles minutes apart, with look-alikes among them (apple/orange/fruit bowl, flowers, the
  plaza and the tree at other times, more calibration frames);
- images without EXIF at all (a burst and some singles: exported or downloaded files).

Cards: "wedding" (everything above), "fives" (six bursts of 5 frames + singles), "no-times"
(the wedding card with every capture time removed). Truth: each burst is one group, each single
is alone. Figures per card and parameter set (through PUT /batches/{id}/analyze):
ARI (each Ungrouped image and each true single counts as its own cluster), pair precision and
recall (pairs put in one group vs pairs of one burst), bursts recovered exactly (of those with at
least min_cluster_size frames, the ones the parameters ask for), true singles left Ungrouped, and
groups that merge two moments.

"before" rows (printed with the "mean" descriptor, the vectors before issue 9): the grouping as
it was before issue 9 (HDBSCAN alone, the API default was 5/5 and capture time off), computed on
the same stored vectors in the same run.
Each analysis runs with the default request and, where the server supports it, with capture
time turned off (`use_capture_time: false`), so the effect of time is measured in the same run.
`--descriptors` embeds the cards once per pooling of the offline encoder ("default" is the
server's own, MAC since issue 9; "mean" is the descriptor before it; see
processing/feature_extraction.py) and also prints similarity within bursts against similarity
between look-alikes (ROC AUC: the chance a pair of one burst is more similar than a look-alike
pair of different moments).
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from sklearn.metrics import adjusted_rand_score, roc_auc_score

from bench.debian_data import background_photos, opencv_data

SHOOT_START = datetime(2026, 6, 13, 14, 0, 0, tzinfo=timezone(timedelta(hours=2)))
PARAMETER_SETS: list[tuple[str, dict[str, Any]]] = [
    ("5/5", {"min_cluster_size": 5, "min_samples": 5}),
    ("3/3", {"min_cluster_size": 3, "min_samples": 3}),
    ("2/1", {"min_cluster_size": 2, "min_samples": 1}),
    ("API defaults", {}),
]


@dataclass(frozen=True)
class Camera:
    make: str
    model: str
    serial: str | None


BODY_A = Camera("Canon", "Canon EOS R6", "032021001234")
BODY_B = Camera("Canon", "Canon EOS R6", "032021005678")  # the second shooter: same model
PHONE = Camera("Apple", "iPhone 13", None)


@dataclass(frozen=True)
class Shot:
    name: str
    image: Image.Image
    truth: str  # burst id, or a unique "single:<name>"
    camera: Camera | None
    at: float | None  # seconds after SHOOT_START; None: no capture time in EXIF
    kind: str = ""  # look-alike family, for the descriptor figures
    original: bytes | None = None  # a real camera file, uploaded byte for byte (its own EXIF)


# --- real sources ---------------------------------------------------------------------------


def _sample_photo_dirs() -> tuple[Path, Path]:
    import skimage
    import sklearn

    return Path(skimage.__file__).parent / "data", Path(sklearn.__file__).parent / "datasets/images"


def video_frames(name: str, indices: Sequence[int]) -> dict[int, Image.Image]:
    """The given frames of one of opencv-doc's videos (decoded by imageio-ffmpeg's ffmpeg)."""
    import imageio_ffmpeg

    wanted = set(indices)
    frames: dict[int, Image.Image] = {}
    reader = imageio_ffmpeg.read_frames(str(opencv_data() / name))
    meta = next(reader)
    width, height = meta["size"]
    for index, raw in enumerate(reader):
        if index in wanted:
            frames[index] = Image.frombytes("RGB", (width, height), raw)
        if len(frames) == len(wanted):
            break
    reader.close()
    return frames


def distinct_frames(name: str, indices: Sequence[int]) -> dict[int, Image.Image]:
    """Like video_frames, but a frame identical to one already chosen (tree.avi repeats frames,
    a still scene encodes to the same pixels) is replaced by the next different frame: the
    upload would store identical files once."""
    frames = video_frames(name, range(min(indices), max(indices) + 24))
    chosen: dict[int, Image.Image] = {}
    seen: set[bytes] = set()
    for index in indices:
        at = index
        while frames[at].tobytes() in seen:
            at += 1
        chosen[index] = frames[at]
        seen.add(frames[at].tobytes())
    return chosen


def video_fps(name: str) -> float:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(opencv_data() / name))
    fps = float(next(reader)["fps"])
    reader.close()
    return fps


def photo(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im.load()
        rgb = im.convert("RGB")
    if max(rgb.size) > 1600:  # wallpapers are up to 5k wide; a camera JPEG is not the point
        rgb.thumbnail((1600, 1600))
    return rgb


# --- the cards --------------------------------------------------------------------------------

# (burst id, video, first frame, frames, step, camera, start second, has EXIF time, look-alike kind)
VIDEO_BURSTS = [
    ("plaza-1", "vtest.avi", 20, 12, 2, BODY_A, 0.0, True, "plaza"),
    ("plaza-2", "vtest.avi", 330, 5, 2, BODY_A, 35.0, True, "plaza"),
    ("plaza-3", "vtest.avi", 600, 3, 2, BODY_A, 70.0, True, "plaza"),
    ("plaza-4", "vtest.avi", 760, 2, 3, BODY_A, 600.0, True, "plaza"),
    ("plaza-B", "vtest.avi", 480, 8, 2, BODY_B, 0.1, True, "plaza"),  # same seconds as plaza-1
    ("plaza-nx", "vtest.avi", 150, 6, 2, None, None, False, "plaza"),  # exported, no EXIF
    ("her-1", "Megamind.avi", 20, 8, 6, BODY_A, 1200.0, True, "her"),
    ("him-1", "Megamind.avi", 110, 6, 6, BODY_A, 1240.0, True, "him"),
    ("her-2", "Megamind.avi", 160, 6, 6, BODY_A, 1300.0, True, "her"),
    ("him-2", "Megamind.avi", 205, 11, 6, BODY_A, 1330.0, True, "him"),
    ("tree-1", "tree.avi", 30, 6, 6, BODY_A, 2000.0, True, "tree"),
    ("tree-2", "tree.avi", 400, 5, 4, BODY_A, 2045.0, True, "tree"),
    ("tree-B", "tree.avi", 200, 6, 4, BODY_B, 1200.2, True, "tree"),  # same seconds as her-1
]
# (burst id, files, seconds between frames, camera, start second, kind)
PHOTO_BURSTS = [
    (
        "board",
        ["left01.jpg", "left02.jpg", "left03.jpg", "left04.jpg"],
        2.0,
        BODY_A,
        2500.0,
        "board",
    ),
    ("basketball", ["basketball1.png", "basketball2.png"], 0.04, BODY_A, 3000.0, ""),
    ("rubberwhale", ["rubberwhale1.png", "rubberwhale2.png"], 0.04, BODY_A, 3203.0, ""),
    ("leuven", ["leuvenA.jpg", "leuvenB.jpg"], 1.0, BODY_A, 3200.0, "street"),
    ("aloe", ["aloeL.jpg", "aloeR.jpg"], 0.5, BODY_A, 3300.0, ""),
    ("books", ["left.jpg", "right.jpg"], 0.8, PHONE, 3400.0, ""),
    ("graffiti", ["graf1.png", "graf3.png"], 2.0, BODY_A, 3302.5, ""),
]
OPENCV_SINGLES = {
    "apple.jpg": "fruit",
    "orange.jpg": "fruit",
    "fruits.jpg": "fruit",
    "baboon.jpg": "",
    "butterfly.jpg": "flower",
    "building.jpg": "street",
    "home.jpg": "street",
    "messi5.jpg": "",
    "starry_night.jpg": "",
    "HappyFish.jpg": "",
    "squirrel_cls.jpg": "",
    "stuff.jpg": "",
    "smarties.png": "",
    "board.jpg": "",
    "box_in_scene.png": "",
    "licenseplate_motion.jpg": "",
    "text_defocus.jpg": "page",
    "text_motion.jpg": "page",
    "aero1.jpg": "aerial",
    "aero3.jpg": "aerial",
    "left07.jpg": "board",
    "left12.jpg": "board",
    "sudoku.png": "page",
    "pca_test1.jpg": "",
    "Blender_Suzanne1.jpg": "",
}
SAMPLE_SINGLES = {
    "astronaut.png": "",
    "coffee.png": "",
    "chelsea.png": "",
    "rocket.jpg": "",
    "hubble_deep_field.jpg": "",
    "ihc.png": "",
    "retina.jpg": "",
    "camera.png": "",
    "coins.png": "",
    "page.png": "page",
    "china.jpg": "street",
    "flower.jpg": "flower",
}
# Other moments of the videos, as single frames minutes from any burst: look-alike singles.
VIDEO_SINGLES = [
    ("vtest.avi", 240, "plaza"),
    ("vtest.avi", 700, "plaza"),
    ("tree.avi", 300, "tree"),
]
# Backgrounds without EXIF (downloaded files), by file name.
UNTIMED_BACKGROUNDS = {"Aqua.jpg", "Storm.jpg", "Wood.jpg", "Elephants.jpg"}
BACKGROUND_KINDS = {
    "FreshFlower.jpg": "flower",
    "YellowFlower.jpg": "flower",
    "LadyBird.jpg": "flower",
}


def wedding_card() -> list[Shot]:
    shots: list[Shot] = []
    for bid, video, first, count, step, camera, start, timed, kind in VIDEO_BURSTS:
        fps = video_fps(video)
        indices = [first + step * k for k in range(count)]
        frames = distinct_frames(video, indices)
        for k, index in enumerate(indices):
            at = start + k * step / fps if timed else None
            shots.append(Shot(f"{bid}-{k:02d}", frames[index], bid, camera, at, kind))
    data = opencv_data()
    for bid, files, interval, camera, start, kind in PHOTO_BURSTS:
        for k, file in enumerate(files):
            shot = Shot(
                f"{bid}-{k:02d}", photo(data / file), bid, camera, start + k * interval, kind
            )
            shots.append(shot)
    singles: list[tuple[str, Image.Image, str, bool]] = []
    for file, kind in OPENCV_SINGLES.items():
        singles.append((file, photo(data / file), kind, True))
    skimage_dir, sklearn_dir = _sample_photo_dirs()
    for file, kind in SAMPLE_SINGLES.items():
        path = skimage_dir / file if (skimage_dir / file).exists() else sklearn_dir / file
        singles.append((file, photo(path), kind, True))
    for video, index, kind in VIDEO_SINGLES:
        singles.append((f"{video}-{index}", video_frames(video, [index])[index], kind, True))
    for path in background_photos():
        if "nature" in path.parts or path.name == "Elephants.jpg":
            kind = BACKGROUND_KINDS.get(path.name, "")
            singles.append((path.name, photo(path), kind, path.name not in UNTIMED_BACKGROUNDS))
    # Singles every 70-130 s after the last burst (a slow walk around the venue).
    at = 4000.0
    rng = np.random.default_rng(9)
    for name, image, kind, timed in singles:
        at += float(rng.uniform(70, 130))
        camera = BODY_A if timed else None
        shots.append(
            Shot(f"single-{name}", image, f"single:{name}", camera, at if timed else None, kind)
        )
    return shots


def fives_card(wedding: Sequence[Shot]) -> list[Shot]:
    """Six bursts of five frames (three of them look-alike moments) plus singles."""
    keep = {"plaza-1", "plaza-2", "plaza-B", "her-1", "him-2", "tree-1"}
    seen: dict[str, int] = {}
    shots = []
    for shot in wedding:
        if shot.truth in keep and seen.get(shot.truth, 0) < 5:
            seen[shot.truth] = seen.get(shot.truth, 0) + 1
            shots.append(shot)
    singles = [s for s in wedding if s.truth.startswith("single:")]
    return shots + singles[::3]


def without_times(shots: Sequence[Shot]) -> list[Shot]:
    return [replace(s, at=None) for s in shots]


# --- EXIF and upload ------------------------------------------------------------------------


def jpeg_bytes(shot: Shot) -> bytes:
    if shot.original is not None:
        return shot.original
    exif = Image.Exif()
    if shot.camera is not None:
        exif[0x010F] = shot.camera.make
        exif[0x0110] = shot.camera.model
    sub = exif.get_ifd(0x8769)
    if shot.camera is not None and shot.camera.serial is not None:
        sub[0xA431] = shot.camera.serial  # BodySerialNumber
    if shot.at is not None:
        moment = SHOOT_START + timedelta(seconds=shot.at)
        sub[0x9003] = moment.strftime("%Y:%m:%d %H:%M:%S")  # DateTimeOriginal
        sub[0x9291] = f"{moment.microsecond // 1000:03d}"  # SubSecTimeOriginal (ms)
        sub[0x9011] = "+02:00"  # OffsetTimeOriginal
    out = io.BytesIO()
    has_exif = shot.camera is not None or shot.at is not None
    shot.image.save(out, "JPEG", quality=90, **({"exif": exif.tobytes()} if has_exif else {}))
    return out.getvalue()


@dataclass
class Scores:
    ari: float
    precision: float
    recall: float
    bursts_exact: int
    bursts_asked: int  # bursts with at least min_cluster_size frames
    bursts_asked_exact: int
    bursts: int
    singles_alone: int
    singles: int
    merged_moments: int  # groups holding frames of two or more true moments
    groups: int
    bodies_mixed: int = 0  # groups holding frames of two or more camera bodies (EXIF written)


def score(
    truth: Sequence[str],
    labels: Sequence[str],
    min_cluster_size: int,
    cameras: Sequence[Camera | None] = (),
) -> Scores:
    def own(values: Sequence[str], alone: str) -> list[str]:
        return [f"{alone}{i}" if v.startswith(alone) else v for i, v in enumerate(values)]

    t = own(truth, "single:")
    p = own(labels, "Ungrouped")
    same_pred = same_true = both = 0
    for i, j in itertools.combinations(range(len(t)), 2):
        sp, st = p[i] == p[j], t[i] == t[j]
        same_pred += sp
        same_true += st
        both += sp and st
    bursts = sorted({v for v in truth if not v.startswith("single:")})
    members = {b: {i for i, v in enumerate(truth) if v == b} for b in bursts}
    groups = {
        g: {i for i, v in enumerate(labels) if v == g} for g in set(labels) if g != "Ungrouped"
    }
    exact = {b for b in bursts if any(m == members[b] for m in groups.values())}
    asked = {b for b in bursts if len(members[b]) >= min_cluster_size}
    singles = [i for i, v in enumerate(truth) if v.startswith("single:")]
    merged = sum(1 for m in groups.values() if len({truth[i] for i in m}) > 1)
    bodies = [{cameras[i] for i in m} - {None} for m in groups.values()] if cameras else []
    return Scores(
        ari=float(adjusted_rand_score(t, p)),
        precision=both / same_pred if same_pred else 1.0,
        recall=both / same_true if same_true else 1.0,
        bursts_exact=len(exact),
        bursts_asked=len(asked),
        bursts_asked_exact=len(exact & asked),
        bursts=len(bursts),
        singles_alone=sum(labels[i] == "Ungrouped" for i in singles),
        singles=len(singles),
        merged_moments=merged,
        groups=len(groups),
        bodies_mixed=sum(len(b) > 1 for b in bodies),
    )


class Server:
    """The real app (TestClient over HTTP semantics) on a fresh SQLite database."""

    def __init__(self, root: Path, embedder: Any) -> None:
        from fastapi.testclient import TestClient

        from api.main import create_app
        from config import Settings
        from database.migrations import upgrade_to_head

        url = f"sqlite:///{root / 'bench.db'}"
        upgrade_to_head(url)
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=url,
            storage_root=root / "assets",
            embedding_model="efficientnet-lite0",
            embedding_device="cpu",
        )
        app = create_app(settings, embedder=embedder, threaded_worker=False)
        self._context = TestClient(app)
        self.client = self._context.__enter__()

    def close(self) -> None:
        self._context.__exit__(None, None, None)

    def upload_card(self, shots: Sequence[Shot]) -> tuple[int, list[int]]:
        ids: list[int] = []
        for start in range(0, len(shots), 25):
            chunk = shots[start : start + 25]
            files = [("files", (f"{s.name}.jpg", jpeg_bytes(s), "image/jpeg")) for s in chunk]
            response = self.client.post("/images/upload", files=files)
            assert response.status_code == 200, response.text
            ids += [item["id"] for item in response.json()]
        batch = self.client.post("/batches/", json={"name": "card", "image_ids": ids})
        assert batch.status_code == 201, batch.text
        return int(batch.json()["id"]), ids

    def analyze(self, batch_id: int, body: dict[str, Any]) -> tuple[dict[int, str], dict[str, Any]]:
        for _ in range(300):
            response = self.client.put(f"/batches/{batch_id}/analyze", json=body)
            if response.status_code != 409:
                break
            time.sleep(1)
        assert response.status_code == 200, response.text
        data = response.json()
        labels = {a["image"]["id"]: a["group_label"] for a in data["image_associations"]}
        return labels, data["parameters"]

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        from sqlalchemy import select

        from database.models import Image as ImageRow

        factory = self.client.app.state.session_factory  # type: ignore[attr-defined]
        with factory() as session:
            query = select(ImageRow.id, ImageRow.features).where(ImageRow.id.in_(ids))
            rows = {row.id: row.features for row in session.execute(query)}
        return np.stack([np.frombuffer(rows[i], dtype=np.float32) for i in ids])


def make_embedder(descriptor: str) -> Any:
    from processing import feature_extraction as fe
    from processing.embedding_spec import OFFLINE_MODEL_ID, EmbedderSpec

    embedder = fe.ManagedEmbedder(EmbedderSpec(OFFLINE_MODEL_ID, device="cpu"))
    if descriptor != "default":
        pooled = fe.EfficientNetLiteEmbedder(pooling=descriptor)  # type: ignore[arg-type]
        pooled.load()
        embedder._active = pooled  # the pooling under test, through the same managed path
    embedder.load()
    return embedder


def within_and_between(shots: Sequence[Shot], sims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The similarities of pairs within one burst, and of look-alike pairs (one kind of
    picture) from different moments."""
    within, between = [], []
    for i, j in itertools.combinations(range(len(shots)), 2):
        a, b = shots[i], shots[j]
        if a.truth == b.truth and not a.truth.startswith("single:"):
            within.append(sims[i, j])
        elif a.kind and a.kind == b.kind and a.truth != b.truth:
            between.append(sims[i, j])
    return np.array(within), np.array(between)


def descriptor_figures(shots: Sequence[Shot], x: np.ndarray) -> str:
    """Cosine within bursts vs between look-alikes of different moments; ROC AUC."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    w, b = within_and_between(shots, x @ x.T)
    if not w.size or not b.size:
        return f"within bursts: {w.size} pairs, look-alikes of other moments: {b.size} pairs"
    auc = roc_auc_score(np.r_[np.ones(w.size), np.zeros(b.size)], np.r_[w, b])
    return (
        f"within bursts: mean {w.mean():.3f}, 5th pct {np.percentile(w, 5):.3f}, min {w.min():.3f} "
        f"({w.size} pairs) | look-alikes of other moments: mean {b.mean():.3f}, "
        f"95th pct {np.percentile(b, 95):.3f}, max {b.max():.3f} ({b.size} pairs) | AUC {auc:.3f}"
    )


HEADER = (
    f"   {'parameters':<22} {'ARI':>6} {'prec':>6} {'recall':>6} {'bursts exact':>13} "
    f"{'>=mcs exact':>12} {'singles alone':>14} {'merged':>7} {'groups':>7} {'bodies mixed':>12}"
)


def row(shown: str, s: Scores) -> str:
    return (
        f"   {shown:<22} {s.ari:6.3f} {s.precision:6.3f} {s.recall:6.3f} "
        f"{s.bursts_exact:>6}/{s.bursts:<6} {s.bursts_asked_exact:>5}/{s.bursts_asked:<6} "
        f"{s.singles_alone:>7}/{s.singles:<6} {s.merged_moments:>7} {s.groups:>7} "
        f"{s.bodies_mixed:>12}"
    )


def before_labels(x: np.ndarray, min_cluster_size: int, min_samples: int) -> list[str]:
    """The grouping before issue 9, on the same stored vectors: HDBSCAN alone (capture time
    only on request), then the single-cluster fallback when nothing was found."""
    from processing.exact_mst import exact_hdbscan_labels
    from processing.grouping import UNGROUPED

    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    ms = min(min_samples, len(x) - 1)
    raw = exact_hdbscan_labels(
        unit, min_cluster_size, ms, unit_rows=True, allow_single_cluster=False
    )
    if np.all(raw < 0):
        raw = exact_hdbscan_labels(
            unit, min_cluster_size, ms, unit_rows=True, allow_single_cluster=True
        )
    return [UNGROUPED if r < 0 else f"Group {r}" for r in raw]


def save_card(path: Path, shots: Sequence[Shot], vectors: np.ndarray) -> None:
    """The card's vectors as the server stored them, with each shot's truth, camera and time
    (bench/moments_loco.py chooses thresholds on these, leave-one-card-out)."""
    np.savez_compressed(
        path,
        vectors=vectors,
        names=np.array([s.name for s in shots]),
        truth=np.array([s.truth for s in shots]),
        cameras=np.array(
            [
                ""
                if s.camera is None
                else f"{s.camera.make}|{s.camera.model}|{s.camera.serial or ''}"
                for s in shots
            ]
        ),
        at=np.array([np.nan if s.at is None else s.at for s in shots]),
    )


def card_rows(
    server: Server,
    name: str,
    shots: Sequence[Shot],
    with_time_off: bool,
    before: bool,
    gaps: Sequence[float] = (),
    parameter_sets: Sequence[tuple[str, dict[str, Any]]] = PARAMETER_SETS,
    save_dir: Path | None = None,
) -> Iterator[str]:
    t0 = time.perf_counter()
    batch_id, ids = server.upload_card(shots)
    yield f"-- card {name}: {len(ids)} images uploaded+embedded in {time.perf_counter() - t0:.1f} s"
    if save_dir is not None:
        save_dir.mkdir(parents=True, exist_ok=True)
        save_card(save_dir / f"{name}.npz", shots, server.vectors(ids))
        yield f"   vectors saved to {save_dir / f'{name}.npz'}"
    if any(s.kind for s in shots) and not name.endswith(("-noexif", "no-times", "fives")):
        yield "   " + descriptor_figures(shots, server.vectors(ids))
    truth = [s.truth for s in shots]
    cameras = [s.camera for s in shots]
    variants: list[tuple[str, dict[str, Any]]] = [("", {})]
    if with_time_off and name != "no-times" and not name.endswith("-noexif"):
        variants.append((" time off", {"use_capture_time": False}))
    yield HEADER
    for gap in gaps if name != "no-times" else ():
        for label, body in (PARAMETER_SETS[0], PARAMETER_SETS[2]):
            got, params = server.analyze(batch_id, {**body, "time_gap_seconds": gap})
            scores = score(truth, [got[i] for i in ids], int(body["min_cluster_size"]), cameras)
            yield row(f"{label} gap {gap:g} s", scores)
    if gaps:
        return
    if before:
        x = server.vectors(ids)
        for label, body in PARAMETER_SETS[:3]:
            mcs, ms = body["min_cluster_size"], body["min_samples"]
            yield row(f"before {label}", score(truth, before_labels(x, mcs, ms), mcs, cameras))
    for label, body in parameter_sets:
        for suffix, extra in variants:
            got, params = server.analyze(batch_id, {**body, **extra})
            scores = score(truth, [got[i] for i in ids], int(params["min_cluster_size"]), cameras)
            if label == "API defaults":
                label = f"defaults {params['min_cluster_size']}/{params['min_samples']}"
            yield row(label + suffix, scores)


# --- leave one card out --------------------------------------------------------------------

# results[card][candidate] = the card's scores with that candidate request
Results = dict[str, dict[str, Scores]]
Chooser = Callable[[Results], str]


def source_of(card: str) -> str:
    """Cards built from one source (a card and its stripped copy) are left out together."""
    return card.removesuffix("-noexif").replace("no-times", "wedding").replace("fives", "wedding")


def precision_first(fit: Results) -> str:
    """The candidate with the best mean pair precision (counted up to the 0.95 target) on the
    fit cards, then the best mean ARI."""
    candidates = next(iter(fit.values())).keys()

    def key(candidate: str) -> tuple[float, float]:
        scores = [fit[card][candidate] for card in fit]
        precision = float(np.mean([min(s.precision, 0.95) for s in scores]))
        return round(precision, 3), float(np.mean([s.ari for s in scores]))

    return max(candidates, key=key)


def held_out_rows(
    results: Results,
    choose: Chooser = precision_first,
    families: Mapping[str, Sequence[str]] | None = None,
) -> Iterator[str]:
    """For each family of candidates (one parameter set, each value of the swept field) and each
    source: choose a candidate on every other source's cards (fit), report it on the cards of
    the source left out (held out). `choose` is the pluggable threshold choice."""
    if families is None:
        families = {"all": list(next(iter(results.values())))}
    yield f"   {'held out':<18} {'chosen on the others':<28} {'fit ARI/prec':>13} " + HEADER[26:]
    for candidates in families.values():
        for source in sorted({source_of(c) for c in results}):
            fit = {
                c: {k: r[k] for k in candidates}
                for c, r in results.items()
                if source_of(c) != source
            }
            if not fit:
                continue
            chosen = choose(fit)
            fit_ari = float(np.mean([r[chosen].ari for r in fit.values()]))
            fit_precision = float(np.mean([r[chosen].precision for r in fit.values()]))
            for card in sorted(c for c in results if source_of(c) == source):
                shown = row("", results[card][chosen])[26:]
                yield f"   {card:<18} {chosen:<28} {fit_ari:6.3f}/{fit_precision:<6.3f} {shown}"


def sweep_candidates(
    parameter_sets: Sequence[tuple[str, dict[str, Any]]], sweep: str
) -> list[tuple[str, dict[str, Any]]]:
    """Each parameter set crossed with each value of `key=v1,v2,...` (JSON values)."""
    if not sweep:
        return list(parameter_sets)
    key, values = sweep.split("=", 1)
    return [
        (f"{label} {key.split('_')[-1]}={value}", {**body, key: json.loads(value)})
        for label, body in parameter_sets
        for value in values.split(",")
    ]


def candidate_results(
    server: Server, shots: Sequence[Shot], candidates: Sequence[tuple[str, dict[str, Any]]]
) -> dict[str, Scores]:
    batch_id, ids = server.upload_card(shots)
    truth, cameras = [s.truth for s in shots], [s.camera for s in shots]
    results = {}
    for label, body in candidates:
        got, params = server.analyze(batch_id, body)
        mcs = int(params["min_cluster_size"])
        results[label] = score(truth, [got[i] for i in ids], mcs, cameras)
    return results


# --- running ---------------------------------------------------------------------------------

PROJECT_CARDS = ("wedding", "fives", "no-times")


def build_cards(names: Sequence[str]) -> dict[str, list[Shot]]:
    from bench import shoot_cards

    cards: dict[str, list[Shot]] = {}
    if any(name in PROJECT_CARDS for name in names):
        wedding = wedding_card()
        project = {"wedding": wedding, "fives": fives_card(wedding)}
        project["no-times"] = without_times(wedding)
        cards.update({n: project[n] for n in names if n in project})
    cards.update(shoot_cards.build([n for n in names if n not in PROJECT_CARDS]))
    return {name: cards[name] for name in names}


def run(
    cards: Sequence[str],
    descriptors: Sequence[str],
    with_time_off: bool,
    gaps: Sequence[float],
    parameter_sets: Sequence[tuple[str, dict[str, Any]]] = PARAMETER_SETS,
    held_out: str | None = None,
    save_dir: Path | None = None,
) -> Iterator[str]:
    started = time.perf_counter()
    all_cards = build_cards(cards)
    yield f"cards built in {time.perf_counter() - started:.1f} s: " + ", ".join(
        f"{name} {len(all_cards[name])} images, "
        f"{len({s.truth for s in all_cards[name] if not s.truth.startswith('single:')})} bursts"
        for name in cards
    )
    for descriptor in descriptors:
        embedder = make_embedder(descriptor)
        yield f"\n== descriptor: {descriptor} (embedding id {embedder.model_id}) =="
        results: Results = {}
        for name in cards:
            with tempfile.TemporaryDirectory(prefix="real-shoots-") as tmp:
                server = Server(Path(tmp), embedder)
                try:
                    if held_out is not None:
                        candidates = sweep_candidates(parameter_sets, held_out)
                        results[name] = candidate_results(server, all_cards[name], candidates)
                        yield f"-- card {name}: {len(all_cards[name])} images"
                        yield HEADER
                        yield from (row(c, s) for c, s in results[name].items())
                        continue
                    yield from card_rows(
                        server,
                        name,
                        all_cards[name],
                        with_time_off,
                        descriptor == "mean",
                        gaps,
                        parameter_sets,
                        save_dir=save_dir,
                    )
                finally:
                    server.close()
        if held_out is not None:
            yield "\n-- leave one source out (a card and its -noexif copy go together) --"
            candidates = [label for label, _ in sweep_candidates(parameter_sets, held_out)]
            families = {
                p: [c for c in candidates if c == p or c.startswith(p + " ")]
                for p, _ in parameter_sets
            }
            yield from held_out_rows(results, families=families)


ALL_CARDS = (
    "wedding,fives,no-times,street,street-noexif,portraits,portraits-noexif,"
    "lab,lab-noexif,album,album-noexif"
)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", default=ALL_CARDS)
    parser.add_argument("--descriptors", default="default", help="e.g. mean,gem,mac")
    parser.add_argument("--no-time-off", action="store_true", help="skip the time-off variant")
    parser.add_argument(
        "--gaps", default="", help="only sweep time_gap_seconds, e.g. 1,2,5,10,30,40,120"
    )
    parser.add_argument(
        "--params",
        default=",".join(label for label, _ in PARAMETER_SETS),
        help="parameter sets, e.g. '2/1,5/5,API defaults'",
    )
    parser.add_argument(
        "--held-out",
        nargs="?",
        const="",
        default=None,
        help="leave one source out: choose among the parameter sets (crossed with "
        "KEY=V1,V2,... of the analyze request, if given) on the other cards, report on it",
    )
    parser.add_argument(
        "--save-vectors",
        type=Path,
        default=None,
        help="save each card's stored vectors, truth and EXIF to DIR/<card>.npz",
    )
    args = parser.parse_args(argv)
    gaps = [float(g) for g in args.gaps.split(",") if g]
    print(
        "command: python -m bench.real_shoots " + shlex.join(sys.argv[1:] if argv is None else argv)
    )
    wanted = args.params.split(",")
    parameter_sets = [(label, body) for label, body in PARAMETER_SETS if label in wanted]
    cards, descriptors = args.cards.split(","), args.descriptors.split(",")
    lines = run(
        cards,
        descriptors,
        not args.no_time_off,
        gaps,
        parameter_sets,
        args.held_out,
        args.save_vectors,
    )
    for line in lines:
        print(line, flush=True)


if __name__ == "__main__":
    main()
