"""May this organisation apply? Pure: the profile's conditions, the answers, today's date."""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from bot.domain.policy import Condition, Profile

Status = Literal["eligible", "not_eligible", "eligible_from"]
Answer = bool | date


def add_months(start: date, months: int) -> date:
    """The corresponding day `months` later, or that month's last day (Civil Code art. 202)."""
    index = start.year * 12 + start.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class Failure:
    id: str
    clause: str
    absolute: bool = False
    until: date | None = None  # a waiting period: the condition is met from this date

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "clause": self.clause,
            "absolute": self.absolute,
            "until": self.until.isoformat() if self.until else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Failure:
        until = data.get("until")
        return cls(
            id=data["id"],
            clause=data["clause"],
            absolute=bool(data.get("absolute", False)),
            until=date.fromisoformat(until) if until else None,
        )


@dataclass(frozen=True)
class Verdict:
    """eligible; not_eligible (every failure, absolute ones flagged); eligible_from a date."""

    status: Status
    profile: str
    scheme: str | None = None
    eligible_on: date | None = None
    failures: tuple[Failure, ...] = field(default=())

    @property
    def absolute(self) -> bool:
        return any(f.absolute for f in self.failures)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "profile": self.profile,
            "scheme": self.scheme,
            "eligible_on": self.eligible_on.isoformat() if self.eligible_on else None,
            "absolute": self.absolute,
            "failures": [f.to_json() for f in self.failures],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Verdict:
        on = data.get("eligible_on")
        return cls(
            status=data["status"],
            profile=data["profile"],
            scheme=data.get("scheme"),
            eligible_on=date.fromisoformat(on) if on else None,
            failures=tuple(Failure.from_json(f) for f in data.get("failures", [])),
        )


def _scheme(profile: Profile, scheme: str | None) -> str | None:
    if scheme is None and len(profile.body.schemes) == 1:
        return profile.body.schemes[0]
    if scheme is not None and scheme not in profile.body.schemes:
        known = ", ".join(profile.body.schemes)
        raise ValueError(f"unknown scheme {scheme!r} for {profile.body.id} (known: {known})")
    return scheme


def questions(profile: Profile, scheme: str | None = None) -> list[Condition]:
    """The conditions to ask, in profile order. Scheme-specific ones need the scheme named."""
    return profile.conditions(_scheme(profile, scheme))


def _check(cond: Condition, answer: Answer, scheme: str | None, today: date) -> Failure | None:
    if cond.kind == "yes_no":
        if not isinstance(answer, bool):
            raise ValueError(f"{cond.id}: expected yes/no, got {answer!r}")
        return None if answer == cond.pass_answer else Failure(cond.id, cond.clause, cond.absolute)
    if isinstance(answer, bool) or not isinstance(answer, date):
        raise ValueError(f"{cond.id}: expected the date the system started, got {answer!r}")
    ready = add_months(answer, cond.months_for(scheme))
    return None if ready <= today else Failure(cond.id, cond.clause, cond.absolute, until=ready)


def verdict(
    profile: Profile, answers: dict[str, Answer], today: date, scheme: str | None = None
) -> Verdict:
    """Judge every applicable condition; a missing answer is a caller error (ValueError)."""
    scheme = _scheme(profile, scheme)
    conditions = profile.conditions(scheme)
    missing = [c.id for c in conditions if c.id not in answers]
    if missing:
        raise ValueError(f"no answer for: {', '.join(missing)}")
    failures = tuple(
        f for c in conditions if (f := _check(c, answers[c.id], scheme, today)) is not None
    )
    body = profile.body.id
    if not failures:
        return Verdict("eligible", body, scheme)
    waiting = [f.until for f in failures if f.until is not None]
    if len(waiting) == len(failures):
        # Only time stands in the way: eligible once the longest wait is over.
        return Verdict("eligible_from", body, scheme, eligible_on=max(waiting), failures=failures)
    return Verdict("not_eligible", body, scheme, failures=failures)


__all__ = ["Failure", "Verdict", "add_months", "questions", "verdict"]
