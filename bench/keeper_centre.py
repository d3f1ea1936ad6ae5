"""Subject focus held out: the centre weight chosen on one source of photos, reported on the other.

    .venv/bin/python -m bench.keeper_centre

The keeper groups of bench/keeper.py (shallow depth of field, shake, missed focus at high ISO;
the real blinks are left out: the subject region does not change them) come from two
independent sources of real photographs: the libraries' samples (scikit-image, opencv-doc) and
the MATE/GNOME wallpaper photographs. For each source, the (CENTRE_WEIGHT, SUBJECT_SHARE) pair
with the most keepers right on the *other* source is chosen (ties: the current default first,
then the smaller change), and its figure on this source is reported: a choice never measured
on the photos it was made on (STYLE.md "Measuring quality"). The default's figures and every
pair's are printed beside it, from the same run.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import cv2

from bench import keeper
from processing import quality

CENTRE_WEIGHTS = (0.6, 0.8, 0.9, 1.0)
SUBJECT_SHARES = (0.05, 0.1)
DEFAULT = (0.6, 0.1)  # the values before this benchmark (QUALITY_VERSION 4)
Setting = tuple[float, float]


@contextmanager
def subject_setting(setting: Setting) -> Iterator[None]:
    before = quality.CENTRE_WEIGHT, quality.SUBJECT_SHARE
    quality.CENTRE_WEIGHT, quality.SUBJECT_SHARE = setting
    try:
        yield
    finally:
        quality.CENTRE_WEIGHT, quality.SUBJECT_SHARE = before


def source_of(photo: str) -> str:
    return "wallpapers" if photo in keeper.WALLPAPER_PHOTOS else "libraries"


def main() -> None:
    cv2.setNumThreads(1)
    print(f"command: .venv/bin/python -m bench.keeper_centre   (pid {os.getpid()})")
    groups = keeper.make_groups(keeper.real_photos())
    settings = [(w, s) for w in CENTRE_WEIGHTS for s in SUBJECT_SHARES]
    # right[setting][source][kind] = (right, total)
    right: dict[Setting, dict[str, dict[str, list[int]]]] = {}
    for setting in settings:
        with subject_setting(setting):
            found = keeper.keeper_right(groups, lambda f: quality.assess_quality(f).quality_score)
        table: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
        for group, ok in zip(groups, found, strict=True):
            cell = table[source_of(group.photo)][group.kind]
            cell[0] += ok
            cell[1] += 1
        right[setting] = table
        print(f"  centre weight {setting[0]}, subject share {setting[1]}:", flush=True)
        for source, kinds in sorted(table.items()):
            cells = ", ".join(f"{kind.split(':')[0]} {r}/{t}" for kind, (r, t) in kinds.items())
            print(f"      {source:10s} {cells}")

    def total(setting: Setting, source: str, kind: str | None = None) -> tuple[int, int]:
        cells = [c for k, c in right[setting][source].items() if kind is None or k == kind]
        return sum(c[0] for c in cells), sum(c[1] for c in cells)

    def preference(setting: Setting, source: str) -> tuple[int, bool, float]:
        return (
            total(setting, source)[0],
            setting == DEFAULT,
            -abs(setting[0] - DEFAULT[0]) - abs(setting[1] - DEFAULT[1]),
        )

    print("\nHeld out (chosen on the other source, reported on this one):")
    sums = {"default": [0, 0], "held out": [0, 0]}
    centre = "shallow DOF (centre): sharp subject vs sharp background"
    centre_sums = {"default": [0, 0], "held out": [0, 0]}
    for source in ("libraries", "wallpapers"):
        other = "wallpapers" if source == "libraries" else "libraries"
        chosen = max(settings, key=lambda s: preference(s, other))
        for name, setting in (("default", DEFAULT), ("held out", chosen)):
            r, t = total(setting, source)
            cr, ct = total(setting, source, centre)
            sums[name][0] += r
            sums[name][1] += t
            centre_sums[name][0] += cr
            centre_sums[name][1] += ct
        print(
            f"  {source:10s} chosen on {other}: centre weight {chosen[0]}, share {chosen[1]};"
            f" all {total(DEFAULT, source)[0]}/{total(DEFAULT, source)[1]} ->"
            f" {total(chosen, source)[0]}/{total(chosen, source)[1]},"
            f" centre subject {total(DEFAULT, source, centre)[0]}/"
            f"{total(DEFAULT, source, centre)[1]} -> {total(chosen, source, centre)[0]}/"
            f"{total(chosen, source, centre)[1]}"
        )
    print(
        f"  both sources, held out: all {sums['default'][0]}/{sums['default'][1]} ->"
        f" {sums['held out'][0]}/{sums['held out'][1]}; centre subject"
        f" {centre_sums['default'][0]}/{centre_sums['default'][1]} ->"
        f" {centre_sums['held out'][0]}/{centre_sums['held out'][1]}"
    )
    best = max(settings, key=lambda s: (sum(total(s, src)[0] for src in right[s]), s == DEFAULT))
    print(f"  chosen on both sources (the shipped value): centre weight {best[0]}, share {best[1]}")


if __name__ == "__main__":
    main()
