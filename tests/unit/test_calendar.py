"""WorkCalendar: official 2025/2026 schedules, the 2027 fallback, and the override file."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from bot.desk import load_overrides
from bot.domain.calendar import CalendarOverrides, WorkCalendar

CAL = WorkCalendar()


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "calendar.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --- official schedules (chinese-calendar) ---------------------------------------------------


def test_spring_festival_2026() -> None:
    assert not any(CAL.is_workday(d) for d in _days(date(2026, 2, 15), date(2026, 2, 23)))
    assert CAL.is_workday(date(2026, 2, 14))  # Saturday, make-up workday
    assert CAL.is_workday(date(2026, 2, 28))  # Saturday, make-up workday
    assert CAL.is_workday(date(2026, 2, 24))


def test_national_day_2026() -> None:
    assert not any(CAL.is_workday(d) for d in _days(date(2026, 10, 1), date(2026, 10, 7)))
    assert CAL.is_workday(date(2026, 9, 20))  # Sunday, make-up workday
    assert CAL.is_workday(date(2026, 10, 10))  # Saturday, make-up workday
    assert not CAL.is_workday(date(2026, 9, 25))  # Mid-Autumn Festival, a Friday


def test_spring_festival_2025() -> None:
    # chinese-calendar 1.11: rest 01-28…02-04, make-up Sun 01-26 and Sat 02-08.
    assert not any(CAL.is_workday(d) for d in _days(date(2025, 1, 28), date(2025, 2, 4)))
    assert CAL.is_workday(date(2025, 1, 26))
    assert CAL.is_workday(date(2025, 2, 8))
    assert CAL.is_workday(date(2025, 1, 27))
    assert CAL.is_workday(date(2025, 2, 5))


def test_national_day_2025() -> None:
    # chinese-calendar 1.11: rest 10-01…10-08, make-up Sun 09-28 and Sat 10-11.
    assert not any(CAL.is_workday(d) for d in _days(date(2025, 10, 1), date(2025, 10, 8)))
    assert CAL.is_workday(date(2025, 9, 28))
    assert CAL.is_workday(date(2025, 10, 11))
    assert CAL.is_workday(date(2025, 10, 9))


def test_ordinary_week() -> None:
    assert CAL.is_workday(date(2026, 3, 18))  # Wednesday
    assert not CAL.is_workday(date(2026, 3, 21))  # Saturday
    assert not CAL.is_workday(date(2026, 3, 22))  # Sunday


def test_known_years() -> None:
    assert CAL.is_known(date(2025, 6, 1))
    assert CAL.is_known(date(2026, 12, 31))
    assert not CAL.is_known(date(2027, 1, 1))
    assert CAL.provisional_years(date(2025, 12, 1), date(2028, 1, 5)) == (2027, 2028)
    assert CAL.provisional_years(date(2028, 1, 5), date(2026, 1, 1)) == (2027, 2028)
    assert CAL.provisional_years(date(2026, 1, 1), date(2026, 12, 31)) == ()


# --- unknown years: statutory holidays from `holidays`, no make-up days -----------------------


def test_2027_falls_back_without_crashing() -> None:
    assert not CAL.is_workday(date(2027, 1, 1))  # New Year's Day, a Friday
    assert CAL.is_workday(date(2027, 1, 4))  # Monday
    assert not CAL.is_workday(date(2027, 1, 9))  # Saturday: make-up days are unknown
    assert not CAL.is_workday(date(2027, 10, 1))


def test_year_before_chinese_calendar_data() -> None:
    assert not CAL.is_known(date(2003, 5, 1))
    assert not CAL.is_workday(date(2003, 10, 1))  # National Day, a Wednesday
    assert CAL.is_workday(date(2003, 10, 8))


def test_walks_report_provisional() -> None:
    assert CAL.add_working_days(date(2026, 12, 1), 5) == (date(2026, 12, 8), False)
    assert CAL.add_working_days(date(2026, 12, 30), 1) == (date(2026, 12, 31), False)
    assert CAL.add_working_days(date(2026, 12, 31), 1) == (date(2027, 1, 4), True)
    assert CAL.next_workday_on_or_after(date(2027, 1, 1)) == (date(2027, 1, 4), True)
    assert CAL.next_workday_on_or_after(date(2026, 12, 31)) == (date(2026, 12, 31), False)


def test_walks_backwards() -> None:
    assert CAL.add_working_days(date(2026, 2, 24), -1) == (date(2026, 2, 14), False)
    assert CAL.add_working_days(date(2027, 1, 4), -1) == (date(2026, 12, 31), True)
    assert CAL.previous_workday_on_or_before(date(2026, 2, 20)) == (date(2026, 2, 14), False)
    assert CAL.previous_workday_on_or_before(date(2026, 2, 14)) == (date(2026, 2, 14), False)


def test_zero_working_days_is_the_start() -> None:
    assert CAL.add_working_days(date(2026, 2, 15), 0) == (date(2026, 2, 15), False)


# --- overrides ---------------------------------------------------------------------------------


def test_override_file_makes_2027_known(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[2027]\nrest = ["2027-01-01", 2027-02-05]\nwork = ["2027-02-20"]\n',
    )
    overrides = load_overrides(path)
    assert overrides.years == frozenset({2027})
    cal = WorkCalendar(overrides)
    assert cal.is_known(date(2027, 7, 1))
    assert not cal.is_workday(date(2027, 1, 1))
    assert not cal.is_workday(date(2027, 2, 5))  # a TOML native date works too
    assert cal.is_workday(date(2027, 2, 20))  # Saturday, make-up workday
    # A known year's unlisted days follow the week: no guessed holidays any more.
    assert cal.is_workday(date(2027, 10, 1))
    assert cal.add_working_days(date(2026, 12, 31), 1) == (date(2027, 1, 4), False)


def test_override_corrects_a_known_year(tmp_path: Path) -> None:
    path = _write(tmp_path, '[2026]\nrest = ["2026-03-18"]\nwork = ["2026-03-21"]\n')
    cal = WorkCalendar(load_overrides(path))
    assert not cal.is_workday(date(2026, 3, 18))
    assert cal.is_workday(date(2026, 3, 21))
    assert not cal.is_workday(date(2026, 2, 16))  # the rest still comes from chinese-calendar


def test_empty_year_table_counts_as_known(tmp_path: Path) -> None:
    cal = WorkCalendar(load_overrides(_write(tmp_path, "[2027]\n")))
    assert cal.is_known(date(2027, 1, 1))
    assert cal.is_workday(date(2027, 1, 1))  # a Friday, and nothing listed
    assert not cal.is_known(date(2028, 1, 1))


def test_calendar_without_overrides_has_empty_overrides() -> None:
    assert WorkCalendar().overrides == CalendarOverrides()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[2027\n", "not valid TOML"),
        ("[twenty]\nrest = []\n", "[twenty]: a top-level key must be a four-digit year"),
        ("2027 = 5\n", "[2027]: must be a table"),
        ('[2027]\nholidays = ["2027-01-01"]\n', "[2027].holidays: unknown key"),
        ('[2027]\nrest = "2027-01-01"\n', "[2027].rest: must be a list"),
        ('[2027]\nrest = ["2027-13-01"]\n', "[2027].rest: '2027-13-01' is not a date"),
        ('[2027]\nwork = ["2026-12-31"]\n', "[2027].work: 2026-12-31 is not in 2027"),
        ("[2027]\nrest = [2027-01-01T08:00:00]\n", "[2027].rest: datetime.datetime"),
        ("[2027]\nrest = [20270101]\n", "[2027].rest: 20270101 is not a date"),
        (
            '[2027]\nrest = ["2027-01-09"]\nwork = ["2027-01-09"]\n',
            "[2027]: 2027-01-09 is listed both as rest and as work",
        ),
    ],
)
def test_bad_override_file_is_refused(tmp_path: Path, text: str, fragment: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ValueError) as excinfo:
        load_overrides(path)
    message = str(excinfo.value)
    assert message.startswith(f"{path}: ")
    assert fragment in message


def test_non_utf8_override_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "calendar.toml"
    path.write_bytes(b'[2027]\nrest = ["\xff"]\n')
    with pytest.raises(ValueError, match="not UTF-8"):
        load_overrides(path)


def test_overrides_refuse_a_day_both_rest_and_work() -> None:
    day = date(2027, 1, 9)
    with pytest.raises(ValueError, match="both rest and work"):
        CalendarOverrides(rest=frozenset({day}), work=frozenset({day}))
