"""Case rules: milestones, filing windows, identity, impartiality, and what users type.

Functions of a profile and plain values, so they are tested without a database. A refusal is a
`CaseRefused` carrying a catalog key and its arguments; bot.services.cases renders it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from bot.domain.deadlines import ComputedDeadline
from bot.domain.impartiality import Acting, impartiality_conflict, same_person
from bot.domain.policy import COMPLAINT_ABOUT, FILING_EVENTS, MILESTONES, Profile, TimeRule
from bot.domain.refusals import CaseRefused
from bot.domain.zone import SHANGHAI

WITHDRAWN = "withdrawn"
ALL_MILESTONES: frozenset[str] = MILESTONES | {WITHDRAWN}
# The milestone after which nothing is left to do on a case of each kind.
FINAL_MILESTONE = {"appeal": "decision_made", "complaint": "answer_sent", "dispute": "answer_sent"}
# Staff milestones in the order they happen on a case.
MILESTONE_ORDER = ("work_group_formed", "investigation_done", "decision_made", "answer_sent")


class Status:
    RECEIVED = "received"  # 已收到: not yet accepted
    ACCEPTED = "accepted"  # 已受理 (SGC §八1.4)
    IN_PROGRESS = "in_progress"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True)
class Complainant:
    """Who wrote: any of these may be missing (an anonymous letter has none)."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None
    telegram_user_id: int | None = None
    telegram_chat_id: int | None = None
    locale: str = "zh_CN"

    @property
    def identified(self) -> bool:
        return bool(self.name) and bool(self.email or self.phone)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "email": self.email,
            "phone": self.phone,
            "telegram_user_id": self.telegram_user_id,
        }


# --- milestones -------------------------------------------------------------------------------


def milestones_for(profile: Profile, kind: str) -> list[str]:
    """The milestones of a case of `kind`: those its rules are closed by, and its final one."""
    relevant = {r.closed_by for r in profile.case_rules(kind) if r.closed_by}
    relevant.add(FINAL_MILESTONE[kind])
    return [m for m in MILESTONE_ORDER if m in relevant]


def is_final(kind: str, milestone: str) -> bool:
    """Whether `milestone` closes a case of `kind` (and every deadline still open on it)."""
    return milestone == WITHDRAWN or FINAL_MILESTONE.get(kind) == milestone


def check_milestone(profile: Profile, kind: str, milestone: str, ref: str) -> None:
    """ValueError for a name that is no milestone; CaseRefused for one not of this kind."""
    if milestone not in ALL_MILESTONES:
        raise ValueError(f"unknown milestone {milestone!r}")
    if milestone != WITHDRAWN and milestone not in milestones_for(profile, kind):
        raise CaseRefused("staff.milestone_not_applicable", ref=ref)


def rules_met_by(profile: Profile, kind: str, milestone: str) -> list[str]:
    """The rules of `kind` a (non-final) milestone closes: `closed_by` in the profile."""
    return [r.id for r in profile.case_rules(kind) if r.closed_by == milestone]


# --- identity and filing windows --------------------------------------------------------------


def identity_required(profile: Profile, kind: str) -> bool:
    """Whether an anonymous case of `kind` is incomplete (BQC, SGC: complaints need a name)."""
    return kind == "complaint" and not profile.cases.anonymous_complaints_accepted


def is_incomplete(profile: Profile, kind: str, who: Complainant) -> bool:
    return identity_required(profile, kind) and not who.identified


def is_filing_window(profile: Profile, rule_id: str) -> bool:
    """A period counted from the decision (or its notice) that nothing closes: the time the
    complainant has to file the case."""
    rule = profile.rules.get(rule_id)
    return rule is not None and rule.from_ in FILING_EVENTS and rule.closed_by is None


def is_followup_window(profile: Profile, rule_id: str) -> bool:
    """A period counted from our outcome: the complainant's time to go further (SGC §八1.7)."""
    rule = profile.rules.get(rule_id)
    return rule is not None and rule.from_ == "outcome_sent"


def filing_windows(
    profile: Profile, computed: Iterable[ComputedDeadline]
) -> list[ComputedDeadline]:
    return [d for d in computed if is_filing_window(profile, d.rule)]


def unchecked_windows(
    profile: Profile, kind: str, computed: Iterable[ComputedDeadline]
) -> list[TimeRule]:
    """The filing windows of `kind` not computed because their start date is not known yet
    (an e-mailed appeal names no dates): shown as "not yet checked" until staff give them."""
    done = {d.rule for d in computed}
    return [
        r for r in profile.case_rules(kind) if is_filing_window(profile, r.id) and r.id not in done
    ]


def followup_windows(profile: Profile, kind: str) -> list[TimeRule]:
    return [r for r in profile.case_rules(kind) if is_followup_window(profile, r.id)]


def out_of_time(received: date, windows: Iterable[ComputedDeadline]) -> bool:
    """Filed after a window's last day; still recorded (staff decide), but flagged."""
    return any(received > w.due for w in windows)


def deadline_start(
    profile: Profile,
    rule_id: str,
    received: date,
    decided: date | None,
    notified: date | None = None,
    outcome_sent: date | None = None,
) -> date:
    """The day a rule's period counts from: the event its `from` names, else receipt."""
    rule = profile.rules.get(rule_id)
    starts = {"decided": decided, "notified": notified, "outcome_sent": outcome_sent}
    start = starts.get(rule.from_) if rule is not None else None
    return start or received


def complaint_about(concerns: str | None) -> str | None:
    """Whom a complaint is about, as the rules name it (the chat stores `certified`)."""
    if concerns == "certified":
        return "organisation"
    return concerns if concerns in COMPLAINT_ABOUT else None


# A letter's INTERNALDATE further back than this is not taken as its receipt (a mailbox moved
# between servers, or a server clock set wrong): the day the intake saw it counts instead.
MAX_INBOX_WAIT_DAYS = 30


def letter_receipt_day(internal_date: datetime | None, now: datetime) -> date:
    """The day a letter was received: the day it reached the inbox (IMAP INTERNALDATE) in
    Shanghai, even when the intake takes it up later (an outage, a weekend); the processing day
    when the server gave no date, or one ahead of our clock or implausibly far back."""
    today = now.astimezone(SHANGHAI).date()
    if internal_date is None or internal_date.tzinfo is None:
        return today
    day = receipt_day(internal_date)
    if day > today or (today - day).days > MAX_INBOX_WAIT_DAYS:
        return today
    return day


def receipt_day(at: datetime) -> date:
    """The day a letter reached the inbox (its IMAP INTERNALDATE), as a Shanghai calendar day."""
    if at.tzinfo is None:
        raise ValueError("a receipt instant needs its time zone (INTERNALDATE carries one)")
    return at.astimezone(SHANGHAI).date()


# --- extensions -------------------------------------------------------------------------------


def check_extension(
    profile: Profile, rule_id: str, ref: str, due: date, new_due: date, approved_by: str
) -> str:
    """The approver's role for an extension; CaseRefused when the rule allows none, nobody
    approved it, or it does not move the date later (BQC §19.2, SGC §八1.7, §八2.6(5))."""
    rule = profile.rules.get(rule_id)
    if rule is None or rule.extension_approver is None:
        raise CaseRefused("cases.extension_not_allowed", ref=ref, rule=rule_id)
    if not approved_by.strip():
        raise CaseRefused("cases.extension_needs_approver", ref=ref, role=rule.extension_approver)
    if new_due <= due:
        raise CaseRefused("cases.extension_not_later", ref=ref)
    return rule.extension_approver


# --- impartiality: bot.domain.impartiality (re-exported here) -----------------------------------


# --- what users type --------------------------------------------------------------------------

_DATE = re.compile(r"^\s*(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?\s*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[\d\s()-]{7,24}$")


def parse_date(text: str) -> date | None:
    """A typed date: `2026-08-01`, `2026/8/1`, `2026.8.1` or `2026年8月1日`; None if not one."""
    match = _DATE.match(text)
    if not match:
        return None
    try:
        return date(*(int(g) for g in match.groups()))
    except ValueError:
        return None


def parse_contact(text: str) -> tuple[str | None, str | None] | None:
    """(email, phone) from a typed contact, or None when it is neither."""
    value = text.strip()
    if _EMAIL.match(value):
        return value, None
    if _PHONE.match(value) and sum(c.isdigit() for c in value) >= 7:
        return None, value
    return None


__all__ = [
    "ALL_MILESTONES",
    "FINAL_MILESTONE",
    "MILESTONE_ORDER",
    "WITHDRAWN",
    "Acting",
    "CaseRefused",
    "Complainant",
    "Status",
    "check_extension",
    "check_milestone",
    "complaint_about",
    "deadline_start",
    "filing_windows",
    "followup_windows",
    "identity_required",
    "impartiality_conflict",
    "is_filing_window",
    "is_final",
    "is_followup_window",
    "is_incomplete",
    "letter_receipt_day",
    "milestones_for",
    "out_of_time",
    "parse_contact",
    "parse_date",
    "receipt_day",
    "rules_met_by",
    "same_person",
    "unchecked_windows",
]
