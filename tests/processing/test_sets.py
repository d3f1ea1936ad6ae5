"""Exposure brackets told from EXIF (processing/sets.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from processing.grouping import UNGROUPED
from processing.sets import BRACKET, BURST, Frame, find_brackets, group_kinds, with_brackets

START = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def frames(
    biases: list[float | None],
    *,
    first_id: int = 1,
    seconds: float = 0.3,
    camera: str = "canon|eos r6|123",
    mode: int | None = 1,
    start: datetime = START,
) -> list[Frame]:
    return [
        Frame(first_id + k, start + timedelta(seconds=k * seconds), camera, bias, mode)
        for k, bias in enumerate(biases)
    ]


def test_five_frames_stepping_by_one_ev_are_a_bracket() -> None:
    assert find_brackets(frames([-2, -1, 0, 1, 2])) == [[1, 2, 3, 4, 5]]


def test_a_bracket_in_the_cameras_order_and_thirds_of_a_stop() -> None:
    assert find_brackets(frames([0, -1, 1])) == [[1, 2, 3]]
    assert find_brackets(frames([0, -0.67, 0.67, -1.33, 1.33])) == [[1, 2, 3, 4, 5]]


def test_back_to_back_brackets_are_told_apart_where_a_compensation_repeats() -> None:
    assert find_brackets(frames([0, -1, 1, 0, -1, 1])) == [[1, 2, 3], [4, 5, 6]]


def test_a_burst_before_a_bracket_stays_out_of_it() -> None:
    assert find_brackets(frames([0, 0, 0, -1, 1])) == [[3, 4, 5]]


def test_a_burst_at_one_compensation_is_no_bracket() -> None:
    assert find_brackets(frames([0, 0, 0, 0])) == []
    assert find_brackets(frames([0.3, 0.3, 0.3])) == []
    # The photographer nudged the compensation once in a burst: two values, no bracket.
    assert find_brackets(frames([0, 0, 0.3, 0.3])) == []


def test_uneven_steps_or_too_few_frames_are_no_bracket() -> None:
    assert find_brackets(frames([0, 1])) == []
    assert find_brackets(frames([0, 0.3, 2])) == []
    assert find_brackets(frames([0, -0.1, 0.1])) == []  # below a third of a stop


def test_the_cameras_auto_bracket_mode_is_believed_for_two_frames() -> None:
    assert find_brackets(frames([-1, 1], mode=2)) == [[1, 2]]


def test_frames_too_far_apart_or_of_two_bodies_are_no_bracket() -> None:
    assert find_brackets(frames([-2, -1, 0, 1, 2], seconds=30)) == []
    mixed = frames([-1, 1], camera="a") + frames([0], first_id=3, camera="b", seconds=0.1)
    assert find_brackets(mixed) == []
    untimed = [Frame(k, None, "a", bias, 1) for k, bias in enumerate([-1, 0, 1])]
    assert find_brackets(untimed) == []
    unknown = frames([-1, None, 1])
    assert find_brackets(unknown) == []


def test_a_bracket_split_by_its_looks_becomes_one_group_kept_whole() -> None:
    bracket = frames([-2, -1, 0, 1, 2])
    burst = frames([0, 0, 0], first_id=10, start=START + timedelta(minutes=5))
    # Grouping by looks split the bracket (its frames differ in brightness) and joined two of
    # its frames to nothing; a burst beside it is left alone.
    labels = {1: "Group 1", 2: "Group 1", 3: "Group 2", 4: "Group 2", 5: UNGROUPED}
    labels.update({10: "Group 3", 11: "Group 3", 12: "Group 3"})

    result, kinds = with_brackets(labels, [*bracket, *burst])

    assert {result[i] for i in range(1, 6)} == {"Group 4"}
    assert kinds == {"Group 4": BRACKET, "Group 3": BURST}
    assert [result[i] for i in (10, 11, 12)] == ["Group 3"] * 3


def test_a_bracket_already_grouped_keeps_its_label() -> None:
    labels = {1: "Group 1", 2: "Group 1", 3: "Group 1", 4: "Group 2", 5: "Group 2"}
    group = frames([0, -1, 1]) + frames([0, 0], first_id=4, start=START + timedelta(minutes=1))
    result, kinds = with_brackets(labels, group)
    assert result == labels
    assert kinds == {"Group 1": BRACKET, "Group 2": BURST}


def test_a_group_left_with_one_frame_becomes_ungrouped() -> None:
    labels = {1: "Group 1", 2: "Group 1", 3: "Group 1", 4: "Group 1"}
    group = frames([0, 0, -1, 1])
    result, kinds = with_brackets(labels, group)
    assert result[1] == UNGROUPED
    assert {result[i] for i in (2, 3, 4)} == {"Group 2"}
    assert kinds == {"Group 2": BRACKET}


def test_group_kinds_of_groups_set_by_hand() -> None:
    labels = {1: "HDR", 2: "HDR", 3: "HDR", 4: "Mixed", 5: "Mixed"}
    group = frames([-1, 0, 1]) + frames([0, 0], first_id=4, start=START + timedelta(minutes=1))
    assert group_kinds(labels, group) == {"HDR": BRACKET, "Mixed": BURST}
