"""A certificate's schedule after the decision, and the reminders that announce it (pure).

The periods come from the profile's certificate rules (ids below); a profile without a rule simply
has no such item. The schedule is recomputed from the certificate row whenever it is needed, so a
surveillance recorded or a nonconformity closed makes the reminders about it obsolete at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from bot.domain.calendar import WorkCalendar
from bot.domain.deadlines import due_date
from bot.domain.policy import Profile, TimeRule

FIRST_SURVEILLANCE = "surveillance.first"
SURVEILLANCE_GAP = "surveillance.max_gap"
RECERT_APPLY = "recertification.apply"
RECERT_RESTORE = "recertification.restore"
SUSPENSION_MAX = "suspension.max"
NC_RULES = {"minor": "nc.minor", "major": "nc.major"}
# A major nonconformity's period depends on the audit that found it (GGBZ §5.10.3): the profile's
# "nc.major_verify.<audit type>" when it has one, else its general "nc.major".
MAJOR_BY_AUDIT = "nc.major_verify"
AUDIT_TYPES = ("initial", "surveillance", "recertification")

# lead_days of the reminder row that tells staff an item is overdue (organisation leads are > 0).
OVERDUE_LEAD = 0


@dataclass(frozen=True)
class CertificateFacts:
    """What the schedule needs of a certificate row."""

    id: int
    number: str
    holder: str
    status: str  # valid | suspended | withdrawn | expired
    decided_on: date
    expires_on: date
    stage2_end_on: date | None = None
    last_surveillance_on: date | None = None
    suspended_until: date | None = None


@dataclass(frozen=True)
class OpenNonconformity:
    id: int
    severity: str  # minor | major
    raised_on: date  # the audit end the closure period runs from
    audit_type: str | None = None  # initial (stage 2) | surveillance | recertification


@dataclass(frozen=True)
class ScheduleItem:
    rule_id: str  # the profile rule; for a nonconformity "nc.minor:<nc id>"
    topic: str  # surveillance | recertification | restoration | nonconformity | suspension
    due_on: date
    clause: str
    provisional: bool = False


@dataclass(frozen=True)
class PlannedReminder:
    item: ScheduleItem
    lead_days: int  # days before due_on; OVERDUE_LEAD for the staff notice after it
    send_on: date

    @property
    def to_staff(self) -> bool:
        return self.lead_days == OVERDUE_LEAD


def _due(rule: TimeRule, start: date, cal: WorkCalendar, profile: Profile) -> tuple[date, bool]:
    due = due_date(
        start, rule.count, rule.unit, cal, profile.calendar.roll_to_workday, rule.direction
    )
    return due.due, due.provisional


def schedule(
    profile: Profile,
    cert: CertificateFacts,
    open_ncs: Iterable[OpenNonconformity],
    cal: WorkCalendar,
    today: date,
) -> list[ScheduleItem]:
    """Every date the certified organisation must meet, as of `today`, earliest first."""
    if cert.status == "withdrawn":
        return []
    rules = profile.rules
    items: list[ScheduleItem] = []
    expired = today > cert.expires_on or cert.status == "expired"

    if not expired:
        surveillance = _surveillance(profile, cert, cal)
        if surveillance is not None:
            items.append(surveillance)
        if RECERT_APPLY in rules:
            rule = rules[RECERT_APPLY]
            due, prov = _due(rule, cert.expires_on, cal, profile)
            items.append(ScheduleItem(rule.id, "recertification", due, rule.clause, prov))
    elif RECERT_RESTORE in rules:
        rule = rules[RECERT_RESTORE]
        due, prov = _due(rule, cert.expires_on, cal, profile)
        items.append(ScheduleItem(rule.id, "restoration", due, rule.clause, prov))

    for nc in open_ncs:
        rule_id = nc_rule_id(profile, nc)
        if rule_id is None:
            continue
        rule = rules[rule_id]
        due, prov = _due(rule, nc.raised_on, cal, profile)
        items.append(ScheduleItem(f"{rule.id}:{nc.id}", "nonconformity", due, rule.clause, prov))

    if cert.status == "suspended" and cert.suspended_until is not None and SUSPENSION_MAX in rules:
        rule = rules[SUSPENSION_MAX]
        items.append(ScheduleItem(rule.id, "suspension", cert.suspended_until, rule.clause))

    return sorted(items, key=lambda i: (i.due_on, i.rule_id))


def nc_rule_id(profile: Profile, nc: OpenNonconformity) -> str | None:
    """The profile rule that bounds closing this nonconformity, or None when it has none."""
    if nc.severity == "major" and nc.audit_type in AUDIT_TYPES:
        by_audit = f"{MAJOR_BY_AUDIT}.{nc.audit_type}"
        if by_audit in profile.rules:
            return by_audit
    rule_id = NC_RULES.get(nc.severity)
    return rule_id if rule_id in profile.rules else None


def _surveillance(
    profile: Profile, cert: CertificateFacts, cal: WorkCalendar
) -> ScheduleItem | None:
    """The next surveillance audit: first within the anchor period, then the gap and year rules."""
    rules = profile.rules
    last = cert.last_surveillance_on
    if last is None or last <= cert.decided_on:
        if FIRST_SURVEILLANCE not in rules:
            return None
        rule = rules[FIRST_SURVEILLANCE]
        # The profile names the anchor (decision or stage-2 end); without the audit date, the
        # decision is the anchor we have.
        anchor = cert.stage2_end_on if rule.from_ == "stage2_end" else None
        due, prov = _due(rule, anchor or cert.decided_on, cal, profile)
        clause = rule.clause
    else:
        if SURVEILLANCE_GAP not in rules:
            return None
        rule = rules[SURVEILLANCE_GAP]
        due, prov = _due(rule, last, cal, profile)
        # At least once each calendar year: the year after the last one ends the period too.
        due = min(due, date(last.year + 1, 12, 31))
        clause = rule.clause
    # The recertification year has no surveillance: the recertification audit replaces it.
    if due.year >= cert.expires_on.year:
        return None
    return ScheduleItem(rule.id, "surveillance", due, clause, prov)


def plan(items: Iterable[ScheduleItem], leads: Sequence[int], today: date) -> list[PlannedReminder]:
    """Reminders at `leads` days before each item, and a staff notice the day after it passes.

    Reminder days already past are dropped, except the nearest one while the item is still ahead:
    it goes out today, so an organisation imported late still hears once before its date.
    """
    out: list[PlannedReminder] = []
    for item in items:
        late: list[int] = []
        on_time = False
        for lead in sorted(set(leads), reverse=True):
            send_on = item.due_on - timedelta(days=lead)
            if send_on >= today:
                out.append(PlannedReminder(item, lead, send_on))
                on_time |= send_on == today
            elif item.due_on >= today:
                late.append(lead)
        if late and not on_time:  # one reminder today is enough
            out.append(PlannedReminder(item, min(late), today))
        out.append(PlannedReminder(item, OVERDUE_LEAD, item.due_on + timedelta(days=1)))
    return sorted(out, key=lambda r: (r.send_on, r.item.rule_id, -r.lead_days))


def current(
    profile: Profile,
    cert: CertificateFacts,
    open_ncs: Iterable[OpenNonconformity],
    cal: WorkCalendar,
    today: date,
) -> set[tuple[str, date]]:
    """(rule_id, due_on) of every item still in force: a stored reminder outside it is obsolete."""
    return {(i.rule_id, i.due_on) for i in schedule(profile, cert, open_ncs, cal, today)}


__all__ = [
    "OVERDUE_LEAD",
    "CertificateFacts",
    "OpenNonconformity",
    "PlannedReminder",
    "ScheduleItem",
    "current",
    "nc_rule_id",
    "plan",
    "schedule",
]
