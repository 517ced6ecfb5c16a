"""The dates of the decision appealed, given by staff after the fact (an e-mailed appeal names
none): its filing windows are computed then, and "not yet checked" becomes in time or late."""

from __future__ import annotations

from datetime import date

from bot.desk import Desk
from bot.domain import cases as rules
from bot.domain.cases import CaseRefused
from bot.domain.deadlines import case_deadlines
from bot.services.cases.events import append, check_open
from storage.models import Case, CaseEvent, Deadline
from storage.repo import cases as repo
from storage.unit_of_work import UnitOfWork


async def received_on(uow: UnitOfWork, case: Case) -> date:
    """The day the case was received, as its first event recorded it."""
    assert case.id is not None
    events = await repo.events_of(uow.session, case.id)
    return date.fromisoformat(str((events[0].data or {})["received_on"]))


async def give_dates(
    desk: Desk,
    uow: UnitOfWork,
    case: Case,
    actor: str,
    *,
    decided_on: date | None,
    notified_on: date | None,
) -> CaseEvent:
    """Record the decision's date and the day its notice was received; compute the filing
    windows they start and whether the case came in time (staff still decide on acceptance)."""
    check_open(case)
    if decided_on and notified_on and notified_on < decided_on:
        raise CaseRefused("cases.notified_before_decision")
    session = uow.session
    now = desk.clock.now()
    profile = desk.profile
    received = await received_on(uow, case)
    assert case.id is not None
    computed = case_deadlines(
        profile.rules.values(),
        case.kind,
        received,
        decided_on,
        desk.calendar,
        roll_to_workday=profile.calendar.roll_to_workday,
        notified=notified_on,
    )
    windows = rules.filing_windows(profile, computed)
    have = {d.rule_id: d for d in await repo.deadlines_of(session, case.id)}
    for w in windows:
        start = rules.deadline_start(profile, w.rule, received, decided_on, notified_on)
        row = have.get(w.rule) or Deadline(
            case_id=case.id,
            rule_id=w.rule,
            clause=w.clause,
            unit=w.unit,
            count=w.count,
            start_on=start,
            due_on=w.due,
            created_at=now,
        )
        row.start_on, row.due_on, row.provisional = start, w.due, w.provisional
        row.closed_at, row.closed_by = row.closed_at or now, "received"
        session.add(row)
    if decided_on is not None:
        case.decided_on = decided_on
    case.out_of_time = rules.out_of_time(received, windows)
    session.add(case)
    unchecked = [r.id for r in rules.unchecked_windows(profile, case.kind, computed)]
    return await append(
        session,
        case,
        actor=actor,
        type="dates_given",
        now=now,
        data={
            "decided_on": decided_on,
            "notified_on": notified_on,
            "windows": [w.to_dict() for w in windows],
            "windows_unchecked": unchecked,
            "out_of_time": case.out_of_time,
        },
    )


__all__ = ["give_dates", "received_on"]
