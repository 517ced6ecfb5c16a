"""The case history (append-only, hash-chained) and the unit of work the services write through."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.domain.cases import CaseRefused
from bot.domain.history import event_hash, json_ready
from storage.models import Case, CaseEvent
from storage.repo import cases as repo
from storage.unit_of_work import UnitOfWork

# What the services intake calls accept: the caller's unit of work, or (the e-mail intake,
# which manages its own transactions and savepoints) a session it commits itself.
Work = UnitOfWork | AsyncSession


def session_of(work: Work) -> AsyncSession:
    return work.session if isinstance(work, UnitOfWork) else work


async def append(
    session: AsyncSession,
    case: Case,
    *,
    actor: str,
    type: str,
    now: datetime,
    data: dict[str, Any] | None = None,
) -> CaseEvent:
    """Append one hash-chained event; the case row is locked so `seq` cannot be taken twice."""
    assert case.id is not None
    await repo.lock_case(session, case.id)
    last = await repo.last_event(session, case.id)
    seq = 1 if last is None else last.seq + 1
    prev = None if last is None else last.hash
    clean = json_ready(data) if data is not None else None
    event = CaseEvent(
        case_id=case.id,
        seq=seq,
        at=now,
        actor=actor,
        type=type,
        data=clean,
        prev_hash=prev,
        hash="",
    )
    event.hash = event_hash(event)
    session.add(event)
    await session.flush()
    return event


def check_open(case: Case) -> None:
    if case.closed_at is not None:
        raise CaseRefused("cases.refused_closed", ref=case.ref)
