"""Keepers judged side by side within each group, held out by photo source, before and after.

Settings are chosen on some sources and reported on one they were not chosen on.

    .venv/bin/python -m bench.keeper_group

The keeper groups of bench/keeper_centre.py (shallow depth of field, shake, missed focus at
high ISO) from three independent sources of real photographs: the libraries' samples, the
MATE/GNOME wallpapers and the Ubuntu wallpaper contest's photographs (Lomiri's packages). Each
frame is judged alone once (`assess_quality`, the shipped score, which also gives its tile
map); then two judges of processing/group_focus.py judge the frames side by side, in the same
run: "before", by the comparison only (alone_weight 0), and "after", the geometric mean of the
comparison and the frame's own subject sharpness (ALONE_WEIGHT). For each judge and each
(CENTRE_POWER, COMPACTNESS) pair the keepers right are counted; for each source, the pair with
the most keepers right on the *other* sources (all their cases) is chosen (ties: the smaller
power, then the smaller compactness) and its figure on this source is reported. The figure of
the previous run (libraries and wallpapers only, each chosen on the other) is given too. A
group counts as right when the frame a person keeps has the strictly highest score.

Besides bench/keeper.py's groups, "off-centre subject": the same shallow depth of field with
the subject an ellipse (radius 0.18 of each side) around each of the four third points, four
groups per photo: a subject where a photographer puts it, which a centre prior alone misses.
And the real blinks of bench/keeper.py (open eyes against a crisper closed-eyes frame is the
eyes rule): judged side by side with the shipped setting.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFilter

from bench import keeper
from bench.pypi_data import carphone_frames
from processing import quality
from processing.group_focus import (
    ALONE_WEIGHT,
    CENTRE_POWER,
    GroupJudged,
    judged_in_group,
    member,
)
from processing.group_focus import COMPACTNESS as COMPACTNESS_SHIPPED

POWERS = (0.0, 1.0, 2.0, 3.0, 4.0)
COMPACTNESS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
THIRDS = ((1 / 3, 1 / 3), (2 / 3, 1 / 3), (1 / 3, 2 / 3), (2 / 3, 2 / 3))
OFF_CENTRE = "off-centre subject: sharp subject at a third point vs sharp background"
# name: (quality.NOISE_DETAIL_SHARE, alone_weight); "before" is the judge of QUALITY_VERSION 6.
JUDGES = {
    "before": (0.0, 0.0),
    "own sharpness only": (0.0, ALONE_WEIGHT),
    "grain floor only": (quality.NOISE_DETAIL_SHARE, 0.0),
    "after": (quality.NOISE_DETAIL_SHARE, ALONE_WEIGHT),
}
SOURCES = ("libraries", "wallpapers", "contest")
Setting = tuple[float, float]
Cells = dict[str, dict[str, list[int]]]
Members = list[tuple[GroupJudged, NDArray[np.float64] | None]]


def off_centre_groups(photos: dict[str, Image.Image]) -> list[keeper.Group]:
    groups = []
    for name, img in photos.items():
        width, height = img.size
        soft = img.filter(ImageFilter.GaussianBlur(4))
        for x, y in THIRDS:
            mask = Image.new("L", img.size, 0)
            rx, ry = width * 0.18, height * 0.18
            box = (width * x - rx, height * y - ry, width * x + rx, height * y + ry)
            ImageDraw.Draw(mask).ellipse(box, fill=255)
            mask = mask.filter(ImageFilter.GaussianBlur(6))
            frames = [Image.composite(img, soft, mask), Image.composite(soft, img, mask)]
            groups.append(keeper.Group(OFF_CENTRE, name, frames))
    return groups


def source_of(photo: str) -> str:
    if photo in keeper.WALLPAPER_PHOTOS:
        return "wallpapers"
    return "contest" if photo in keeper.CONTEST_PHOTOS else "libraries"


def first_wins(scores: Sequence[float | None]) -> bool:
    values = [s or 0.0 for s in scores]
    return values[0] > max(values[1:])


@contextmanager
def grain_share(share: float) -> Iterator[None]:
    before = quality.NOISE_DETAIL_SHARE
    quality.NOISE_DETAIL_SHARE = share
    try:
        yield
    finally:
        quality.NOISE_DETAIL_SHARE = before


def judged_alone(groups: list[keeper.Group], share: float) -> list[Members]:
    """Each frame judged alone, tiles within `share` of the noise counted as none."""
    with grain_share(share):
        return [
            [
                member(i, s, s.focus_tiles)
                for i, s in enumerate(map(quality.assess_quality, g.frames))
            ]
            for g in groups
        ]


def scores(members: Members, setting: Setting, alone_weight: float) -> list[float | None]:
    judged = judged_in_group(members, setting[0], setting[1], alone_weight)
    return [j.quality_score for j in judged]


class Tally:
    """Keepers right per source and kind, for one judge and setting (or frame alone)."""

    def __init__(self, groups: list[keeper.Group], right: list[bool]) -> None:
        self.cells: Cells = defaultdict(lambda: defaultdict(lambda: [0, 0]))
        for group, ok in zip(groups, right, strict=True):
            cell = self.cells[source_of(group.photo)][group.kind]
            cell[0] += ok
            cell[1] += 1

    def count(self, sources: Sequence[str], off: bool | None = None, index: int = 0) -> int:
        """Right (index 0) or all (1) in `sources`: every kind, or only the off-centre ones
        (True) or bench/keeper.py's (False)."""
        return sum(
            c[index]
            for s in sources
            for k, c in self.cells[s].items()
            if off is None or (k == OFF_CENTRE) == off
        )

    def split(self, sources: Sequence[str]) -> str:
        return (
            f"keeper.py cases {self.count(sources, False)}/{self.count(sources, False, 1)},"
            f" off-centre {self.count(sources, True)}/{self.count(sources, True, 1)}"
        )

    def kinds(self, source: str) -> str:
        return ", ".join(
            f"{kind.split(':')[0]} {right}/{total}"
            for kind, (right, total) in sorted(self.cells[source].items())
        )


def choose(side: dict[Setting, Tally], on: Sequence[str]) -> Setting:
    return max(side, key=lambda s: (side[s].count(on), -s[0], -s[1]))


def held_out(
    side: dict[Setting, Tally], alone: Tally, pairs: Sequence[tuple[str, Sequence[str]]]
) -> tuple[int, int, dict[str, Setting]]:
    """Print each source's figure with the setting chosen on the others; return the sums."""
    main = off = 0
    chosen: dict[str, Setting] = {}
    for source, others in pairs:
        setting = chosen[source] = choose(side, others)
        tally = side[setting]
        main += tally.count([source], False)
        off += tally.count([source], True)
        print(
            f"    {source:10s} chosen on {' + '.join(others)}: power {setting[0]:.0f},"
            f" compactness {setting[1]:.1f}; alone {alone.split([source])} -> side by side"
            f" {tally.split([source])}: {tally.kinds(source)}"
        )
    return main, off, chosen


def print_misses(
    groups: list[keeper.Group], judged: list[Members], chosen: dict[str, Setting], weight: float
) -> None:
    """The keeper.py cases still wrong held out, with each frame's score alone and side by side."""
    for group, members in zip(groups, judged, strict=True):
        setting = chosen[source_of(group.photo)]
        side = scores(members, setting, weight)
        if group.kind == OFF_CENTRE or first_wins(side):
            continue
        alone = [image.quality_score or 0.0 for image, _ in members]
        print(
            f"      miss: {source_of(group.photo)} {group.kind.split(':')[0]} {group.photo}:"
            f" alone {alone[0]:.3f} vs {max(alone[1:]):.3f},"
            f" side by side {side[0] or 0.0:.3f} vs {max(s or 0.0 for s in side[1:]):.3f}"
        )


def main() -> None:
    cv2.setNumThreads(1)
    print(f"command: .venv/bin/python -m bench.keeper_group   (pid {os.getpid()})")
    print(f"load average at start: {os.getloadavg()[0]:.2f} (2 cores, shared)")
    photos = {**keeper.real_photos(), **keeper.contest_photos()}
    groups = keeper.make_groups(photos) + off_centre_groups(photos)
    each = {name: judged_alone(groups, share) for name, (share, _) in JUDGES.items()}
    settings = [(p, c) for p in POWERS for c in COMPACTNESS]
    three = [(s, [o for o in SOURCES if o != s]) for s in SOURCES]
    two = [("libraries", ["wallpapers"]), ("wallpapers", ["libraries"])]
    print("\nEach frame alone (the shipped score before side by side), before -> after:")
    alones = {
        name: Tally(groups, [first_wins([j.quality_score for j, _ in m]) for m in judged])
        for name, judged in each.items()
    }
    for source in SOURCES:
        for name in ("before", "after"):
            print(
                f"  {source:10s} {name:6s} {alones[name].split([source])}:"
                f" {alones[name].kinds(source)}"
            )
    summary = []
    for name, (_, weight) in JUDGES.items():
        judged, alone = each[name], alones[name]
        side = {
            s: Tally(groups, [first_wins(scores(m, s, weight)) for m in judged]) for s in settings
        }
        print(f"\nSide by side, {name} (alone_weight {weight}), each (centre power, compactness):")
        for s in settings:
            counts = "; ".join(f"{src} {side[s].split([src])}" for src in SOURCES)
            print(f"  power {s[0]:.0f}, compactness {s[1]:.1f}: {counts}")
        print(f"  Held out, {name}: each source chosen on the two others")
        main3, off3, chosen = held_out(side, alone, three)
        print_misses(groups, judged, chosen, weight)
        print(f"  Held out, {name}: as in the previous run (two sources, each on the other)")
        main2, off2, _ = held_out(side, alone, two)
        best = choose(side, SOURCES)
        old = ["libraries", "wallpapers"]
        of_old = [side[chosen[s]].count([s], False) for s in old]
        summary.append(
            f"  {name:6s} held out on three sources: keeper.py cases {main3}/"
            f"{alone.count(SOURCES, False, 1)} (of which libraries + wallpapers {sum(of_old)}/"
            f"{alone.count(old, False, 1)}), off-centre {off3}/{alone.count(SOURCES, True, 1)};"
            f" two sources as before: {main2}/{alone.count(old, False, 1)},"
            f" off-centre {off2}/{alone.count(old, True, 1)};"
            f" chosen on all: power {best[0]:.0f}, compactness {best[1]:.1f}:"
            f" {side[best].split(SOURCES)}"
        )
    print(
        f"\nSummary (frame alone: before {alones['before'].split(SOURCES)},"
        f" after {alones['after'].split(SOURCES)}):"
    )
    print("\n".join(summary))
    blinks()


def blinks() -> None:
    """The real blinks side by side: is the open-eyed frame kept over the closed-eyes one?"""
    groups = keeper.blink_groups(carphone_frames())
    shipped = (CENTRE_POWER, COMPACTNESS_SHIPPED)
    counts = []
    for name, (share, weight) in JUDGES.items():
        judged = judged_alone(groups, share)
        alone = sum(first_wins([j.quality_score for j, _ in m]) for m in judged)
        side = sum(first_wins(scores(m, shipped, weight)) for m in judged)
        counts.append(f"{name}: alone {alone}/{len(groups)}, side by side {side}/{len(groups)}")
    print(
        f"\nReal blinks (carphone, open eyes kept over the blink; side by side with the shipped"
        f" power {shipped[0]:.0f}, compactness {shipped[1]:.1f}): {'; '.join(counts)}"
    )


if __name__ == "__main__":
    main()
