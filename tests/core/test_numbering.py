"""Image lists as the reader sees them (AI panel, verdict cards, PDF report)."""

from __future__ import annotations

from busviewer.core.numbering import image_list


def test_runs_of_three_or_more_become_ranges_in_the_app_numbering() -> None:
    numbers = {100 + n: n for n in range(1, 13)}  # store ids 101..112 are images #1..#12
    ids = [112, 101, 102, 103, 104, 106, 107, 109, 110, 111]
    assert image_list(ids, numbers) == "#1-#4, #6, #7, #9-#12"


def test_empty_unknown_and_duplicate_ids() -> None:
    assert image_list([], {}) == ""
    assert image_list([], {}, empty="none") == "none"
    assert image_list([7, 7, 5], {5: 2}) == "#2, #7"  # 7 is not numbered: shown by its id


def test_a_long_patient_is_one_short_line() -> None:
    numbers = {i: i for i in range(1, 166)}
    assert image_list(range(1, 166), numbers) == "#1-#165"
