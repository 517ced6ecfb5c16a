"""Accepting or refusing a case (受理 / 不予受理): who may, on what grounds, and when.

SGC §八1.4: the technical committee checks an appeal's validity and tells the appellant whether
it is accepted, so deciding an appeal needs a decision-maker (`decider`); a complaint or a
dispute is accepted by the staff handling it (SGC §八2.3, §八3.1). Refusing needs grounds and a
reason the complainant reads; accepting a case filed out of time needs the reason too, because
it sets the filing window aside (GGBZ §8.6.1, BQC 四.1, SGC §八1.3(4)).
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.domain.cases import CaseRefused
from bot.domain.staff import Role

ACCEPTED = "accepted"
REFUSED = "refused"
DECISIONS = (ACCEPTED, REFUSED)
# Why a case is refused: its formalities are incomplete (unsigned, no deposit, anonymous …),
# it was filed out of time, or it is not a matter for the body.
GROUNDS = ("formalities", "out_of_time", "not_applicable")


def role_to_decide(kind: str) -> Role:
    return Role.DECIDER if kind == "appeal" else Role.STAFF


def check_decision(
    *,
    ref: str,
    closed: bool,
    decided_before: Iterable[str],
    accept: bool,
    grounds: str | None,
    reason: str | None,
    out_of_time: bool,
) -> None:
    """CaseRefused (with the catalog key saying why) when this decision may not be taken."""
    if closed:
        raise CaseRefused("cases.refused_closed", ref=ref)
    if any(d in DECISIONS for d in decided_before):
        raise CaseRefused("console.decision_taken", ref=ref)
    if not accept and grounds not in GROUNDS:
        raise CaseRefused("console.decision_no_grounds", ref=ref)
    if not accept and grounds == "out_of_time" and not out_of_time:
        raise CaseRefused("console.decision_in_time", ref=ref)
    if (not accept or out_of_time) and not (reason or "").strip():
        raise CaseRefused("console.decision_no_reason", ref=ref)


__all__ = ["ACCEPTED", "DECISIONS", "GROUNDS", "REFUSED", "check_decision", "role_to_decide"]
