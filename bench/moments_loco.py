"""Choose the moment rules (processing/moments.py) on some cards, report them on the others.

The cards' vectors are the ones the real server stored (bench/real_shoots.py --save-vectors
DIR embeds each card through the HTTP API and saves them with their truth and EXIF); here the
grouping itself (ImageGrouper.fit_labels, what the analysis runs) is swept over a grid of
rules, without the server, because hundreds of settings through HTTP would take hours.

    python -m bench.real_shoots --no-time-off --save-vectors /tmp/cards
    python -m bench.moments_loco /tmp/cards            # defaults, fit on all, leave-one-card-out

For each source held out (a card with its copies: the project's wedding, fives and no-times
cards are one source; a `-noexif` card is skipped, its stripped copy is scored from the card
itself), the rules are chosen on the other sources' cards (highest mean ARI at 2/1, with EXIF
and stripped, among the rules whose pair precision is at least PRECISION_FLOOR on every one of
them, with EXIF at 2/1 and 5/5 and stripped at 2/1; else the highest worst precision) and the
held-out cards are scored with them (ties: the rules that end a burst at the shorter pause).
"fit" rows are scored with the rules chosen on every card; "defaults" rows with MomentRules(),
the server's.
"""

from __future__ import annotations

import argparse
import itertools
import shlex
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import numpy as np

from bench.real_shoots import HEADER, SHOOT_START, Scores, row, score
from processing.grouping import Capture, ImageGrouper, camera_key
from processing.moments import DEFAULT_RULES, MomentRules

PRECISION_FLOOR = 0.95
# (label, parameters, with EXIF) scored for every card and rules.
VARIANTS = [("2/1", (2, 1), True), ("5/5", (5, 5), True), ("stripped 2/1", (2, 1), False)]
PROJECT_CARDS = {"wedding", "fives", "no-times"}
GRID = {
    "link_cosine": [0.55, 0.6, 0.65, 0.7, 0.75],
    "level_drop": [0.08, 0.1, 0.13, 0.16, 0.2],
    "lone_link_cosine": [0.65, 0.75, 0.8, 0.85],
    "cadence_ratio": [3.0, 4.0, 6.0],
    "cadence_floor_seconds": [0.3, 0.5, 1.0, 2.0],
}
# The fields only a capture time reads: a card scored without one gives the same labels for
# every value of them, so it is scored once (the sweep is ~1.7 s per rule set with EXIF).
TIME_FIELDS = ("cadence_ratio", "cadence_floor_seconds")


@dataclass(frozen=True)
class Card:
    name: str
    vectors: np.ndarray
    truth: list[str]
    captures: list[Capture]  # with EXIF
    stripped: list[Capture]  # the same pixels, no EXIF at all


def load_card(path: Path) -> Card:
    data = np.load(path)
    captures = []
    for camera, at in zip(data["cameras"], data["at"], strict=True):
        parts = str(camera).split("|") if camera else [None, None, None]
        key = camera_key(*parts) if camera else None
        shot = None if np.isnan(at) else SHOOT_START + timedelta(seconds=float(at))
        captures.append(Capture(shot, key))
    stripped = [Capture(None, None) for _ in captures]
    return Card(path.stem, data["vectors"], [str(t) for t in data["truth"]], captures, stripped)


def labels_of(card: Card, rules: MomentRules, parameters: tuple[int, int], exif: bool) -> list[str]:
    grouper = ImageGrouper(*parameters, rules=rules)
    captures = card.captures if exif else card.stripped
    return grouper.fit_labels(card.vectors, captures, 10.0).labels


_SCORED: dict[tuple[MomentRules, str, tuple[int, int], bool], Scores] = {}


def scores(card: Card, rules: MomentRules, parameters: tuple[int, int], exif: bool) -> Scores:
    if not exif or all(c.shot_at is None for c in card.captures):
        rules = replace(rules, **{f: getattr(DEFAULT_RULES, f) for f in TIME_FIELDS})
    key = (rules, card.name, parameters, exif)
    if key not in _SCORED:
        labels = labels_of(card, rules, parameters, exif)
        _SCORED[key] = score(card.truth, labels, parameters[0])
    return _SCORED[key]


def grid() -> Iterator[MomentRules]:
    keys = list(GRID)
    for values in itertools.product(*(GRID[k] for k in keys)):
        yield replace(DEFAULT_RULES, **dict(zip(keys, values, strict=True)))


def source(card: Card) -> str:
    return "project" if card.name in PROJECT_CARDS else card.name


def choose(cards: Sequence[Card], table: dict[tuple[MomentRules, str, str], Scores]) -> MomentRules:
    """The rules with the best mean ARI at 2/1 (EXIF and stripped) among those precise enough
    everywhere."""

    def figures(rules: MomentRules) -> tuple[float, float]:
        precisions = [
            table[rules, card.name, label].precision for card in cards for label, _, _ in VARIANTS
        ]
        ari = float(
            np.mean(
                [
                    table[rules, card.name, label].ari
                    for card in cards
                    for label in ("2/1", "stripped 2/1")
                ]
            )
        )
        return min(precisions), ari

    def cuts_sooner(rules: MomentRules) -> tuple[float, float]:
        # Ties go to the rules that end a burst at the shorter pause: on cards where no pause
        # tells them apart, a wrong split costs a click and a wrong merge hides a moment.
        return -rules.cadence_floor_seconds, -rules.cadence_ratio

    candidates = list(grid())
    precise = [r for r in candidates if figures(r)[0] >= PRECISION_FLOOR]
    if precise:
        return max(precise, key=lambda r: (figures(r)[1], *cuts_sooner(r)))
    return max(candidates, key=lambda r: (*figures(r), *cuts_sooner(r)))


def run(folder: Path) -> Iterator[str]:
    paths = sorted(p for p in folder.glob("*.npz") if not p.stem.endswith("-noexif"))
    cards = [load_card(path) for path in paths]
    yield "cards: " + ", ".join(f"{c.name} ({len(c.truth)} images)" for c in cards)
    yield HEADER
    for card in cards:
        for label, parameters, exif in VARIANTS:
            figures = scores(card, DEFAULT_RULES, parameters, exif)
            yield row(f"{card.name} defaults {label}", figures)
    table = {
        (rules, card.name, label): scores(card, rules, parameters, exif)
        for rules in grid()
        for card in cards
        for label, parameters, exif in VARIANTS
    }
    fit = choose(cards, table)
    yield f"\nfit on every card: {fit}"
    yield HEADER
    for card in cards:
        for label, _, _ in VARIANTS:
            yield row(f"{card.name} fit {label}", table[fit, card.name, label])
    sources = sorted({source(card) for card in cards})
    if len(sources) < 2:
        return
    yield "\nleave one source out (rules chosen on the other sources, scored on this one):"
    for held_out in sources:
        chosen = choose([c for c in cards if source(c) != held_out], table)
        yield f"  {held_out}: {chosen}"
        yield HEADER
        for card in (c for c in cards if source(c) == held_out):
            for label, _, _ in VARIANTS:
                yield row(f"{card.name} held out {label}", table[chosen, card.name, label])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the cards saved by real_shoots --save-vectors")
    args = parser.parse_args(argv)
    shown = shlex.join(sys.argv[1:] if argv is None else argv)
    print("command: python -m bench.moments_loco " + shown)
    for line in run(args.folder):
        print(line, flush=True)


if __name__ == "__main__":
    main()
