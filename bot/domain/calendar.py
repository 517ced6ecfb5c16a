"""Working days in mainland China: statutory holidays and make-up workdays (调休).

Sources, first match wins:
1. a local override file (`parse_overrides`): extra rest days and extra workdays, per year; a year
   table in that file makes the year "known" (the deployer has entered the official schedule);
2. chinese-calendar (official schedules, 2004–2026 in 1.11);
3. for a year nobody knows yet: weekends plus the `holidays` package's China statutory holidays,
   without make-up workdays — a guess, so every answer built on it is marked provisional.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import chinese_calendar
import holidays

_ONE_DAY = timedelta(days=1)
_OVERRIDE_KEYS = ("rest", "work")


@dataclass(frozen=True)
class CalendarOverrides:
    """Local corrections to the official schedule; `years` are the years declared known."""

    rest: frozenset[date] = field(default_factory=frozenset)
    work: frozenset[date] = field(default_factory=frozenset)
    years: frozenset[int] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        both = self.rest & self.work
        if both:
            raise ValueError(f"dates both rest and work: {sorted(d.isoformat() for d in both)}")


def parse_overrides(text: str, where: str | Path) -> CalendarOverrides:
    """Parse an override file's text: `[2027]` tables with `rest` and `work` lists of ISO dates.

    A bad file raises ValueError naming the file (`where`), the key and the reason.
    """
    path = where
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from exc
    rest: set[date] = set()
    work: set[date] = set()
    years: set[int] = set()
    for key, table in data.items():
        year = _parse_year(path, key, table)
        years.add(year)
        rest |= _parse_dates(path, year, "rest", table.get("rest", []))
        work |= _parse_dates(path, year, "work", table.get("work", []))
        both = rest & work
        if both:
            first = min(both).isoformat()
            raise ValueError(f"{path}: [{key}]: {first} is listed both as rest and as work")
    return CalendarOverrides(frozenset(rest), frozenset(work), frozenset(years))


def _parse_year(path: str | Path, key: str, table: object) -> int:
    if not (len(key) == 4 and key.isdigit()):
        raise ValueError(f"{path}: [{key}]: a top-level key must be a four-digit year")
    if not isinstance(table, Mapping):
        raise ValueError(f"{path}: [{key}]: must be a table with `rest` and `work` lists")
    unknown = sorted(set(table) - set(_OVERRIDE_KEYS))
    if unknown:
        raise ValueError(f"{path}: [{key}].{unknown[0]}: unknown key (allowed: rest, work)")
    return int(key)


def _parse_dates(path: str | Path, year: int, key: str, values: object) -> set[date]:
    where = f"{path}: [{year}].{key}"
    if not isinstance(values, list):
        raise ValueError(f"{where}: must be a list of dates")
    parsed: set[date] = set()
    for value in values:
        d = _parse_date(where, value)
        if d.year != year:
            raise ValueError(f"{where}: {d.isoformat()} is not in {year}")
        parsed.add(d)
    return parsed


def _parse_date(where: str, value: object) -> date:
    # TOML has native dates (2027-01-01) as well as strings ("2027-01-01"); accept both,
    # but not a date-time: a calendar day has no time of day.
    if isinstance(value, datetime):
        raise ValueError(f"{where}: {value!r} is a date-time, expected a date")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"{where}: {value!r} is not a date (expected YYYY-MM-DD)")


class WorkCalendar:
    """Answers "is this a working day in mainland China", with memoised per-day lookups."""

    def __init__(self, overrides: CalendarOverrides | None = None) -> None:
        self._overrides = overrides or CalendarOverrides()
        self._days: dict[date, bool] = {}
        self._known: dict[int, bool] = {}

    @property
    def overrides(self) -> CalendarOverrides:
        return self._overrides

    # --- single days -------------------------------------------------------------------------

    def is_workday(self, d: date) -> bool:
        cached = self._days.get(d)
        if cached is None:
            cached = self._days[d] = self._lookup(d)
        return cached

    def is_known(self, d: date) -> bool:
        """Is the official schedule known for `d`'s year (else answers are provisional)."""
        return self.is_known_year(d.year)

    def is_known_year(self, year: int) -> bool:
        cached = self._known.get(year)
        if cached is None:
            cached = self._known[year] = year in self._overrides.years or _chinese_calendar_covers(
                year
            )
        return cached

    def provisional_years(self, first: date, last: date) -> tuple[int, ...]:
        """The years between `first` and `last` (either order, inclusive) without known data."""
        low, high = sorted((first.year, last.year))
        return tuple(y for y in range(low, high + 1) if not self.is_known_year(y))

    def _lookup(self, d: date) -> bool:
        if d in self._overrides.rest:
            return False
        if d in self._overrides.work:
            return True
        if _chinese_calendar_covers(d.year):
            return bool(chinese_calendar.is_workday(d))
        if d.year in self._overrides.years:
            # The deployer declared the year's schedule complete: unlisted days follow the week.
            return d.weekday() < 5
        return d.weekday() < 5 and d not in self._guessed_rest_days(d.year)

    def _guessed_rest_days(self, year: int) -> frozenset[date]:
        return _guessed_statutory_holidays(year)

    # --- walking ---------------------------------------------------------------------------

    def add_working_days(self, start: date, n: int) -> tuple[date, bool]:
        """The n-th working day after `start` (before it when n < 0); `start` itself not counted.

        Returns (day, provisional): provisional when any day walked over lies in an unknown year.
        """
        step = _ONE_DAY if n >= 0 else -_ONE_DAY
        remaining = abs(n)
        d, provisional = start, False
        while remaining:
            d += step
            provisional |= not self.is_known(d)
            if self.is_workday(d):
                remaining -= 1
        return d, provisional

    def next_workday_on_or_after(self, d: date) -> tuple[date, bool]:
        return self._first_workday(_walk(d, _ONE_DAY))

    def previous_workday_on_or_before(self, d: date) -> tuple[date, bool]:
        return self._first_workday(_walk(d, -_ONE_DAY))

    def _first_workday(self, days: Iterator[date]) -> tuple[date, bool]:
        provisional = False
        for d in days:
            provisional |= not self.is_known(d)
            if self.is_workday(d):
                return d, provisional
        raise AssertionError("unreachable: _walk is endless")  # pragma: no cover


def _walk(d: date, step: timedelta) -> Iterator[date]:
    while True:
        yield d
        d += step


_covered: dict[int, bool] = {}


def _chinese_calendar_covers(year: int) -> bool:
    # Probe rather than hard-code 2004–2026, so upgrading chinese-calendar extends coverage.
    # Module-level cache: the answer depends only on the installed package.
    cached = _covered.get(year)
    if cached is None:
        try:
            chinese_calendar.is_workday(date(year, 6, 1))
            cached = True
        except NotImplementedError:
            cached = False
        _covered[year] = cached
    return cached


@functools.cache
def _guessed_statutory_holidays(year: int) -> frozenset[date]:
    """The `holidays` package's China public holidays of `year` (half-day ones are not rest for
    everyone). Once per process: the first year costs the package's import and its lunar
    arithmetic (~0.15 s), and it is the same for every calendar."""
    return frozenset(holidays.country_holidays("CN", years=year).keys())
