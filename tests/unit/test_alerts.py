"""Which staff alerts are due when: lead times in working days, working hours, escalations."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest

from bot.clock import SHANGHAI
from bot.domain.alerts import (
    ESCALATION,
    OpenDeadline,
    WorkHours,
    digest,
    due_alerts,
    escalation_day,
    next_window_start,
    pending,
    scan_horizon,
    scan_window,
    warning_day,
)
from bot.domain.calendar import WorkCalendar

CAL = WorkCalendar()
HOURS = WorkHours(time(9), time(17, 30))
LEADS = (3, 0)
# ggbz complaint.investigation: 30 working days after 2026-09-28, across the National Day break.
COMPLAINT = OpenDeadline(1, date(2026, 11, 13), "complaint.investigation", "GGBZ §8.5.3", False,
                         "TS-1", "complaint")  # fmt: skip


def at(y: int, m: int, d: int, hh: int = 10, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=SHANGHAI)


def kinds(now: datetime, deadline: OpenDeadline = COMPLAINT) -> list[str]:
    return [a.kind for a in due_alerts([deadline], now, LEADS, HOURS, CAL)]


def test_warning_three_working_days_before_and_on_the_due_morning() -> None:
    assert warning_day(COMPLAINT.due_on, 3, CAL) == date(2026, 11, 10)
    assert kinds(at(2026, 11, 9)) == []
    assert kinds(at(2026, 11, 10)) == ["warn:3"]
    assert kinds(at(2026, 11, 13, 9, 0)) == ["warn:0"]


def test_warning_skips_the_national_day_break() -> None:
    # Due 2026-10-09: counting back over 10-01…10-07 (holidays) gives 10-08, 09-30, 09-29.
    assert warning_day(date(2026, 10, 9), 3, CAL) == date(2026, 9, 29)


def test_escalation_on_the_next_working_day_and_repeated_each_working_morning() -> None:
    assert escalation_day(COMPLAINT.due_on, CAL) == date(2026, 11, 16)  # Fri due → Mon
    assert kinds(at(2026, 11, 14)) == []  # Saturday: nothing goes out
    assert kinds(at(2026, 11, 16)) == [ESCALATION]
    alerts = due_alerts([COMPLAINT], at(2026, 11, 17), LEADS, HOURS, CAL)
    assert pending(alerts, {(1, ESCALATION)})[0].kind == "overdue:2026-11-17"


def test_breach_found_at_night_waits_for_nine_on_the_next_working_morning() -> None:
    night = at(2026, 11, 15, 23, 30)  # Sunday night
    assert kinds(night) == []
    assert kinds(at(2026, 11, 16, 8, 59)) == []
    assert next_window_start(night, HOURS, CAL) == at(2026, 11, 16, 9, 0)
    assert kinds(at(2026, 11, 16, 9, 0)) == [ESCALATION]
    assert next_window_start(at(2026, 9, 30, 18), HOURS, CAL) == at(2026, 10, 8, 9, 0)


def test_missed_first_escalation_is_sent_instead_of_that_days_repeat() -> None:
    alerts = due_alerts([COMPLAINT], at(2026, 11, 18), LEADS, HOURS, CAL)
    assert [a.kind for a in pending(alerts, set())] == [ESCALATION]


def scan(now: datetime, sent: set[tuple[int, str]]) -> list[str]:
    """One deadline scan as the scheduler runs it: send what is pending, record it and what it
    supersedes."""
    out = pending(due_alerts([COMPLAINT], now, LEADS, HOURS, CAL), sent)
    for alert in out:
        sent |= {(alert.deadline.id, k) for k in (alert.kind, *alert.supersedes)}
    return [a.kind for a in out]


def test_a_late_escalation_is_the_only_message_that_day_however_often_the_scan_runs() -> None:
    sent: set[tuple[int, str]] = set()
    assert scan(at(2026, 11, 18, 10), sent) == [ESCALATION]
    assert scan(at(2026, 11, 18, 10, 5), sent) == []
    assert scan(at(2026, 11, 18, 16), sent) == []
    assert scan(at(2026, 11, 19, 10), sent) == ["overdue:2026-11-19"]
    assert scan(at(2026, 11, 19, 10, 5), sent) == []


def test_late_start_sends_only_the_nearest_warning() -> None:
    (alert,) = due_alerts([COMPLAINT], at(2026, 11, 13, 11), LEADS, HOURS, CAL)
    assert alert.kind == "warn:0" and alert.supersedes == ("warn:3",)
    assert pending([alert], {(1, "warn:0")}) == []


def test_scan_horizon_covers_the_farthest_lead() -> None:
    assert scan_horizon(date(2026, 11, 10), LEADS, CAL) >= COMPLAINT.due_on
    assert scan_horizon(date(2026, 11, 9), LEADS, CAL) < COMPLAINT.due_on


@pytest.mark.parametrize("hours", ["09:00-17:30", "08:30-18:00"])
def test_work_hours_setting_parses(hours: str) -> None:
    parsed = WorkHours.parse(hours)
    assert parsed.start < parsed.end


def test_digest_sorts_due_overdue_and_provisional() -> None:
    late = OpenDeadline(2, date(2026, 11, 2), "appeal.work_group", "c", False, "TS-2", "appeal")
    prov = OpenDeadline(3, date(2027, 3, 1), "appeal.decision", "c", True, "TS-3", "appeal")
    dg = digest([COMPLAINT, late, prov], date(2026, 11, 10), CAL)
    assert [d.id for d in dg.overdue] == [2]
    assert [d.id for d in dg.due_this_week] == [1]
    assert [d.id for d in dg.provisional] == [3]


@pytest.mark.parametrize("leads", [(3, 0), (5, 3, 1), (0,)])
def test_the_scan_window_gives_every_due_date_the_kinds_due_alerts_gives(
    leads: tuple[int, ...],
) -> None:
    # The due-scan asks the database by the window, worked out once a day without reading the
    # due dates first: for every date, a year back to the horizon, the same kinds as the rows'.
    start = date(2026, 9, 21)
    for today in (start + timedelta(days=i) for i in range(40)):  # across the National Day
        if not CAL.is_workday(today):
            continue
        now = datetime.combine(today, time(10), SHANGHAI)
        window = scan_window(today, leads, CAL)
        assert window.until == scan_horizon(today, leads, CAL)
        day = today - timedelta(days=365)
        while day <= window.until + timedelta(days=10):
            d = OpenDeadline(1, day, "r", "c")
            expected = tuple(a.kind for a in due_alerts([d], now, leads, HOURS, CAL))
            assert window.kinds(day) == (expected if day <= window.until else ()), (today, day)
            day += timedelta(days=1)
