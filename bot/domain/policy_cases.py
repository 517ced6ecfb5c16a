"""The case part of a policy profile: formalities, acceptance, next steps; the body's contact."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from bot.domain.policy_base import KeyedError, Strict

Kind = Literal["appeal", "complaint", "dispute"]

# Where an outcome letter sends the complainant next; each route is a catalog text
# (cases.next_<route>) so it reads in the complainant's language, the clause cites the rule.
ROUTES: frozenset[str] = frozenset(
    (
        "regulator",  # GGBZ §8.4, §8.5.3, §8.6.4
        "accreditation_then_courts",  # BQC §19.3
        "advisory_then_regulator",  # BQC 三.2
        "second_level",  # SGC §八1.7 (with its window)
        "appeal_then_regulator",  # SGC §八2.6(4), (6) (with its window)
        "appeal_or_complaint",  # SGC §八3.2
    )
)


class Contact(Strict):
    """How to reach the body (shown by /help); every field optional."""

    phone: str | None = None
    email: str | None = None
    address: str | None = None
    hours: str | None = None


class NextStep(Strict):
    """Where the complainant may go after the outcome, and the window for it, if any."""

    route: str
    clause: str = Field(min_length=1)
    window: str | None = None  # a rule id counted from `outcome_sent`

    @field_validator("route")
    @classmethod
    def _known_route(cls, value: str) -> str:
        if value not in ROUTES:
            raise ValueError(f"unknown route {value!r} (known: {', '.join(sorted(ROUTES))})")
        return value


class CasePolicy(Strict):
    anonymous_complaints_accepted: bool = True
    anonymous_clause: str | None = Field(default=None, min_length=1)
    appeal_deposit_cny: int | None = Field(default=None, ge=0)
    appeal_formalities: str = Field(min_length=1)
    # SGC §八1.4: the technical committee decides whether an appeal is accepted and says so.
    acceptance_clause: str | None = Field(default=None, min_length=1)
    # GGBZ §8.5.2, SGC §八2.3: a complaint about a certified organisation is told to it.
    organisation_informed_clause: str | None = Field(default=None, min_length=1)
    # GGBZ §8.5.4, SGC §八2.6(8): publication decided with the organisation and the complainant.
    publicity_clause: str | None = Field(default=None, min_length=1)
    # SGC §八2.4: what makes a complaint serious, and what follows at once.
    serious_clause: str | None = Field(default=None, min_length=1)
    next_steps: dict[Kind, NextStep] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _refusal_needs_clause(self) -> CasePolicy:
        if not self.anonymous_complaints_accepted and not self.anonymous_clause:
            raise KeyedError(
                "anonymous_clause", "missing (needed when anonymous complaints are refused)"
            )
        return self
