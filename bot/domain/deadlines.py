"""Deadline arithmetic after the Civil Code of the PRC, arts. 201–203 (see domain.md §7).

- The start day is not counted (art. 201).
- Months/years end on the corresponding day of the final month, or its last day (art. 202).
- A period whose last day is a rest day ends on the next working day (art. 203).
- "N working days" is the N-th working day after the start day.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from bot.domain.calendar import WorkCalendar
from bot.domain.policy import TimeRule

# Same literals as bot.domain.policy.Unit, restated so this module does not depend on that alias.
Unit = Literal["days", "working_days", "months", "years"]
Direction = Literal["after", "before"]
_UNITS: frozenset[str] = frozenset({"days", "working_days", "months", "years"})


@dataclass(frozen=True)
class Due:
    due: date
    provisional: bool  # some day consulted lies in a year whose official schedule is unknown


@dataclass(frozen=True)
class ComputedDeadline:
    rule: str  # TimeRule.id
    due: date
    unit: Unit
    count: int
    clause: str
    provisional: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "due": self.due.isoformat(),
            "unit": self.unit,
            "count": self.count,
            "clause": self.clause,
            "provisional": self.provisional,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)


def due_date(
    start: date,
    count: int,
    unit: Unit,
    cal: WorkCalendar,
    roll_to_workday: bool = True,
    direction: Direction = "after",
) -> Due:
    """The last day of a period of `count` `unit` after (or before) `start`.

    direction="before" (e.g. "apply ≥ 3 months before expiry") counts backwards, and a rest day
    then rolls to the *previous* working day: rolling forward would land inside the required
    lead time, so acting on the rolled date would already be too late.
    """
    _check(start, count, unit, direction)
    sign = 1 if direction == "after" else -1
    if unit == "working_days":
        # Lands on a working day by construction: nothing to roll.
        end, provisional = cal.add_working_days(start, sign * count)
        return Due(end, provisional)
    end = _calendar_end(start, sign * count, unit)
    if not roll_to_workday:
        return Due(end, False)  # no calendar consulted: the date cannot be wrong
    if direction == "after":
        rolled, provisional = cal.next_workday_on_or_after(end)
    else:
        rolled, provisional = cal.previous_workday_on_or_before(end)
    return Due(rolled, provisional)


def case_deadlines(
    rules: Iterable[TimeRule],
    kind: str,
    received: date,
    decided: date | None,
    cal: WorkCalendar,
    roll_to_workday: bool = True,
    *,
    notified: date | None = None,
    outcome_sent: date | None = None,
    about: str | None = None,
    serious: bool = False,
) -> list[ComputedDeadline]:
    """Deadlines of a case of `kind`, in rule order, for every rule whose start date is known.

    `decided`: the day the decision appealed was made; `notified`: the day the appellant
    received its notice; `outcome_sent`: the day our outcome went out (the complainant's next
    windows). `about` (body|staff|organisation) picks the complaint rules that depend on it;
    unknown, every such rule is kept, so staff see the earliest. `serious` adds the rules a
    serious complaint starts (SGC §八2.4(1)).
    """
    # The case events whose dates are known here; other `from` values (expiry …) are skipped.
    starts: dict[str, date | None] = {
        "received": received,
        "decided": decided,
        "notified": notified,
        "outcome_sent": outcome_sent,
    }
    targets = {kind, "serious_complaint"} if serious and kind == "complaint" else {kind}
    computed: list[ComputedDeadline] = []
    for rule in rules:
        start = starts.get(rule.from_)
        if rule.applies_to not in targets or start is None:
            continue
        if about is not None and rule.about is not None and about not in rule.about:
            continue
        due = due_date(start, rule.count, rule.unit, cal, roll_to_workday, rule.direction)
        computed.append(
            ComputedDeadline(rule.id, due.due, rule.unit, rule.count, rule.clause, due.provisional)
        )
    return computed


def add_months(d: date, months: int) -> date:
    """`d` moved by `months` (may be negative), clamped to the target month's last day."""
    index = d.year * 12 + (d.month - 1) + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(d.day, _month_length(year, month + 1)))


def _month_length(year: int, month: int) -> int:
    following = date(year + month // 12, month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


def _calendar_end(start: date, signed_count: int, unit: Unit) -> date:
    if unit == "days":
        return start + timedelta(days=signed_count)
    months = signed_count * 12 if unit == "years" else signed_count
    return add_months(start, months)


def _check(start: date, count: int, unit: str, direction: str) -> None:
    # A datetime is a date subclass; its .date() may be the UTC day, not the Shanghai one,
    # so make the caller convert explicitly.
    if isinstance(start, datetime):
        raise TypeError("start must be a date (the Asia/Shanghai calendar day), not a datetime")
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if unit not in _UNITS:
        raise ValueError(f"unknown unit {unit!r}")
    if direction not in ("after", "before"):
        raise ValueError(f"unknown direction {direction!r}")
