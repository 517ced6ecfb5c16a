"""Findings (nonconformities) of an audit: each one's due date and status (pure).

Due date (domain.md §6, GGBZ §5.10): the profile's `[findings]` period for the finding's grade
and audit type, counted from the audit's end under the Civil Code rules (bot.domain.deadlines).
A profile with no period for it (ICS names none) leaves the date to the verifier: `due_for`
returns None and the finding needs an explicit one.

Status: open → evidence_submitted → accepted (closed), or rejected: back to open with the
reason (overdue when its date has passed). An open finding past its date is overdue; evidence
may still be submitted then.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from bot.domain.calendar import WorkCalendar
from bot.domain.deadlines import due_date
from bot.domain.policy import Profile


class FindingStatus(StrEnum):
    OPEN = "open"
    EVIDENCE_SUBMITTED = "evidence_submitted"
    ACCEPTED = "accepted"  # closed
    OVERDUE = "overdue"


# What the organisation still has to act on (shown on its "corrective actions" list).
ACTIONABLE: frozenset[str] = frozenset((FindingStatus.OPEN, FindingStatus.OVERDUE))
CLOSED: frozenset[str] = frozenset((FindingStatus.ACCEPTED,))


class TransitionRefused(ValueError):
    """A status change the rules do not allow; `key` names the reason (a catalog key suffix)."""

    def __init__(self, key: str, status: str) -> None:
        super().__init__(f"{key} (status {status})")
        self.key, self.status = key, status


@dataclass(frozen=True)
class Due:
    due_on: date
    rule_id: str  # the profile period's id, or "set" for a date given by the verifier
    clause: str
    provisional: bool = False


def due_for(
    profile: Profile, grade: str, audit_type: str, audit_end_on: date, cal: WorkCalendar
) -> Due | None:
    """The finding's due date under the profile, or None when the profile gives no period."""
    policy = profile.findings
    if policy is None:
        return None
    period = policy.period(grade, audit_type)
    if period is None:
        return None
    due = due_date(audit_end_on, period.count, period.unit, cal, profile.calendar.roll_to_workday)
    return Due(due.due, period.id, period.clause, due.provisional)


def status_on(status: str, due_on: date, today: date) -> str:
    """The status as of `today`: an open finding past its due date is overdue."""
    if status == FindingStatus.OPEN and today > due_on:
        return FindingStatus.OVERDUE
    return status


def submit(status: str, files: int) -> str:
    """Evidence received: needs at least one file, and a finding still to be acted on."""
    if status not in ACTIONABLE:
        raise TransitionRefused("not_open", status)
    if files < 1:
        raise TransitionRefused("no_files", status)
    return FindingStatus.EVIDENCE_SUBMITTED


def accept(status: str) -> str:
    if status != FindingStatus.EVIDENCE_SUBMITTED:
        raise TransitionRefused("no_evidence", status)
    return FindingStatus.ACCEPTED


def reject(status: str, reason: str, due_on: date, today: date) -> str:
    """Evidence refused, with a reason the organisation is told: the finding is open again."""
    if status != FindingStatus.EVIDENCE_SUBMITTED:
        raise TransitionRefused("no_evidence", status)
    if not reason.strip():
        raise TransitionRefused("no_reason", status)
    return status_on(FindingStatus.OPEN, due_on, today)


def raises_suspension_review(profile: Profile, grade: str) -> bool:
    """An overdue finding of this grade is put to staff as a suspension review (GGBZ §7.3)."""
    return profile.findings is not None and grade in profile.findings.suspension_review_grades


# A finding's tag in a letter's subject: a reply carrying it attaches its files to that finding.
TAG_PREFIX = "FND-"
_TAG = re.compile(r"\[\s*FND-(\d{1,12})\s*\]", re.IGNORECASE)


def tag(finding_id: int) -> str:
    return f"[{TAG_PREFIX}{finding_id}]"


def tagged_finding(subject: str | None) -> int | None:
    """The finding id a subject names (`[FND-12]`), or None; several tags: the first."""
    found = _TAG.search(subject or "")
    return int(found.group(1)) if found else None


@dataclass(frozen=True)
class Progress:
    closed: int
    total: int


def progress(statuses: list[str]) -> Progress:
    return Progress(sum(s in CLOSED for s in statuses), len(statuses))


__all__ = [
    "ACTIONABLE",
    "CLOSED",
    "Due",
    "FindingStatus",
    "Progress",
    "TransitionRefused",
    "accept",
    "due_for",
    "progress",
    "raises_suspension_review",
    "reject",
    "status_on",
    "submit",
    "tag",
    "tagged_finding",
]
