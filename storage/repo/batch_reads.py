"""The reads of a batch of letters (bot.services.inbound_mail.batch): one query per kind of
lookup for the whole batch, Core statements (storage.repo.bulk writes what they lead to)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.domain.history import CASE_FIELDS
from storage.models import (
    Case,
    CaseEvent,
    CaseHead,
    CaseMessageId,
    Contact,
    Deadline,
    InboundEmail,
    OutboxMessage,
)
from storage.repo import pipeline
from storage.repo.outbox import address_key
from storage.sql import among, table_of

INBOUND = table_of(InboundEmail)
CASES = table_of(Case)
EVENTS = table_of(CaseEvent)
HEADS = table_of(CaseHead)
MESSAGE_IDS = table_of(CaseMessageId)
DEADLINES = table_of(Deadline)
OUTBOX = table_of(OutboxMessage)
CONTACTS = table_of(Contact)


async def _conn(session: AsyncSession) -> AsyncConnection:
    """The session's connection, once the writes in flight are done (a read sees them)."""
    await pipeline.settle(session)
    return await session.connection()


async def lock_letters(session: AsyncSession, ids: Sequence[int]) -> list[Any]:
    """The stored letters `ids`, locked until commit (PostgreSQL; SQLite has one writer), in id
    order: id, status, raw, problems, message_id, message_key, internal_date."""
    c = INBOUND.c
    query = (
        sa.select(c.id, c.status, c.raw, c.problems, c.message_id, c.message_key, c.internal_date)
        .where(among(session, c.id, list(ids)))
        .order_by(c.id)
        .with_for_update()
    )
    return list((await (await _conn(session)).execute(query)).all())


async def cases_by_message_key(session: AsyncSession, keys: Iterable[str]) -> dict[str, int]:
    """case_id of each Message-ID key (`case_message_id`) found among `keys`."""
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return {}
    c = MESSAGE_IDS.c
    query = sa.select(c.message_id_key, c.case_id).where(among(session, c.message_id_key, wanted))
    return {k: cid for k, cid in (await (await _conn(session)).execute(query)).all()}


async def cases_by_sent_message_id(session: AsyncSession, mids: Iterable[str]) -> dict[str, int]:
    """case_id of our sent letters with these Message-IDs (a staff notice outside the thread)."""
    wanted = list(dict.fromkeys(mids))
    if not wanted:
        return {}
    c = OUTBOX.c
    query = sa.select(c.email_message_id, c.case_id).where(
        among(session, c.email_message_id, wanted), c.case_id.is_not(None)
    )
    found: dict[str, int] = {}
    for mid, cid in (await (await _conn(session)).execute(query)).all():
        found.setdefault(mid, cid)
    return found


async def case_ids_by_ref(session: AsyncSession, refs: Iterable[str]) -> dict[str, int]:
    wanted = list(dict.fromkeys(refs))
    if not wanted:
        return {}
    query = sa.select(CASES.c.ref, CASES.c.id).where(among(session, CASES.c.ref, wanted))
    return {ref: cid for ref, cid in (await (await _conn(session)).execute(query)).all()}


async def refs_taken(session: AsyncSession, refs: Iterable[str]) -> set[str]:
    return set(await case_ids_by_ref(session, refs))


async def cases_by_id(
    session: AsyncSession, ids: Iterable[int], *, lock: bool = False
) -> dict[int, Case]:
    """The case rows `ids` as ORM objects (for the texts and the checks that read them)."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    await pipeline.settle(session)  # an ORM query: after the writes in flight
    query = select(Case).where(among(session, col(Case.id), wanted))
    if lock:
        query = query.with_for_update()
    rows = (await session.exec(query.execution_options(populate_existing=True))).all()
    return {row.id: row for row in rows if row.id is not None}


async def stored_fields(session: AsyncSession, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The covered fields of the case rows `ids` as the database holds them (locked)."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    columns = [CASES.c[name] for name in CASE_FIELDS]
    query = sa.select(*columns).where(among(session, CASES.c.id, wanted)).with_for_update()
    with session.no_autoflush:
        rows = (await (await _conn(session)).execute(query)).all()
    return {row[0]: dict(zip(CASE_FIELDS, row, strict=True)) for row in rows}


async def last_events(session: AsyncSession, ids: Iterable[int]) -> dict[int, Any]:
    """Each case's last event (seq, hash, mac), by case id."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    c = EVENTS.c
    latest = (
        sa.select(c.case_id, sa.func.max(c.seq).label("seq"))
        .where(among(session, c.case_id, wanted))
        .group_by(c.case_id)
        .subquery()
    )
    query = sa.select(c.case_id, c.seq, c.hash, c.mac).join(
        latest, sa.and_(latest.c.case_id == c.case_id, latest.c.seq == c.seq)
    )
    return {row.case_id: row for row in (await (await _conn(session)).execute(query)).all()}


async def heads_of(session: AsyncSession, ids: Iterable[int]) -> dict[int, CaseHead]:
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    await pipeline.settle(session)  # an ORM query: after the writes in flight
    query = select(CaseHead).where(among(session, col(CaseHead.case_id), wanted))
    found = await session.exec(query.execution_options(populate_existing=True))
    return {h.case_id: h for h in found.all()}


async def senders_of_cases(session: AsyncSession, ids: Iterable[int]) -> dict[int, set[str]]:
    """From addresses of the letters that opened or joined each case as the complainant's."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    c = INBOUND.c
    query = (
        sa.select(c.case_id, c.from_addr)
        .where(
            among(session, c.case_id, wanted),
            c.kind.in_(["appeal", "complaint", "dispute", "reply"]),
            c.from_addr.is_not(None),
        )
        .distinct()
    )
    found: dict[int, set[str]] = {}
    for cid, addr in (await (await _conn(session)).execute(query)).all():
        if addr:
            found.setdefault(cid, set()).add(addr)
    return found


async def contact_emails(session: AsyncSession, ids: Iterable[int]) -> dict[int, str]:
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    query = sa.select(CONTACTS.c.id, CONTACTS.c.email).where(among(session, CONTACTS.c.id, wanted))
    rows = (await (await _conn(session)).execute(query)).all()
    return {cid: email for cid, email in rows if email}


async def automatic_answers(
    session: AsyncSession, addresses: Iterable[str], since: datetime
) -> dict[str, int]:
    """How many automatic e-mails were queued to each address since then (by its indexed key)."""
    keys = {address_key(a): a for a in addresses}
    if not keys:
        return {}
    c = OUTBOX.c
    query = (
        sa.select(c.auto_reply_key, sa.func.count())
        .where(among(session, c.auto_reply_key, list(keys)), c.created_at >= since)
        .group_by(c.auto_reply_key)
    )
    counts: dict[str, int] = {k: n for k, n in (await (await _conn(session)).execute(query)).all()}
    return {address: int(counts.get(key, 0)) for key, address in keys.items()}


async def outcome_windows(
    session: AsyncSession, emails: Iterable[str], first: date, last: date, closed_by: str
) -> list[Any]:
    """The outcome windows (deadline rows closed by `closed_by`) of the complainants `emails`
    that overlap [first, last]: email, ref, rule_id, due_on, clause, start_on, by due date."""
    wanted = list(dict.fromkeys(emails))
    if not wanted:
        return []
    d, c = DEADLINES.c, CASES.c
    query = (
        sa.select(c.complainant_email, c.ref, d.rule_id, d.due_on, d.clause, d.start_on)
        .join(CASES, c.id == d.case_id)
        .where(among(session, c.complainant_email, wanted), d.closed_by == closed_by)
        .where(d.start_on <= last, d.due_on >= first)
        .order_by(d.due_on)
    )
    return list((await (await _conn(session)).execute(query)).all())


async def latest_in_groups(
    session: AsyncSession, groups: Iterable[str], since: datetime
) -> dict[str, Any]:
    """The newest row of each coalescing group due (or sent) at or after `since`: id,
    coalesce_key, coalesced, status, next_attempt_at — locked until commit (PostgreSQL; on
    SQLite the batch holds the write lock already)."""
    wanted = list(dict.fromkeys(groups))
    if not wanted:
        return {}
    c = OUTBOX.c
    newest = (
        sa.select(sa.func.max(c.id))
        .where(among(session, c.coalesce_key, wanted), c.next_attempt_at >= since)
        .group_by(c.coalesce_key)
    )
    query = (
        sa.select(c.id, c.coalesce_key, c.coalesced, c.status, c.next_attempt_at)
        .where(c.id.in_(newest))
        .with_for_update()  # their counts are this transaction's to raise
    )
    return {row.coalesce_key: row for row in (await (await _conn(session)).execute(query)).all()}


async def outbox_keys_taken(session: AsyncSession, keys: Iterable[str]) -> set[str]:
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return set()
    query = sa.select(OUTBOX.c.idempotency_key).where(
        among(session, OUTBOX.c.idempotency_key, wanted)
    )
    return set((await (await _conn(session)).execute(query)).scalars().all())


async def inbound_keys_taken(session: AsyncSession, keys: Iterable[str]) -> set[str]:
    """The letters' byte keys already stored."""
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return set()
    query = sa.select(INBOUND.c.message_key).where(among(session, INBOUND.c.message_key, wanted))
    return set((await (await _conn(session)).execute(query)).scalars().all())


__all__ = [
    "CASES",
    "CONTACTS",
    "DEADLINES",
    "EVENTS",
    "HEADS",
    "INBOUND",
    "MESSAGE_IDS",
    "OUTBOX",
    "automatic_answers",
    "case_ids_by_ref",
    "cases_by_id",
    "cases_by_message_key",
    "cases_by_sent_message_id",
    "contact_emails",
    "heads_of",
    "inbound_keys_taken",
    "last_events",
    "latest_in_groups",
    "lock_letters",
    "outbox_keys_taken",
    "outcome_windows",
    "refs_taken",
    "senders_of_cases",
    "stored_fields",
]
