"""Queries of the deadline scan: open case deadlines, alerts already sent, provisional dates.

The due scan reads open rows up to a horizon through the partial index `ix_deadline_open_due_on`,
so its cost follows what is due, not the table's history. An alert is recorded with
INSERT … ON CONFLICT DO NOTHING on `alert_sent (deadline_id, kind)` in the transaction that queues
its messages: of two instances only the one whose insert wins sends.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import and_, text, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import Select

from bot.domain.alerts import OpenDeadline
from storage.models import AlertSent, Case, Deadline
from storage.sql import dialect_name, table_of

_OPEN_CASE = and_(col(Deadline.closed_at).is_(None), col(Deadline.case_id).is_not(None))


# Only the columns the scan needs, as plain rows: no ORM objects for what is read every minute.
_COLUMNS = (
    col(Deadline.id),
    col(Deadline.case_id),
    col(Deadline.due_on),
    col(Deadline.rule_id),
    col(Deadline.clause),
    col(Deadline.provisional),
)


def _scan() -> Select[int, int, date, str, str, bool]:
    # Select itself, as sqlmodel's select() does for several columns: select() is typed for four
    # at most. case_id is not null in the scan (`_OPEN_CASE`).
    return Select(*_COLUMNS)


def _case_rows() -> Select[int, str, str, str | None]:
    return Select(col(Case.id), col(Case.ref), col(Case.kind), col(Case.assignee))  # id: not null


async def open_case_deadlines(
    session: AsyncSession, *, due_until: date, provisional_too: bool = False
) -> list[OpenDeadline]:
    """Open case deadlines due on or before `due_until` (overdue included), earliest first.

    `provisional_too` adds provisional ones due later (the digest lists them all).
    """
    if dialect_name(session) == "postgresql":
        # The planner cannot estimate how few open rows lie before a date (most rows before it
        # are closed history): it guesses tens of thousands and starts parallel workers, whose
        # start-up costs 15–20 ms for a scan that takes well under one.
        await session.exec(text("SET LOCAL max_parallel_workers_per_gather = 0"))  # type: ignore[call-overload]
    stmt = (
        _scan()
        .where(_OPEN_CASE, col(Deadline.due_on) <= due_until)
        .order_by(col(Deadline.due_on), col(Deadline.id))
    )
    conn = await session.connection()
    rows = list((await conn.execute(stmt)).all())
    if provisional_too:
        later = (
            _scan()
            .where(
                _OPEN_CASE, col(Deadline.due_on) > due_until, col(Deadline.provisional).is_(True)
            )
            .order_by(col(Deadline.due_on), col(Deadline.id))
        )
        rows += (await conn.execute(later)).all()
    # The cases by primary key in a second query, not a join: with the same misestimate the
    # planner would hash the whole case table.
    return await _with_cases(session, rows)


_CHUNK = 500  # ids per IN list on SQLite (bounded: its variable limit)
_IDS = sa.bindparam("ids", type_=ARRAY(sa.Integer))
_CASE = table_of(Case)
_SENT = table_of(AlertSent)
# On PostgreSQL one statement per lookup, the ids as one array parameter (`= ANY(:ids)`): one
# prepared statement whatever the count, no 500-element IN lists compiled and sent per chunk.
_CASES_ANY = sa.select(_CASE.c.id, _CASE.c.ref, _CASE.c.kind, _CASE.c.assignee).where(
    _CASE.c.id == sa.any_(_IDS)
)
_SENT_ANY = sa.select(_SENT.c.deadline_id, _SENT.c.kind).where(_SENT.c.deadline_id == sa.any_(_IDS))


_DUE_DATES = (
    sa.select(col(Deadline.due_on))
    .distinct()
    .where(_OPEN_CASE, col(Deadline.due_on) <= sa.bindparam("until"))
    .order_by(col(Deadline.due_on))
)
# Open deadlines with at least one of their date's alert kinds not recorded yet: the kinds come
# as two parallel arrays (due date, kind), so in the steady state — everything due already
# sent — the database answers with no rows and the scan costs two index scans.
_UNSENT_PG = sa.text(
    """
    SELECT DISTINCT d.id, d.case_id, d.due_on, d.rule_id, d.clause, d.provisional
    FROM deadline d
    JOIN unnest(CAST(:dates AS date[]), CAST(:kinds AS varchar[])) AS k(due_on, kind)
      ON d.due_on = k.due_on
    WHERE d.closed_at IS NULL AND d.case_id IS NOT NULL AND d.due_on <= :until
      AND NOT EXISTS (SELECT 1 FROM alert_sent a WHERE a.deadline_id = d.id AND a.kind = k.kind)
    ORDER BY d.due_on, d.id
    """
).columns(
    *(
        table_of(Deadline).c[c]
        for c in ("id", "case_id", "due_on", "rule_id", "clause", "provisional")
    )
)


async def open_due_dates(session: AsyncSession, *, due_until: date) -> list[date]:
    """The distinct due dates of open case deadlines up to `due_until` (overdue included)."""
    await _serial_plan(session)
    conn = await session.connection()
    return list((await conn.execute(_DUE_DATES, {"until": due_until})).scalars())


async def with_unsent_alerts(
    session: AsyncSession, *, due_until: date, kinds: dict[date, tuple[str, ...]]
) -> list[OpenDeadline]:
    """Open case deadlines due on or before `due_until` with at least one of `kinds[due_on]`
    not in alert_sent, earliest first."""
    if not kinds:
        return []
    conn = await session.connection()
    if conn.dialect.name != "postgresql":
        found = await open_case_deadlines(session, due_until=due_until)
        sent = await sent_alerts(session, (d.id for d in found if d.due_on in kinds))
        return [d for d in found if any((d.id, k) not in sent for k in kinds.get(d.due_on, ()))]
    await _serial_plan(session)
    dates = [day for day, ks in kinds.items() for _ in ks]
    names = [k for ks in kinds.values() for k in ks]
    params = {"dates": dates, "kinds": names, "until": due_until}
    rows = list((await conn.execute(_UNSENT_PG, params)).all())
    return await _with_cases(session, rows)


async def _serial_plan(session: AsyncSession) -> None:
    if dialect_name(session) == "postgresql":
        # See open_case_deadlines: no parallel workers for a scan that takes well under 1 ms.
        await session.exec(text("SET LOCAL max_parallel_workers_per_gather = 0"))  # type: ignore[call-overload]


async def _with_cases(session: AsyncSession, rows: list[Any]) -> list[OpenDeadline]:
    cases = await _cases(session, {r[1] for r in rows})
    out = []
    for id_, case_id, due_on, rule_id, clause, provisional in rows:
        if case_id in cases:
            ref, kind, assignee = cases[case_id]
            out.append(OpenDeadline(id_, due_on, rule_id, clause, provisional, ref, kind, assignee))
    return out


async def _by_ids(
    session: AsyncSession, ids: Iterable[int], any_: sa.Select[Any], columns: sa.Select[Any]
) -> list[tuple[Any, ...]]:
    """Rows of `columns` whose first column is one of `ids`: Core rows, no ORM objects."""
    ordered = sorted(set(ids))
    if not ordered:
        return []
    conn = await session.connection()
    if conn.dialect.name == "postgresql":
        return [tuple(r) for r in (await conn.execute(any_, {"ids": ordered})).all()]
    key = columns.selected_columns[0]
    rows: list[tuple[Any, ...]] = []
    for i in range(0, len(ordered), _CHUNK):  # bounded IN lists
        chunk = columns.where(key.in_(ordered[i : i + _CHUNK]))
        rows += [tuple(r) for r in (await conn.execute(chunk)).all()]
    return rows


async def _cases(session: AsyncSession, ids: set[int]) -> dict[int, tuple[str, str, str | None]]:
    columns = sa.select(_CASE.c.id, _CASE.c.ref, _CASE.c.kind, _CASE.c.assignee)
    return {
        id_: (ref, kind, assignee)
        for id_, ref, kind, assignee in await _by_ids(session, ids, _CASES_ANY, columns)
    }


async def sent_alerts(session: AsyncSession, deadline_ids: Iterable[int]) -> set[tuple[int, str]]:
    """(deadline_id, kind) of the alerts already recorded for these deadlines."""
    columns = sa.select(_SENT.c.deadline_id, _SENT.c.kind)
    return {(d, k) for d, k in await _by_ids(session, deadline_ids, _SENT_ANY, columns)}


async def record_alert(session: AsyncSession, deadline_id: int, kind: str, sent_on: date) -> bool:
    """Record an alert; False when it was already recorded (by us or another instance)."""
    insert = pg_insert if dialect_name(session) == "postgresql" else sqlite_insert
    stmt = (
        insert(AlertSent)
        .values(deadline_id=deadline_id, kind=kind, sent_on=sent_on)
        .on_conflict_do_nothing(index_elements=["deadline_id", "kind"])
        .returning(col(AlertSent.id))
    )
    return (await session.exec(stmt)).first() is not None


async def open_provisional(session: AsyncSession) -> list[tuple[Deadline, Case | None]]:
    """Open deadlines computed on a guessed calendar, with their case (None for certificates)."""
    stmt = (
        select(Deadline, Case)
        .join(Case, col(Case.id) == Deadline.case_id, isouter=True)
        .where(col(Deadline.closed_at).is_(None), col(Deadline.provisional).is_(True))
        .order_by(col(Deadline.due_on), col(Deadline.id))
    )
    return [(d, c) for d, c in (await session.exec(stmt)).all()]


async def move_deadline(
    session: AsyncSession, deadline_id: int, due_on: date, provisional: bool
) -> None:
    row = await session.get(Deadline, deadline_id)
    if row is None:
        return
    row.due_on = due_on
    row.provisional = provisional
    session.add(row)


async def close_deadline(
    session: AsyncSession, deadline_id: int, *, now: datetime, by: str
) -> None:
    row = await session.get(Deadline, deadline_id)
    if row is not None and row.closed_at is None:
        row.closed_at, row.closed_by = now, by
        session.add(row)


async def alerts_for(session: AsyncSession, pairs: Iterable[tuple[int, str]]) -> int:
    """How many of these (deadline_id, kind) alerts are recorded (tests and the CLI)."""
    keys = list(pairs)
    if not keys:
        return 0
    stmt = select(AlertSent.id).where(tuple_(AlertSent.deadline_id, AlertSent.kind).in_(keys))
    return len((await session.exec(stmt)).all())
