"""A status-model programme (IETP, seed 000): which status may be given, until when it lasts,
whether it is a valid certificate, and until when a terminated factory may not reapply (pure).

Periods in months end on the corresponding day (Civil Code arts. 201-202, domain.md §7): a status
decided on 2026-03-10 for 12 months lasts until 2027-03-10.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from bot.domain.deadlines import add_months
from bot.domain.policy_statuses import StatusModel


class StatusRefused(ValueError):
    """A status the rules do not allow; `key` names the reason, `args_` fill its text."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class Granted:
    status: str
    certificate: bool  # a valid certificate while it lasts
    validity_months: int
    starts_on: date
    ends_on: date  # the last day of the status


@dataclass(frozen=True)
class PastStatus:
    status: str
    starts_on: date
    ends_on: date


def grant(
    model: StatusModel,
    status: str,
    validity_months: int | None,
    decided_on: date,
    history: Iterable[PastStatus],
    *,
    fee_paid: bool,
) -> Granted:
    """The status as the rules allow it, or StatusRefused with the reason."""
    rule = model.get(status)
    if rule is None:
        known = ", ".join(s.id for s in model.statuses)
        raise StatusRefused("unknown_status", f"status {status!r} is not one of {known}")
    history = list(history)
    blocked = reapply_from(model, [h for h in history if h.starts_on <= decided_on], decided_on)
    if blocked is not None:
        raise StatusRefused(
            "terminated", f"terminated: a new application is accepted from {blocked.isoformat()}"
        )
    if rule.min_months is not None:  # a termination: at least min_months
        months = validity_months or rule.min_months
        if months < rule.min_months:
            raise StatusRefused(
                "too_short", f"{status} lasts at least {rule.min_months} months, not {months}"
            )
    else:
        choices = rule.validity_months
        if validity_months is None and len(choices) == 1:
            validity_months = choices[0]
        if validity_months not in choices:
            shown = " or ".join(map(str, choices))
            given = validity_months if validity_months is not None else "none given"
            raise StatusRefused(
                "validity", f"{status} is valid for {shown} months (staff choose), not {given}"
            )
        months = validity_months
    if rule.requires_prior_certification and not any(
        (past := model.get(h.status)) is not None and past.certificate and h.starts_on < decided_on
        for h in history
    ):
        raise StatusRefused(
            "no_prior", f"{status} is only for a factory certified before; the history shows none"
        )
    if rule.certificate and model.fee_usd is not None and not fee_paid:
        raise StatusRefused(
            "fee_unpaid", f"the certificate is issued only after the US${model.fee_usd} fee is paid"
        )
    # Civil Code art. 201-202: counted from the next day, ending on the corresponding day.
    ends_on = add_months(decided_on, months)
    return Granted(status, rule.certificate, months, decided_on, ends_on)


def is_certificate(model: StatusModel, status: str, ends_on: date, today: date) -> bool:
    """A valid certificate today: a certificate status that has not run out."""
    rule = model.get(status)
    return rule is not None and rule.certificate and today <= ends_on


def reapply_from(model: StatusModel, history: Iterable[PastStatus], today: date) -> date | None:
    """The first day a new application is accepted, while a refusing status (terminated) still
    runs; None when nothing stands in the way."""
    until = [
        h.ends_on
        for h in history
        if (rule := model.get(h.status)) is not None
        and rule.refuses_reapplication
        and h.ends_on >= today
    ]
    return max(until) + timedelta(days=1) if until else None


__all__ = [
    "Granted",
    "PastStatus",
    "StatusRefused",
    "grant",
    "is_certificate",
    "reapply_from",
]
