"""Keepers judged side by side within each group, held out by photo source.

Settings are chosen on one source and reported on the other.

    .venv/bin/python -m bench.keeper_group

The keeper groups of bench/keeper_centre.py (shallow depth of field, shake, missed focus at
high ISO, from two independent sources of real photographs: the libraries' samples and the
MATE/GNOME wallpapers). Each frame is judged alone once (`assess_quality`, the shipped score,
which also gives its tile map); then each (CENTRE_POWER, COMPACTNESS) pair of
processing/group_focus.py judges the frames side by side. For each source, the pair with the
most keepers right on the *other* source is chosen (ties: the smaller power, then the smaller
compactness) and its figure on this source is reported, beside the frame-alone score's from
the same run. A group counts as right when the frame a person keeps has the strictly highest
score.

Besides bench/keeper.py's groups, "off-centre subject": the same shallow depth of field with
the subject an ellipse (radius 0.18 of each side) around each of the four third points, four
groups per photo: a subject where a photographer puts it, which a centre prior alone misses.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence

import cv2
from PIL import Image, ImageDraw, ImageFilter

from bench import keeper
from bench.keeper_centre import source_of
from processing.group_focus import judged_in_group, member
from processing.quality import assess_quality

POWERS = (0.0, 1.0, 2.0, 3.0, 4.0)
COMPACTNESS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
THIRDS = ((1 / 3, 1 / 3), (2 / 3, 1 / 3), (1 / 3, 2 / 3), (2 / 3, 2 / 3))
OFF_CENTRE = "off-centre subject: sharp subject at a third point vs sharp background"
Setting = tuple[float, float]
Cells = dict[str, dict[str, list[int]]]
SOURCES = ("libraries", "wallpapers")


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


def first_wins(scores: list[float | None]) -> bool:
    values = [s or 0.0 for s in scores]
    return values[0] > max(values[1:])


def main() -> None:
    cv2.setNumThreads(1)
    print(f"command: .venv/bin/python -m bench.keeper_group   (pid {os.getpid()})")
    photos = keeper.real_photos()
    groups = keeper.make_groups(photos) + off_centre_groups(photos)
    judged = [
        [
            member(i, scores, scores.focus_tiles)
            for i, scores in enumerate(map(assess_quality, g.frames))
        ]
        for g in groups
    ]
    kinds = sorted({g.kind for g in groups})

    def table(right: list[bool]) -> dict[str, dict[str, list[int]]]:
        cells: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
        for group, ok in zip(groups, right, strict=True):
            cell = cells[source_of(group.photo)][group.kind]
            cell[0] += ok
            cell[1] += 1
        return cells

    alone = table([first_wins([j.quality_score for j, _ in members]) for members in judged])
    settings = [(p, c) for p in POWERS for c in COMPACTNESS]
    side: dict[Setting, dict[str, dict[str, list[int]]]] = {}
    for power, compactness in settings:
        right = [
            first_wins([j.quality_score for j in judged_in_group(members, power, compactness)])
            for members in judged
        ]
        side[(power, compactness)] = table(right)

    def total(cells: Cells, source: str, off: bool | None = None) -> int:
        """Right in `source`: all kinds, or only the off-centre ones (True) or the others."""
        return sum(
            c[0] for k, c in cells[source].items() if off is None or (k == OFF_CENTRE) == off
        )

    def size(source: str, off: bool | None = None) -> int:
        return sum(
            c[1] for k, c in alone[source].items() if off is None or (k == OFF_CENTRE) == off
        )

    def line(cells: Cells, source: str) -> str:
        return ", ".join(
            f"{kind.split(':')[0]} {cells[source][kind][0]}/{cells[source][kind][1]}"
            for kind in kinds
        )

    def split(cells: Cells, sources: Sequence[str]) -> str:
        main_right = sum(total(cells, s, False) for s in sources)
        off_right = sum(total(cells, s, True) for s in sources)
        return (
            f"keeper.py cases {main_right}/{sum(size(s, False) for s in sources)},"
            f" off-centre {off_right}/{sum(size(s, True) for s in sources)}"
        )

    print("\nEach frame alone (the shipped score before side by side):")
    for source in SOURCES:
        print(f"  {source:10s} {split(alone, [source])}: {line(alone, source)}")
    print("\nSide by side in the group, each (centre power, compactness):")
    for setting in settings:
        counts = "; ".join(f"{s} {split(side[setting], [s])}" for s in SOURCES)
        print(f"  power {setting[0]:.0f}, compactness {setting[1]:.1f}: {counts}")

    print("\nHeld out (chosen on the other source, all its cases, reported on this one):")
    held: dict[str, Cells] = {}
    for source in SOURCES:
        other = next(s for s in SOURCES if s != source)
        chosen = max(settings, key=lambda s: (total(side[s], other), -s[0], -s[1]))
        held[source] = side[chosen]
        print(
            f"  {source:10s} chosen on {other}: power {chosen[0]:.0f}, compactness"
            f" {chosen[1]:.1f}; alone {split(alone, [source])} -> side by side"
            f" {split(side[chosen], [source])}: {line(side[chosen], source)}"
        )
    main_held = sum(total(held[s], s, False) for s in SOURCES)
    off_held = sum(total(held[s], s, True) for s in SOURCES)
    print(
        f"  both sources: frame alone {split(alone, SOURCES)} -> side by side, held out:"
        f" keeper.py cases {main_held}/{sum(size(s, False) for s in SOURCES)},"
        f" off-centre {off_held}/{sum(size(s, True) for s in SOURCES)}"
    )
    best = max(settings, key=lambda s: (sum(total(side[s], src) for src in SOURCES), -s[0], -s[1]))
    print(
        f"  chosen on both sources (the shipped value): power {best[0]:.0f}, compactness"
        f" {best[1]:.1f}: {split(side[best], SOURCES)}"
    )
    before = (3.0, 0.0)  # the first side-by-side judge: centre prior alone
    print(f"  centre prior alone (power 3, compactness 0): {split(side[before], SOURCES)}")


if __name__ == "__main__":
    main()
