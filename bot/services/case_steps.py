"""The console's side of the steps the seeds prescribe after a case is opened (issue 15 §2–§4):
the decision's dates of an e-mailed appeal, an extension with its approver, the certified
organisation told, the publicity decision, a serious complaint.

Each runs the case service's own step (bot.services.cases.dates / steps) as a directory member:
the case locked, impartiality checked as on every action, the member's identity on the event.
Deciding whether the matter is made public is a decision (GGBZ §8.5.4, SGC §八2.6(8)): `decider`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from bot.desk import Desk
from bot.domain import cases as rules
from bot.domain.cases import CaseRefused
from bot.domain.staff import Role, may
from bot.services import case_acting, cases, staff
from bot.services.case_desk import locked_case
from messages.render import t
from storage.models import Case, CaseEvent, Deadline, StaffMember
from storage.unit_of_work import UnitOfWork

PUBLICITY_ROLE = Role.DECIDER


@dataclass(frozen=True)
class Extendable:
    """An open deadline its clause allows to extend, and who must approve it."""

    deadline: Deadline
    approver: str


@dataclass(frozen=True)
class Steps:
    """Which of the steps apply to a case now (the case file shows only those forms)."""

    dates: bool  # an appeal whose decision's dates staff may give
    extendable: list[Extendable]
    organisation: bool  # a complaint about a certified organisation, under a body that says so
    publicity: bool
    serious: bool
    serious_clause: str | None
    organisation_clause: str | None
    publicity_clause: str | None


def steps_of(desk: Desk, case: Case, deadlines: list[Deadline], events: list[CaseEvent]) -> Steps:
    policy = desk.profile.cases
    about_org = case.kind == "complaint" and rules.complaint_about(case.concerns) == "organisation"
    extendable = []
    for d in deadlines:
        rule = desk.profile.rules.get(d.rule_id)
        if d.closed_at is None and rule is not None and rule.extension_approver:
            extendable.append(Extendable(d, rule.extension_approver))
    done = {e.type for e in events}
    return Steps(
        dates=case.kind == "appeal",
        extendable=extendable,
        organisation=about_org and policy.organisation_informed_clause is not None,
        publicity=about_org and policy.publicity_clause is not None,
        serious=case.kind == "complaint"
        and policy.serious_clause is not None
        and "marked_serious" not in done,
        serious_clause=policy.serious_clause,
        organisation_clause=policy.organisation_informed_clause,
        publicity_clause=policy.publicity_clause,
    )


async def _case(uow: UnitOfWork, ref: str, actor: StaffMember) -> Case:
    case = await locked_case(uow, ref)
    # The one rule every action passes: impartiality by identity, and the assignee acts.
    await case_acting.check(uow, case, case_acting.acting_member(actor), "step")
    return case


async def give_dates(
    desk: Desk,
    uow: UnitOfWork,
    ref: str,
    actor: StaffMember,
    *,
    decided_on: date | None,
    notified_on: date | None,
) -> CaseEvent:
    """The appealed decision's date and the day its notice was received (an e-mailed appeal
    names neither): the filing window is checked then (BQC §19.1, SGC §八1.3(4), GGBZ §8.6.1)."""
    case = await _case(uow, ref, actor)
    if case.kind != "appeal":
        raise CaseRefused("console.dates_not_appeal", ref=case.ref)
    if decided_on is None and notified_on is None:
        raise CaseRefused("console.dates_none", ref=case.ref)
    today = desk.clock.today()
    if any(d is not None and d > today for d in (decided_on, notified_on)):
        raise CaseRefused("console.dates_future", ref=case.ref)
    return await cases.give_dates(
        desk, uow, case, staff.actor_of(actor), decided_on=decided_on, notified_on=notified_on
    )


async def extend(
    desk: Desk,
    uow: UnitOfWork,
    ref: str,
    actor: StaffMember,
    *,
    rule_id: str,
    new_due: date,
    approved_by: str,
    reason: str,
) -> Deadline:
    """An open deadline moved later, with the approver its clause names (the rules refuse it
    without one, or where the clause allows no extension)."""
    case = await _case(uow, ref, actor)
    return await cases.extend_deadline(
        desk, uow, case, staff.actor_of(actor), rule_id, new_due,
        approved_by=approved_by, reason=reason,
    )  # fmt: skip


async def inform_organisation(
    desk: Desk, uow: UnitOfWork, ref: str, actor: StaffMember, *, how: str, on: date | None
) -> CaseEvent:
    case = await _case(uow, ref, actor)
    if not how.strip():
        raise CaseRefused("console.inform_no_how", ref=case.ref)
    if on is not None and on > desk.clock.today():
        raise CaseRefused("console.dates_future", ref=case.ref)
    return await cases.inform_organisation(
        desk, uow, case, staff.actor_of(actor), how=how.strip(), on=on
    )


async def decide_publicity(
    desk: Desk,
    uow: UnitOfWork,
    ref: str,
    actor: StaffMember,
    *,
    public: bool,
    extent: str,
    agreed_with_organisation: bool,
    agreed_with_complainant: bool,
) -> CaseEvent:
    if not may(actor.role, PUBLICITY_ROLE):
        role = t(f"console.role_{PUBLICITY_ROLE.value}", desk.settings.default_locale)
        raise CaseRefused("console.publicity_needs_role", ref=ref, role=role)
    case = await _case(uow, ref, actor)
    return await cases.decide_publicity(
        desk, uow, case, staff.actor_of(actor), public=public, extent=extent.strip(),
        agreed_with_organisation=agreed_with_organisation,
        agreed_with_complainant=agreed_with_complainant,
    )  # fmt: skip


async def mark_serious(
    desk: Desk, uow: UnitOfWork, ref: str, actor: StaffMember, *, reason: str
) -> list[Deadline]:
    """A serious complaint (SGC §八2.4's list): the reason is which of the list it is."""
    case = await _case(uow, ref, actor)
    if not reason.strip():
        raise CaseRefused("console.serious_no_reason", ref=case.ref)
    record = await cases.case_record(uow, case.ref)
    if record is not None and any(e.type == "marked_serious" for e in record.events):
        raise CaseRefused("console.serious_already", ref=case.ref)
    return await cases.mark_serious(desk, uow, case, staff.actor_of(actor), reason=reason.strip())


__all__ = [
    "Extendable",
    "Steps",
    "decide_publicity",
    "extend",
    "give_dates",
    "inform_organisation",
    "mark_serious",
    "steps_of",
]
