"""What the chat handlers read about cases, through the update's unit of work.

A complainant only ever reaches their own cases (by their contact row, never by a typed
reference alone); staff reach any. The `lock_…` lookups take the case's row lock, held until the
unit commits, so actions on one case are serialised.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.domain.cases import Complainant
from storage.models import Case, CaseEvent, Deadline
from storage.repo import cases as repo
from storage.repo.cases import CaseDue
from storage.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class CaseRecord:
    case: Case
    deadlines: list[Deadline]
    events: list[CaseEvent]


async def own_case(uow: UnitOfWork, user_id: int, ref: str) -> Case | None:
    """The case `ref` if it is this Telegram user's; otherwise None, as if it did not exist."""
    return await repo.own_case(uow.session, user_id, ref)


async def lock_own_case(uow: UnitOfWork, user_id: int, ref: str) -> Case | None:
    case = await repo.own_case(uow.session, user_id, ref)
    if case is None or case.id is None:
        return None
    return await repo.lock_case(uow.session, case.id)


async def lock_case(uow: UnitOfWork, ref: str) -> Case | None:
    case = await repo.find_case_by_ref(uow.session, ref)
    if case is None or case.id is None:
        return None
    return await repo.lock_case(uow.session, case.id)


async def cases_of_user(uow: UnitOfWork, user_id: int) -> list[tuple[Case, date | None]]:
    """The user's own cases, newest first, each with its nearest open deadline (if any)."""
    mine = list(await repo.cases_of_telegram_user(uow.session, user_id))
    dues = await repo.next_due_dates(uow.session, [c.id for c in mine if c.id is not None])
    return [(case, dues.get(case.id or 0)) for case in mine]


async def own_case_record(uow: UnitOfWork, user_id: int, ref: str) -> CaseRecord | None:
    """One of the user's own cases with its deadlines (its history is for staff eyes)."""
    case = await repo.own_case(uow.session, user_id, ref)
    if case is None or case.id is None:
        return None
    return CaseRecord(case, list(await repo.deadlines_of(uow.session, case.id)), [])


async def case_record(uow: UnitOfWork, ref: str) -> CaseRecord | None:
    """Any case, for staff: with its deadlines and its whole history."""
    case = await repo.find_case_by_ref(uow.session, ref)
    if case is None or case.id is None:
        return None
    deadlines = list(await repo.deadlines_of(uow.session, case.id))
    return CaseRecord(case, deadlines, list(await repo.events_of(uow.session, case.id)))


async def open_cases(uow: UnitOfWork) -> list[CaseDue]:
    """Open cases, nearest open deadline first (overdue first); cases with none come last."""
    return await repo.open_cases_by_due(uow.session)


# Rule ids of the windows an outcome opens: the profiles name them `*.second_level` and
# `*.appeal_window` and count them from `outcome_sent` (only such rows are ever stored).
FOLLOWUP_ROWS = "outcome_sent"


@dataclass(frozen=True)
class Followed:
    """An earlier case whose outcome opened the window this filing falls in."""

    ref: str
    rule: str
    due: date
    clause: str

    def to_dict(self) -> dict[str, str]:
        return {"ref": self.ref, "rule": self.rule, "due": self.due.isoformat()}


async def followed_window(
    session: AsyncSession, who: Complainant, contact_id: int | None, received: date
) -> Followed | None:
    """The complainant's earlier case whose outcome window contains `received`, if any.

    The windows are stored as deadline rows closed by `outcome_sent` (they are the
    complainant's to use, not ours to meet), so they never reach the staff alert scan.
    """
    whose = []
    if contact_id is not None:
        whose.append(col(Case.contact_id) == contact_id)
    if who.email:
        whose.append(col(Case.complainant_email) == who.email)
    if not whose:
        return None
    query = (
        select(Deadline, Case)
        .join(Case, col(Case.id) == col(Deadline.case_id))
        .where(or_(*whose))
        .where(col(Deadline.closed_by) == FOLLOWUP_ROWS)
        .where(col(Deadline.start_on) <= received, col(Deadline.due_on) >= received)
        .order_by(col(Deadline.due_on))
    )
    row = (await session.exec(query)).first()
    if row is None:
        return None
    deadline, case = row
    return Followed(case.ref, deadline.rule_id, deadline.due_on, deadline.clause)
