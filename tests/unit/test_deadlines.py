"""Deadline arithmetic (Civil Code arts. 201–203) and the deadlines of a case."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.desk import load_overrides
from bot.domain.calendar import WorkCalendar
from bot.domain.deadlines import ComputedDeadline, Due, add_months, case_deadlines, due_date
from bot.domain.policy import TimeRule

CAL = WorkCalendar()

# --- domain.md §7 worked examples (2026 schedule) ---------------------------------------------


def test_worked_example_30_working_days() -> None:
    assert due_date(date(2026, 9, 15), 30, "working_days", CAL) == Due(date(2026, 11, 2), False)


def test_worked_example_10_working_days() -> None:
    assert due_date(date(2026, 12, 10), 10, "working_days", CAL) == Due(date(2026, 12, 24), False)


def test_worked_example_60_days() -> None:
    assert due_date(date(2026, 3, 20), 60, "days", CAL) == Due(date(2026, 5, 19), False)


# --- working days across real holidays ------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "count", "expected"),
    [
        (date(2026, 2, 13), 1, date(2026, 2, 14)),  # Sat 02-14 is a make-up workday
        (date(2026, 2, 14), 1, date(2026, 2, 24)),  # Spring Festival 02-15…02-23
        (date(2026, 2, 24), 4, date(2026, 2, 28)),  # Sat 02-28 is a make-up workday
        (date(2026, 2, 24), 5, date(2026, 3, 2)),
        (date(2026, 9, 19), 1, date(2026, 9, 20)),  # Sun 09-20 is a make-up workday
        (date(2026, 9, 30), 1, date(2026, 10, 8)),  # National Day 10-01…10-07
        (date(2026, 9, 30), 3, date(2026, 10, 10)),  # Sat 10-10 is a make-up workday
        (date(2025, 1, 25), 1, date(2025, 1, 26)),  # Sun 01-26 is a make-up workday
        (date(2025, 1, 27), 1, date(2025, 2, 5)),  # Spring Festival 01-28…02-04
        (date(2025, 2, 5), 3, date(2025, 2, 8)),  # Sat 02-08 is a make-up workday
        (date(2025, 9, 27), 1, date(2025, 9, 28)),  # Sun 09-28 is a make-up workday
        (date(2025, 9, 30), 1, date(2025, 10, 9)),  # National Day 10-01…10-08
        (date(2025, 9, 30), 3, date(2025, 10, 11)),  # Sat 10-11 is a make-up workday
    ],
)
def test_working_days_follow_the_official_schedule(start: date, count: int, expected: date) -> None:
    assert due_date(start, count, "working_days", CAL) == Due(expected, False)


def test_working_days_ignore_roll_flag() -> None:
    assert due_date(date(2026, 9, 30), 1, "working_days", CAL, roll_to_workday=False) == Due(
        date(2026, 10, 8), False
    )


# --- months and years: corresponding day, clamped to the month's end ---------------------------


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (date(2024, 2, 29), 12, date(2025, 2, 28)),
        (date(2026, 1, 31), 1, date(2026, 2, 28)),
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2026, 8, 31), 1, date(2026, 9, 30)),
        (date(2026, 11, 15), 3, date(2027, 2, 15)),
        (date(2026, 5, 31), -3, date(2026, 2, 28)),
        (date(2026, 1, 15), -1, date(2025, 12, 15)),
    ],
)
def test_add_months(start: date, months: int, expected: date) -> None:
    assert add_months(start, months) == expected


def test_twelve_months_after_leap_day() -> None:
    assert due_date(date(2024, 2, 29), 12, "months", CAL, roll_to_workday=False) == Due(
        date(2025, 2, 28), False
    )
    # 2025-02-28 is a Friday and a working day: rolling changes nothing.
    assert due_date(date(2024, 2, 29), 12, "months", CAL) == Due(date(2025, 2, 28), False)


def test_one_year_after_leap_day() -> None:
    assert due_date(date(2024, 2, 29), 1, "years", CAL) == Due(date(2025, 2, 28), False)


def test_month_end_clamp_then_roll() -> None:
    # 2026-01-31 + 1 month → 2026-02-28, a Saturday make-up workday: no roll needed.
    assert due_date(date(2026, 1, 31), 1, "months", CAL) == Due(date(2026, 2, 28), False)
    # 2026-04-30 + 1 month → 2026-05-30, a Saturday: rolls to Monday 06-01.
    assert due_date(date(2026, 4, 30), 1, "months", CAL) == Due(date(2026, 6, 1), False)


# --- a period ending on a rest day rolls to the next working day (art. 203) -------------------


def test_month_period_ending_on_national_day_rolls_forward() -> None:
    assert due_date(date(2026, 9, 1), 1, "months", CAL) == Due(date(2026, 10, 8), False)
    assert due_date(date(2026, 9, 1), 1, "months", CAL, roll_to_workday=False) == Due(
        date(2026, 10, 1), False
    )


def test_day_period_ending_in_spring_festival_rolls_forward() -> None:
    assert due_date(date(2026, 2, 1), 15, "days", CAL) == Due(date(2026, 2, 24), False)


# --- direction="before" ----------------------------------------------------------------------


def test_before_rolls_to_the_previous_working_day() -> None:
    # 3 months before 2026-05-20 is Fri 02-20 (Spring Festival): back to Sat 02-14, a make-up day.
    assert due_date(date(2026, 5, 20), 3, "months", CAL, direction="before") == Due(
        date(2026, 2, 14), False
    )
    assert due_date(
        date(2026, 5, 20), 3, "months", CAL, roll_to_workday=False, direction="before"
    ) == Due(date(2026, 2, 20), False)


def test_before_in_working_days_and_days() -> None:
    assert due_date(date(2026, 2, 24), 1, "working_days", CAL, direction="before") == Due(
        date(2026, 2, 14), False
    )
    assert due_date(date(2026, 10, 12), 5, "days", CAL, direction="before") == Due(
        date(2026, 9, 30), False
    )


# --- years without known data -----------------------------------------------------------------


def test_deadline_in_2027_is_provisional() -> None:
    # Dec 2026 has 22 working days after 12-01; 2027-01-01 is a guessed holiday.
    assert due_date(date(2026, 12, 1), 30, "working_days", CAL) == Due(date(2027, 1, 13), True)


def test_calendar_day_deadline_in_2027() -> None:
    assert due_date(date(2026, 12, 20), 12, "days", CAL) == Due(date(2027, 1, 4), True)
    # Without rolling no calendar is consulted, so the date cannot be wrong.
    assert due_date(date(2026, 12, 20), 12, "days", CAL, roll_to_workday=False) == Due(
        date(2027, 1, 1), False
    )


def test_override_makes_2027_known_and_counts_make_up_day(tmp_path: Path) -> None:
    path = tmp_path / "calendar.toml"
    path.write_text('[2027]\nrest = ["2027-01-01"]\n', encoding="utf-8")
    known = WorkCalendar(load_overrides(path))
    assert due_date(date(2026, 12, 1), 30, "working_days", known) == Due(date(2027, 1, 13), False)

    path.write_text('[2027]\nrest = ["2027-01-01"]\nwork = ["2027-01-09"]\n', encoding="utf-8")
    with_make_up = WorkCalendar(load_overrides(path))
    assert due_date(date(2026, 12, 1), 30, "working_days", with_make_up) == Due(
        date(2027, 1, 12), False
    )


# --- argument checks --------------------------------------------------------------------------


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="count"):
        due_date(date(2026, 1, 5), 0, "days", CAL)
    with pytest.raises(ValueError, match="unit"):
        due_date(date(2026, 1, 5), 1, "weeks", CAL)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="direction"):
        due_date(date(2026, 1, 5), 1, "days", CAL, direction="around")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="datetime"):
        due_date(datetime(2026, 1, 5, 12), 1, "days", CAL)


# --- case_deadlines -----------------------------------------------------------------------------


def _rule(id_: str, applies_to: str, count: int, unit: str, from_: str, **extra: str) -> TimeRule:
    data = {"id": id_, "applies_to": applies_to, "count": count, "unit": unit, "from": from_}
    return TimeRule.model_validate({"clause": f"§{id_}", **data, **extra})


RULES = [
    _rule("work_group", "appeal", 10, "working_days", "received"),
    _rule("appeal_decision", "appeal", 60, "days", "received"),
    _rule("complaint_answer", "complaint", 30, "working_days", "received"),
    _rule("appeal_after_decision", "appeal", 3, "months", "decided"),
    _rule("renew", "appeal", 3, "months", "expiry", direction="before"),
    _rule("early_notice", "appeal", 5, "days", "decided", direction="before"),
]


def test_case_deadlines_for_an_appeal() -> None:
    result = case_deadlines(RULES, "appeal", date(2026, 9, 15), date(2026, 9, 30), CAL)
    assert result == [
        ComputedDeadline("work_group", date(2026, 9, 29), "working_days", 10, "§work_group", False),
        ComputedDeadline(
            "appeal_decision", date(2026, 11, 16), "days", 60, "§appeal_decision", False
        ),
        ComputedDeadline(
            "appeal_after_decision",
            date(2026, 12, 30),
            "months",
            3,
            "§appeal_after_decision",
            False,
        ),
        # 5 days before 09-30 is Fri 09-25 (Mid-Autumn): back to Thu 09-24.
        ComputedDeadline("early_notice", date(2026, 9, 24), "days", 5, "§early_notice", False),
    ]


def test_case_deadlines_skip_rules_from_an_unknown_decision() -> None:
    result = case_deadlines(RULES, "appeal", date(2026, 9, 15), None, CAL)
    assert [d.rule for d in result] == ["work_group", "appeal_decision"]


def test_case_deadlines_only_for_the_kind() -> None:
    result = case_deadlines(RULES, "complaint", date(2026, 12, 1), None, CAL)
    assert result == [
        ComputedDeadline(
            "complaint_answer", date(2027, 1, 13), "working_days", 30, "§complaint_answer", True
        )
    ]
    assert case_deadlines(RULES, "dispute", date(2026, 12, 1), None, CAL) == []


def test_case_deadlines_without_rolling() -> None:
    result = case_deadlines(RULES, "appeal", date(2026, 8, 2), None, CAL, roll_to_workday=False)
    # 60 days after 08-02 is Thu 10-01, National Day: kept as is when not rolling.
    assert result[1].due == date(2026, 10, 1)


def test_computed_deadline_dict_and_json() -> None:
    deadline = ComputedDeadline("r", date(2027, 1, 13), "working_days", 30, "§八1.3(4)", True)
    expected = {
        "rule": "r",
        "due": "2027-01-13",
        "unit": "working_days",
        "count": 30,
        "clause": "§八1.3(4)",
        "provisional": True,
    }
    assert deadline.to_dict() == expected
    assert list(deadline.to_dict()) == ["rule", "due", "unit", "count", "clause", "provisional"]
    assert json.loads(deadline.to_json()) == expected
    assert "八" in deadline.to_json()


# --- properties ---------------------------------------------------------------------------------

# 2025–2028 spans known years, the 2026→2027 boundary and provisional years.
starts = st.dates(min_value=date(2025, 1, 1), max_value=date(2028, 12, 31))
counts = st.integers(min_value=1, max_value=60)
units = st.sampled_from(["days", "working_days", "months", "years"])
directions = st.sampled_from(["after", "before"])
FAST = settings(max_examples=60, derandomize=True, deadline=None, database=None)


@FAST
@given(start=starts, count=counts, direction=directions)
def test_working_day_deadline_is_a_working_day(start: date, count: int, direction: str) -> None:
    due = due_date(start, count, "working_days", CAL, direction=direction)  # type: ignore[arg-type]
    assert CAL.is_workday(due.due)
    assert (due.due > start) if direction == "after" else (due.due < start)


@FAST
@given(start=starts, days=st.integers(min_value=1, max_value=30), count=counts, unit=units)
def test_due_is_monotonic_in_start(start: date, days: int, count: int, unit: str) -> None:
    later = date.fromordinal(start.toordinal() + days)
    first = due_date(start, count, unit, CAL)  # type: ignore[arg-type]
    second = due_date(later, count, unit, CAL)  # type: ignore[arg-type]
    assert first.due <= second.due


@FAST
@given(start=starts, count=counts)
def test_one_more_working_day_is_later(start: date, count: int) -> None:
    shorter = due_date(start, count, "working_days", CAL)
    longer = due_date(start, count + 1, "working_days", CAL)
    assert shorter.due < longer.due


@FAST
@given(start=starts, count=st.integers(min_value=1, max_value=400), direction=directions)
def test_rolled_calendar_day_deadline_is_a_working_day(
    start: date, count: int, direction: str
) -> None:
    due = due_date(start, count, "days", CAL, direction=direction)  # type: ignore[arg-type]
    assert CAL.is_workday(due.due)


@FAST
@given(start=starts, count=counts, unit=units)
def test_provisional_exactly_when_an_unknown_year_is_touched(
    start: date, count: int, unit: str
) -> None:
    due = due_date(start, count, unit, CAL)  # type: ignore[arg-type]
    if CAL.provisional_years(start, due.due) == ():
        assert not due.provisional
    if not CAL.is_known(due.due):
        assert due.provisional
