"""The `[findings]` section of a policy profile: which grades and audit types a body uses, the
corrective-action period of each (grade, audit type), reminder lead times, and which overdue
grades raise a suspension review. Every period names its clause (GGBZ §5.10.1, §5.10.3 …).

A profile may give no period at all (ICS: the seed names none, so none is invented): a finding
then needs the due date set by whoever verifies it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from bot.domain.policy_base import KeyedError, Strict

AUDIT_TYPES: tuple[str, ...] = ("initial", "surveillance", "recertification", "special")
GRADES: tuple[str, ...] = ("minor", "major", "zero_tolerance")


class FindingPeriod(Strict):
    """The time to correct a finding of `grade` raised at an audit of one of `audit_types`
    (None: every audit type the profile has no more specific entry for)."""

    id: str = Field(pattern=r"^[a-z0-9_.]+$")
    grade: str
    audit_types: tuple[str, ...] | None = None
    count: int = Field(gt=0)
    unit: Literal["days", "working_days", "months"]
    clause: str = Field(min_length=1)
    note: str | None = None  # for staff and deployers (a conflict between clauses, a choice)


class FindingsPolicy(Strict):
    grades: tuple[str, ...] = ("minor", "major")
    audit_types: tuple[str, ...] = AUDIT_TYPES
    periods: tuple[FindingPeriod, ...] = ()
    reminder_days_before: tuple[int, ...] = (14, 3)
    reminder_note: str | None = None
    # Overdue findings of these grades are put to staff as a suspension review.
    suspension_review_grades: tuple[str, ...] = ()
    suspension_review_clause: str | None = Field(default=None, min_length=1)
    # Who verifies evidence: the body's staff, or (ICS) the commissioning member.
    verified_by: Literal["staff", "member"] = "staff"
    clause: str = Field(min_length=1)
    note: str | None = None

    @field_validator("reminder_days_before")
    @classmethod
    def _positive_descending(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(d <= 0 for d in value) or list(value) != sorted(set(value), reverse=True):
            raise ValueError("must be distinct positive day counts, largest first")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> FindingsPolicy:
        for name, values, known in (
            ("grades", self.grades, GRADES),
            ("audit_types", self.audit_types, AUDIT_TYPES),
            ("suspension_review_grades", self.suspension_review_grades, self.grades),
        ):
            unknown = [v for v in values if v not in known]
            if unknown or len(set(values)) != len(values):
                raise KeyedError(name, f"unknown or repeated {unknown or list(values)}")
        if self.suspension_review_grades and self.suspension_review_clause is None:
            raise KeyedError("suspension_review_clause", "missing (grades are listed)")
        seen: set[tuple[str, str | None]] = set()
        ids: set[str] = set()
        for p in self.periods:
            key = f"periods[{p.id}]"
            if p.id in ids:
                raise KeyedError(f"{key}.id", "duplicate id")
            ids.add(p.id)
            if p.grade not in self.grades:
                raise KeyedError(f"{key}.grade", f"{p.grade!r} is not in grades")
            for audit in p.audit_types or (None,):
                if audit is not None and audit not in self.audit_types:
                    raise KeyedError(f"{key}.audit_types", f"{audit!r} is not in audit_types")
                if (p.grade, audit) in seen:
                    raise KeyedError(f"{key}.audit_types", "another period covers this already")
                seen.add((p.grade, audit))
        return self

    def period(self, grade: str, audit_type: str) -> FindingPeriod | None:
        """The entry for this audit type, else the grade's general one, else None."""
        general = None
        for p in self.periods:
            if p.grade != grade:
                continue
            if p.audit_types is None:
                general = p
            elif audit_type in p.audit_types:
                return p
        return general


__all__ = ["AUDIT_TYPES", "GRADES", "FindingPeriod", "FindingsPolicy"]
