"""Which staff alerts about case deadlines are due at an instant (pure: no I/O, no clock).

A deadline gets, each at most once:
- a warning `warn:N` on the N-th working day before it is due, for every N of the configured lead
  times (0 = the morning of the due day);
- an `escalation` on the first working day after it was missed;
- an `overdue:YYYY-MM-DD` reminder every later working morning while it stays open.

Alerts go out only within working hours on working days: a breach found at night waits for
09:00 on the next working morning. The kind names are the keys of `alert_sent`, so the database
(not this module) decides what was already sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from bot.domain.calendar import WorkCalendar
from bot.domain.zone import SHANGHAI

ESCALATION = "escalation"
WARN_PREFIX = "warn:"
OVERDUE_PREFIX = "overdue:"


@dataclass(frozen=True)
class WorkHours:
    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> WorkHours:
        """`"09:00-17:30"` (the WORK_HOURS setting)."""
        start, end = text.split("-")
        return cls(time.fromisoformat(start), time.fromisoformat(end))


@dataclass(frozen=True)
class OpenDeadline:
    """What the scan needs of an open deadline row and its case."""

    id: int
    due_on: date
    rule_id: str
    clause: str
    provisional: bool = False
    case_ref: str = ""
    case_kind: str = ""
    assignee: str | None = None


@dataclass(frozen=True)
class DueAlert:
    deadline: OpenDeadline
    kind: str  # warn:N | escalation | overdue:YYYY-MM-DD — the alert_sent key
    # Older warnings this one makes pointless (the bot was down on their day): recorded, not sent.
    supersedes: tuple[str, ...] = ()

    @property
    def is_escalation(self) -> bool:
        return self.kind == ESCALATION or self.kind.startswith(OVERDUE_PREFIX)

    @property
    def lead(self) -> int | None:
        return (
            int(self.kind.removeprefix(WARN_PREFIX)) if self.kind.startswith(WARN_PREFIX) else None
        )


@dataclass
class Digest:
    """The daily staff digest: due this week, overdue, and provisional dates."""

    day: date
    due_this_week: list[OpenDeadline] = field(default_factory=list)
    overdue: list[OpenDeadline] = field(default_factory=list)
    provisional: list[OpenDeadline] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.due_this_week or self.overdue or self.provisional)


def local(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("an aware instant is needed")
    return now.astimezone(SHANGHAI)


def in_working_hours(now: datetime, hours: WorkHours, cal: WorkCalendar) -> bool:
    """Is `now` within working hours of a working day (Asia/Shanghai)?"""
    here = local(now)
    return cal.is_workday(here.date()) and hours.start <= here.time() < hours.end


def next_window_start(now: datetime, hours: WorkHours, cal: WorkCalendar) -> datetime:
    """`now` if alerts may go out now, else the start of the next working morning."""
    if in_working_hours(now, hours, cal):
        return now
    here = local(now)
    day = here.date()
    if (
        here.time() >= hours.start
    ):  # after hours (or a rest day past 09:00): tomorrow at the earliest
        day += timedelta(days=1)
    day, _ = cal.next_workday_on_or_after(day)
    return datetime.combine(day, hours.start, SHANGHAI)


def warning_day(due_on: date, lead: int, cal: WorkCalendar) -> date:
    """The N-th working day before `due_on`; for 0 the due day (or the working day before it)."""
    if lead == 0:
        return cal.previous_workday_on_or_before(due_on)[0]
    return cal.add_working_days(due_on, -lead)[0]


def escalation_day(due_on: date, cal: WorkCalendar) -> date:
    """The first working day after the last day of the period: the breach is told then."""
    return cal.next_workday_on_or_after(due_on + timedelta(days=1))[0]


def scan_horizon(today: date, leads: Sequence[int], cal: WorkCalendar) -> date:
    """The latest due date that can have a warning due today: the scan reads up to it only."""
    most = max(leads, default=0)
    last = cal.add_working_days(today, most)[0] if most else today
    # Rest days right after it still warn on it (a period may end on a rest day when not rolled).
    return escalation_day(last, cal) - timedelta(days=1)


def due_alerts(
    deadlines: Iterable[OpenDeadline],
    now: datetime,
    leads: Sequence[int],
    hours: WorkHours,
    cal: WorkCalendar,
) -> list[DueAlert]:
    """Every alert that should go out at `now`, already-sent ones included (the caller filters).

    Outside working hours nothing is due: what is found then goes out at the next window.
    """
    if not in_working_hours(now, hours, cal):
        return []
    today = local(now).date()
    lead_set = sorted(set(leads), reverse=True)
    # The alerts of a deadline depend on its due date only, and a scan's window holds a few
    # dozen dates for thousands of deadlines: worked out once per date.
    by_date: dict[date, tuple[tuple[str, tuple[str, ...]], ...]] = {}
    out: list[DueAlert] = []
    for d in deadlines:
        kinds = by_date.get(d.due_on)
        if kinds is None:
            kinds = by_date[d.due_on] = _kinds_due(d.due_on, today, lead_set, cal)
        out.extend(DueAlert(d, kind, supersedes) for kind, supersedes in kinds)
    return out


@dataclass(frozen=True)
class ScanWindow:
    """What a day's due-scan asks the database: the alert kinds due today, by due date.

    Every deadline due before `before` is past its escalation day and has the same kinds
    (`overdue`: today's repeat and the escalation); the few dates from `before` to `until` have
    their own (`dated`, dates without any left out). Worked out once a day, so the database needs
    no query for the dates first.
    """

    until: date
    before: date
    overdue: tuple[str, ...]
    dated: Mapping[date, tuple[str, ...]]

    def kinds(self, due_on: date) -> tuple[str, ...]:
        return self.overdue if due_on < self.before else self.dated.get(due_on, ())

    @property
    def overdue_mark(self) -> str:
        """The one kind of `overdue` whose record means all are recorded: today's repeat is
        recorded only with the escalation or after it (`pending`, `DueAlert.supersedes`), so the
        scan probes one row per overdue deadline, not two."""
        return self.overdue[0]


def scan_window(today: date, leads: Sequence[int], cal: WorkCalendar) -> ScanWindow:
    """The kinds `due_alerts` gives on `today` (in working hours) for each due date."""
    lead_set = sorted(set(leads), reverse=True)
    until = scan_horizon(today, leads, cal)
    # escalation_day is monotonic: walk back to the first date escalating today or later.
    before = today - timedelta(days=1)
    while escalation_day(before - timedelta(days=1), cal) >= today:
        before -= timedelta(days=1)
    overdue = _kinds_due(before - timedelta(days=1), today, lead_set, cal)
    assert overdue[0][0].startswith(OVERDUE_PREFIX) and overdue[1][1] == (overdue[0][0],)
    dated = {}
    day = before
    while day <= until:
        if kinds := _kinds_due(day, today, lead_set, cal):
            dated[day] = tuple(kind for kind, _ in kinds)
        day += timedelta(days=1)
    return ScanWindow(until, before, tuple(kind for kind, _ in overdue), dated)


def _kinds_due(
    due_on: date, today: date, leads: Sequence[int], cal: WorkCalendar
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(kind, superseded kinds) of the alerts due `today` for a deadline due on `due_on`;
    `leads` distinct, largest first."""
    if today > due_on:
        escalates_on = escalation_day(due_on, cal)
        if today < escalates_on:
            return ()
        if today == escalates_on:
            return ((ESCALATION, ()),)
        # A restart after the first escalation day still escalates once before repeating;
        # recorded with today's repeat, so a later scan today does not send that too.
        repeat = f"{OVERDUE_PREFIX}{today.isoformat()}"
        return ((repeat, ()), (ESCALATION, (repeat,)))
    # Warnings whose day has come, the nearest last; older ones are only superseded.
    reached = [lead for lead in leads if warning_day(due_on, lead, cal) <= today]
    if not reached:
        return ()
    older = tuple(f"{WARN_PREFIX}{lead}" for lead in reached[:-1])
    return ((f"{WARN_PREFIX}{reached[-1]}", older),)


def pending(alerts: Iterable[DueAlert], sent: set[tuple[int, str]]) -> list[DueAlert]:
    """Alerts not yet recorded as sent; a late first escalation replaces that day's repeat."""
    result: list[DueAlert] = []
    escalating: set[int] = set()
    for alert in alerts:
        if (alert.deadline.id, alert.kind) in sent:
            continue
        if alert.kind == ESCALATION:
            escalating.add(alert.deadline.id)
        result.append(alert)
    # One message a day per deadline: the escalation, not also that day's overdue repeat.
    return [
        a for a in result if not (a.kind.startswith(OVERDUE_PREFIX) and a.deadline.id in escalating)
    ]


def digest(
    deadlines: Iterable[OpenDeadline], today: date, cal: WorkCalendar, days: int = 7
) -> Digest:
    """Open deadlines for the morning digest: due in the coming `days`, overdue, provisional."""
    out = Digest(today)
    until = today + timedelta(days=days)
    for d in sorted(deadlines, key=lambda d: (d.due_on, d.case_ref, d.rule_id)):
        if d.due_on < today:
            out.overdue.append(d)
        elif d.due_on <= until:
            out.due_this_week.append(d)
        if d.provisional:
            out.provisional.append(d)
    return out


def digest_due(now: datetime, hours: WorkHours, cal: WorkCalendar) -> bool:
    """The digest goes out once on each working day, at the first scan in working hours."""
    return in_working_hours(now, hours, cal)


__all__ = [
    "ESCALATION",
    "Digest",
    "DueAlert",
    "OpenDeadline",
    "ScanWindow",
    "WorkHours",
    "digest",
    "digest_due",
    "due_alerts",
    "escalation_day",
    "in_working_hours",
    "next_window_start",
    "pending",
    "scan_horizon",
    "scan_window",
    "warning_day",
]
