"""Set-based queries and writes for a batch of letters (bot.services.inbound_mail.batch).

A batch is a chunk of stored letters acted upon together: one lock statement for them all, one
query per kind of lookup (the cases their threading headers name, the senders' automatic
answers of the last hour, …) and one multi-row statement per table written. Core statements
only: nothing here reads back what it writes, and nothing goes through the ORM's unit of work.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
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
    OutboxStatus,
)
from storage.repo.outbox import address_key
from storage.sql import dialect_name, table_of

INBOUND = table_of(InboundEmail)
CASES = table_of(Case)
EVENTS = table_of(CaseEvent)
HEADS = table_of(CaseHead)
MESSAGE_IDS = table_of(CaseMessageId)
DEADLINES = table_of(Deadline)
OUTBOX = table_of(OutboxMessage)
CONTACTS = table_of(Contact)


async def _conn(session: AsyncSession) -> AsyncConnection:
    return await session.connection()


async def lock_letters(session: AsyncSession, ids: Sequence[int]) -> list[Any]:
    """The stored letters `ids`, locked until commit (PostgreSQL; SQLite has one writer), in id
    order: id, status, raw, problems, message_id, message_key, internal_date."""
    c = INBOUND.c
    query = (
        sa.select(c.id, c.status, c.raw, c.problems, c.message_id, c.message_key, c.internal_date)
        .where(c.id.in_(list(ids)))
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
    query = sa.select(c.message_id_key, c.case_id).where(c.message_id_key.in_(wanted))
    return {k: cid for k, cid in (await (await _conn(session)).execute(query)).all()}


async def cases_by_sent_message_id(session: AsyncSession, mids: Iterable[str]) -> dict[str, int]:
    """case_id of our sent letters with these Message-IDs (a staff notice outside the thread)."""
    wanted = list(dict.fromkeys(mids))
    if not wanted:
        return {}
    c = OUTBOX.c
    query = sa.select(c.email_message_id, c.case_id).where(
        c.email_message_id.in_(wanted), c.case_id.is_not(None)
    )
    found: dict[str, int] = {}
    for mid, cid in (await (await _conn(session)).execute(query)).all():
        found.setdefault(mid, cid)
    return found


async def case_ids_by_ref(session: AsyncSession, refs: Iterable[str]) -> dict[str, int]:
    wanted = list(dict.fromkeys(refs))
    if not wanted:
        return {}
    query = sa.select(CASES.c.ref, CASES.c.id).where(CASES.c.ref.in_(wanted))
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
    query = select(Case).where(col(Case.id).in_(wanted))
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
    query = sa.select(*columns).where(CASES.c.id.in_(wanted)).with_for_update()
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
        .where(c.case_id.in_(wanted))
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
    query = select(CaseHead).where(col(CaseHead.case_id).in_(wanted))
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
            c.case_id.in_(wanted),
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
    query = sa.select(CONTACTS.c.id, CONTACTS.c.email).where(CONTACTS.c.id.in_(wanted))
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
        .where(c.auto_reply_key.in_(list(keys)), c.created_at >= since)
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
        .where(c.complainant_email.in_(wanted), d.closed_by == closed_by)
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
        .where(c.coalesce_key.in_(wanted), c.next_attempt_at >= since)
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
    query = sa.select(OUTBOX.c.idempotency_key).where(OUTBOX.c.idempotency_key.in_(wanted))
    return set((await (await _conn(session)).execute(query)).scalars().all())


async def inbound_keys_taken(session: AsyncSession, keys: Iterable[str]) -> set[str]:
    """The letters' byte keys already stored."""
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return set()
    query = sa.select(INBOUND.c.message_key).where(INBOUND.c.message_key.in_(wanted))
    return set((await (await _conn(session)).execute(query)).scalars().all())


def outbox_row(
    *,
    channel: str,
    recipient: str,
    payload: Mapping[str, Any],
    key: str,
    now: datetime,
    lane: str,
    case_id: int | None = None,
    not_before: datetime | None = None,
    coalesce_key: str | None = None,
    coalesced: int = 0,
    email_message_id: str | None = None,
) -> dict[str, Any]:
    """An outbox row written complete (what storage.repo.outbox.enqueue writes, and the
    Message-ID it would set after)."""
    auto = channel == "email" and bool(payload.get("auto_reply"))
    return {
        "idempotency_key": key,
        "channel": channel,
        "recipient": recipient,
        "payload": dict(payload),
        "lane": lane,
        "coalesce_key": coalesce_key,
        "coalesced": coalesced,
        "status": OutboxStatus.QUEUED.value,
        "attempts": 0,
        "next_attempt_at": not_before or now,
        "case_id": case_id,
        "created_at": now,
        "email_message_id": email_message_id,
        "auto_reply_key": address_key(recipient) if auto else None,
    }


def _insert(session: AsyncSession, table: sa.Table) -> Any:
    return (pg_insert if dialect_name(session) == "postgresql" else sqlite_insert)(table)


async def insert_rows(
    session: AsyncSession,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    skip_conflicts: bool = False,
) -> None:
    """INSERT `rows` (all with the same keys) in one executemany, ON CONFLICT DO NOTHING if
    asked: the statement compiled once, each value through its column type's own bind
    processor, the rows handed to the driver's executemany as they are."""
    if not rows:
        return
    keys = tuple(rows[0])
    stmt = _insert(session, table)
    if skip_conflicts:
        stmt = stmt.on_conflict_do_nothing()
    conn = await _conn(session)
    sql, names, processors = _compiled(
        conn, ("insert", table.name, keys, skip_conflicts), stmt, keys
    )
    await conn.exec_driver_sql(sql, _params(rows, names, processors))


_COMPILED: dict[tuple[Any, ...], tuple[str, list[str], list[Any]]] = {}


def _compiled(
    conn: AsyncConnection, key: tuple[Any, ...], stmt: Any, keys: Sequence[str]
) -> tuple[str, list[str], list[Any]]:
    """The SQL of `stmt` for the connection's dialect, its parameters' names in order, and
    each one's bind processor (None: passed as it is)."""
    dialect = conn.dialect
    full = (dialect.name, *key)
    if full not in _COMPILED:
        compiled = stmt.compile(dialect=dialect, column_keys=list(keys))
        names = list(compiled.positiontup or [])
        processors = []
        for name in names:
            type_ = compiled.binds[name].type
            processors.append(type_.dialect_impl(dialect).bind_processor(dialect))
        _COMPILED[full] = (str(compiled), names, processors)
    return _COMPILED[full]


def _params(
    rows: Sequence[Mapping[str, Any]], names: Sequence[str], processors: Sequence[Any]
) -> list[tuple[Any, ...]]:
    """Each row's values in the statement's order, through their bind processors; a value the
    row before held too (the batch's one `now`) is converted once."""
    converted = [(i, p) for i, p in enumerate(processors) if p is not None]
    values = operator.itemgetter(*names)
    last: dict[int, tuple[Any, Any]] = {}
    out = []
    for row in rows:
        found = values(row)
        params = list(found) if len(names) > 1 else [found]
        for i, process in converted:
            value = params[i]
            if value is None:
                continue
            seen = last.get(i)
            if seen is not None and seen[0] is value:
                params[i] = seen[1]
            else:
                params[i] = process(value)
                last[i] = (value, params[i])
        out.append(tuple(params))
    return out


async def insert_returning_ids(
    session: AsyncSession, table: sa.Table, rows: Sequence[Mapping[str, Any]], key: str
) -> dict[Any, int]:
    """INSERT `rows` (multi-row statements, SQLAlchemy's insertmanyvalues); the new id of each
    row by its (unique) column `key`."""
    if not rows:
        return {}
    stmt = _insert(session, table).returning(table.c[key], table.c.id)
    result = await (await _conn(session)).execute(stmt, [dict(r) for r in rows])
    return {k: i for k, i in result.all()}


async def insert_new(
    session: AsyncSession, table: sa.Table, rows: Sequence[Mapping[str, Any]], key: str
) -> dict[Any, int]:
    """INSERT … ON CONFLICT DO NOTHING of `rows`; the id of each row inserted, by its column
    `key` (a row that met a unique key already stored is left out)."""
    if not rows:
        return {}
    stmt = _insert(session, table).on_conflict_do_nothing().returning(table.c[key], table.c.id)
    result = await (await _conn(session)).execute(stmt, [dict(r) for r in rows])
    return {k: i for k, i in result.all()}


async def update_rows(
    session: AsyncSession, table: sa.Table, rows: Sequence[Mapping[str, Any]], key: str = "id"
) -> None:
    """UPDATE each row by its `key` (one executemany per set of columns the rows set, compiled
    once, as `insert_rows`)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        cols = tuple(sorted(k for k in row if k != key))
        groups.setdefault(cols, []).append({f"b_{k}": v for k, v in row.items()})
    conn = await _conn(session)
    for cols, params in groups.items():
        stmt = (
            sa.update(table)
            .where(table.c[key] == sa.bindparam(f"b_{key}", type_=table.c[key].type))
            .values({c: sa.bindparam(f"b_{c}", type_=table.c[c].type) for c in cols})
        )
        sql, names, processors = _compiled(conn, ("update", table.name, key, cols), stmt, ())
        await conn.exec_driver_sql(sql, _params(params, names, processors))


__all__ = [
    "CASES",
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
    "insert_new",
    "insert_returning_ids",
    "insert_rows",
    "last_events",
    "latest_in_groups",
    "lock_letters",
    "outbox_keys_taken",
    "outbox_row",
    "outcome_windows",
    "refs_taken",
    "senders_of_cases",
    "stored_fields",
    "update_rows",
]
