"""Queries of appeals, complaints and disputes: cases, their events and their deadlines.

Events are only ever inserted here (the database refuses UPDATE and DELETE on case_event);
`lock_case` serialises appends to one case so two writers cannot take the same `seq`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import Select

from storage.models import Case, CaseEvent, CaseMessageId, Contact, Deadline, OutboxMessage
from storage.repo.applications import stored_file  # one row per content hash, documents' too
from storage.repo.contacts import get_or_create_contact
from storage.sql import dialect_name


async def ref_exists(session: AsyncSession, ref: str) -> bool:
    found = await session.exec(select(Case.id).where(Case.ref == ref))
    return found.first() is not None


async def find_case_by_ref(session: AsyncSession, ref: str) -> Case | None:
    return (await session.exec(select(Case).where(Case.ref == ref))).first()


async def find_case_by_message_id(session: AsyncSession, message_id: str) -> Case | None:
    """The case an e-mail Message-ID belongs to: our acknowledgement and replies, or a letter
    of the complainant's recorded on the case, by one indexed row of `case_message_id`."""
    mid = normalise_message_id(message_id)
    if not mid:
        return None
    query = select(CaseMessageId.case_id).where(CaseMessageId.message_id_key == message_id_key(mid))
    case_id = (await session.exec(query)).first()
    if case_id is None:
        # A letter of ours with a case but outside its thread (a staff notice by e-mail).
        sent = await session.exec(
            select(OutboxMessage.case_id).where(
                OutboxMessage.email_message_id == mid, col(OutboxMessage.case_id).is_not(None)
            )
        )
        case_id = sent.first()
    return await session.get(Case, case_id) if case_id is not None else None


def message_id_key(mid: str) -> str:
    """The bounded key of a normalised Message-ID (a sender may write a header of any length)."""
    return hashlib.sha256(mid.encode()).hexdigest()


async def add_message_id(session: AsyncSession, case: Case, message_id: str | None) -> None:
    """Put `message_id` in the case's thread (`thread_message_ids`, for References) and in
    `case_message_id`, which a reply's In-Reply-To finds the case by. Once; the first case that
    recorded a Message-ID keeps it."""
    mid = normalise_message_id(message_id)
    if not mid or case.id is None:
        return
    if mid not in (case.thread_message_ids or []):
        case.thread_message_ids = [*(case.thread_message_ids or []), mid]
        session.add(case)
    insert = pg_insert if dialect_name(session) == "postgresql" else sqlite_insert
    stmt = (
        insert(CaseMessageId)
        .values(message_id_key=message_id_key(mid), case_id=case.id)
        .on_conflict_do_nothing(index_elements=["message_id_key"])
    )
    await session.exec(stmt)


def normalise_message_id(message_id: str | None) -> str | None:
    text = (message_id or "").strip()
    if not text:
        return None
    return text if text.startswith("<") else f"<{text.strip('<>')}>"


async def lock_case(session: AsyncSession, case_id: int) -> Case:
    """The case row, locked until commit on PostgreSQL (SQLite has one writer anyway)."""
    query = select(Case).where(Case.id == case_id).with_for_update()
    return (await session.exec(query)).one()


async def last_event(session: AsyncSession, case_id: int) -> CaseEvent | None:
    query = (
        select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(col(CaseEvent.seq).desc())
    )
    return (await session.exec(query.limit(1))).first()


async def events_of(session: AsyncSession, case_id: int) -> Sequence[CaseEvent]:
    query = select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(col(CaseEvent.seq))
    return (await session.exec(query)).all()


async def deadlines_of(session: AsyncSession, case_id: int) -> Sequence[Deadline]:
    query = (
        select(Deadline)
        .where(Deadline.case_id == case_id)
        .order_by(col(Deadline.due_on), col(Deadline.id))
    )
    return (await session.exec(query)).all()


async def close_deadlines(
    session: AsyncSession,
    case_id: int,
    rule_ids: Iterable[str] | None,
    closed_by: str,
    now: datetime,
) -> list[Deadline]:
    """Close the case's open deadlines of `rule_ids` (None: all of them); return those closed."""
    query = select(Deadline).where(Deadline.case_id == case_id, col(Deadline.closed_at).is_(None))
    if rule_ids is not None:
        query = query.where(col(Deadline.rule_id).in_(list(rule_ids)))
    closed = list((await session.exec(query)).all())
    for deadline in closed:
        deadline.closed_at = now
        deadline.closed_by = closed_by
        session.add(deadline)
    return closed


async def contact_for_telegram(
    session: AsyncSession, user_id: int, chat_id: int | None, locale: str, now: datetime
) -> Contact:
    """The contact of a Telegram user, created on first use (shared with the applicant flows)."""
    contact, _created = await get_or_create_contact(
        session, user_id=user_id, chat_id=chat_id, name=None, locale=locale, now=now
    )
    return contact


async def cases_of_telegram_user(session: AsyncSession, user_id: int) -> Sequence[Case]:
    """The user's own cases, newest first: by their contact row, never by a typed reference."""
    query = (
        select(Case)
        .join(Contact, col(Contact.id) == col(Case.contact_id))
        .where(Contact.telegram_user_id == user_id)
        .order_by(col(Case.created_at).desc(), col(Case.id).desc())
    )
    return (await session.exec(query)).all()


async def next_due_dates(session: AsyncSession, case_ids: Iterable[int]) -> dict[int, date]:
    """Each case's nearest open deadline; a case with none open is left out."""
    query = (
        select(Deadline.case_id, func.min(Deadline.due_on))
        .where(col(Deadline.case_id).in_(list(case_ids)), col(Deadline.closed_at).is_(None))
        .group_by(col(Deadline.case_id))
    )
    return {cid: due for cid, due in (await session.exec(query)).all() if cid is not None}


async def own_case(session: AsyncSession, user_id: int, ref: str) -> Case | None:
    """The case `ref` if it is this Telegram user's; otherwise None, as if it did not exist."""
    query = (
        select(Case)
        .join(Contact, col(Contact.id) == col(Case.contact_id))
        .where(Case.ref == ref, Contact.telegram_user_id == user_id)
    )
    return (await session.exec(query)).first()


@dataclass(frozen=True)
class CaseDue:
    case: Case
    next_due: date | None
    provisional: bool


async def open_cases_by_due(session: AsyncSession, limit: int = 50) -> list[CaseDue]:
    """Open cases, nearest open deadline first (overdue first); cases with none come last."""
    nearest = (
        select(
            col(Deadline.case_id).label("case_id"),
            func.min(Deadline.due_on).label("due"),
        )
        .where(col(Deadline.case_id).is_not(None), col(Deadline.closed_at).is_(None))
        .group_by(col(Deadline.case_id))
        .subquery()
    )
    query = (
        select(Case, nearest.c.due)
        .outerjoin(nearest, nearest.c.case_id == col(Case.id))
        .where(col(Case.closed_at).is_(None))
        .order_by(nearest.c.due.is_(None), nearest.c.due, col(Case.id))
        .limit(limit)
    )
    rows = (await session.exec(query)).all()
    ids = [case.id for case, _ in rows]
    provisional: set[tuple[int, date]] = set()
    if ids:
        marked = await session.exec(
            select(col(Deadline.case_id), col(Deadline.due_on)).where(
                col(Deadline.case_id).in_(ids),
                col(Deadline.closed_at).is_(None),
                col(Deadline.provisional).is_(True),
            )
        )
        provisional = {(cid, due) for cid, due in marked.all() if cid is not None}
    return [CaseDue(case, due, (case.id, due) in provisional) for case, due in rows]


async def all_case_ids(session: AsyncSession) -> Sequence[tuple[int, str]]:
    refs: Select[int, str] = Select(col(Case.id), col(Case.ref))  # Select itself: id is not null
    return (await session.exec(refs.order_by(col(Case.id)))).all()


__all__ = [
    "CaseDue",
    "all_case_ids",
    "cases_of_telegram_user",
    "close_deadlines",
    "contact_for_telegram",
    "deadlines_of",
    "events_of",
    "find_case_by_message_id",
    "find_case_by_ref",
    "last_event",
    "lock_case",
    "next_due_dates",
    "normalise_message_id",
    "open_cases_by_due",
    "own_case",
    "ref_exists",
    "stored_file",
]
