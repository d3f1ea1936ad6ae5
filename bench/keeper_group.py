"""Subject focus judged within the group, held out: settings chosen on one source, reported on
the other.

    .venv/bin/python -m bench.keeper_group

The keeper groups of bench/keeper_centre.py (shallow depth of field, shake, missed focus at
high ISO, from two independent sources of real photographs: the libraries' samples and the
MATE/GNOME wallpapers). Each frame is judged alone once (`assess_quality`, the shipped score,
which also gives its tile map); then each (CENTRE_POWER, DETAIL_FLOOR) pair of
processing/group_focus.py judges the frames side by side. For each source, the pair with the
most keepers right on the *other* source is chosen (ties: the smaller power, then the smaller
floor) and its figure on this source is reported, beside the frame-alone score's from the same
run. A group counts as right when the frame a person keeps has the strictly highest score.
"""

from __future__ import annotations

import os
from collections import defaultdict

import cv2

from bench import keeper
from bench.keeper_centre import source_of
from processing.group_focus import judged_in_group, member
from processing.quality import assess_quality

POWERS = (1.0, 2.0, 3.0, 4.0, 6.0)
FLOORS = (0.0, 10.0, 25.0, 50.0, 100.0)
Setting = tuple[float, float]
SOURCES = ("libraries", "wallpapers")


def first_wins(scores: list[float | None]) -> bool:
    values = [s or 0.0 for s in scores]
    return values[0] > max(values[1:])


def main() -> None:
    cv2.setNumThreads(1)
    print(f"command: .venv/bin/python -m bench.keeper_group   (pid {os.getpid()})")
    groups = keeper.make_groups(keeper.real_photos())
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
    settings = [(p, f) for p in POWERS for f in FLOORS]
    side: dict[Setting, dict[str, dict[str, list[int]]]] = {}
    for power, floor in settings:
        right = [
            first_wins([j.quality_score for j in judged_in_group(members, power, floor)])
            for members in judged
        ]
        side[(power, floor)] = table(right)

    def total(cells: dict[str, dict[str, list[int]]], source: str) -> int:
        return sum(c[0] for c in cells[source].values())

    def line(cells: dict[str, dict[str, list[int]]], source: str) -> str:
        return ", ".join(
            f"{kind.split(':')[0]} {cells[source][kind][0]}/{cells[source][kind][1]}"
            for kind in kinds
        )

    size = {s: sum(c[1] for c in alone[s].values()) for s in SOURCES}
    print("\nEach frame alone (the shipped score before this change):")
    for source in SOURCES:
        print(f"  {source:10s} {total(alone, source)}/{size[source]}: {line(alone, source)}")
    print("\nSide by side in the group, each (centre power, detail floor):")
    for setting in settings:
        cells = side[setting]
        counts = ", ".join(f"{s} {total(cells, s)}/{size[s]}" for s in SOURCES)
        print(f"  power {setting[0]:3.0f}, floor {setting[1]:5.1f}: {counts}")

    print("\nHeld out (chosen on the other source, reported on this one):")
    held = 0
    for source in SOURCES:
        other = next(s for s in SOURCES if s != source)
        chosen = max(settings, key=lambda s: (total(side[s], other), -s[0], -s[1]))
        held += total(side[chosen], source)
        print(
            f"  {source:10s} chosen on {other}: power {chosen[0]:.0f}, floor {chosen[1]:.0f};"
            f" alone {total(alone, source)}/{size[source]} -> side by side"
            f" {total(side[chosen], source)}/{size[source]}: {line(side[chosen], source)}"
        )
    everything = sum(size.values())
    print(
        f"  both sources: frame alone {sum(total(alone, s) for s in SOURCES)}/{everything}"
        f" -> side by side, held out {held}/{everything}"
    )
    best = max(settings, key=lambda s: (sum(total(side[s], src) for src in SOURCES), -s[0], -s[1]))
    print(f"  chosen on both sources (the shipped value): power {best[0]:.0f}, floor {best[1]:.0f}")


if __name__ == "__main__":
    main()
