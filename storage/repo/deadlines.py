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

from bot.domain.alerts import OpenDeadline, ScanWindow
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


# Open deadlines with an alert of today not recorded yet, with their case and the kinds recorded
# for them — one statement, one round trip. The kinds come from `ScanWindow`: two parallel arrays
# (due date, kind) for the few dates near today, and for everything older (past its escalation
# day) one probe for today's repeat (`ScanWindow.overdue_mark`). In the steady state — everything
# due already sent — the answer is empty and costs one index probe per due deadline, whatever the
# size of alert_sent (OFFSET 0 keeps each NOT EXISTS a probe, not a hash of the whole table). The
# case by its primary key in a LATERAL that is not flattened (OFFSET 0): the planner misestimates
# how many open rows come back and would otherwise hash the whole case table.
_UNSENT_PG = """
WITH k(due_on, kind) AS (SELECT * FROM unnest($1::date[], $2::varchar[])),
unsent AS MATERIALIZED (
  SELECT d.id, d.case_id, d.due_on, d.rule_id, d.clause, d.provisional
  FROM deadline d JOIN k ON d.due_on = k.due_on
  WHERE d.closed_at IS NULL AND d.case_id IS NOT NULL AND d.due_on >= $3 AND d.due_on <= $4
    AND NOT EXISTS (
      SELECT 1 FROM alert_sent a WHERE a.deadline_id = d.id AND a.kind = k.kind OFFSET 0)
  UNION ALL
  SELECT d.id, d.case_id, d.due_on, d.rule_id, d.clause, d.provisional
  FROM deadline d
  WHERE d.closed_at IS NULL AND d.case_id IS NOT NULL AND d.due_on < $3
    AND NOT EXISTS (
      SELECT 1 FROM alert_sent a WHERE a.deadline_id = d.id AND a.kind = $5 OFFSET 0)
)
SELECT u.id, u.due_on, u.rule_id, u.clause, u.provisional, c.ref, c.kind, c.assignee,
  ARRAY(SELECT a.kind FROM alert_sent a WHERE a.deadline_id = u.id AND a.kind = ANY($6::varchar[]))
FROM unsent u
JOIN LATERAL (SELECT ref, kind, assignee FROM case_file WHERE id = u.case_id OFFSET 0) c ON true
ORDER BY u.due_on, u.id
"""
# The planner cannot estimate how few open rows lie before a date (most rows before it are closed
# history): it guesses tens of thousands, then starts parallel workers (15–20 ms of start-up) and
# JIT-compiles the plan (250 ms) for a scan of a few milliseconds. Both off on the connection.
_SERIAL = "SET max_parallel_workers_per_gather = 0; SET jit = off"
_SERIAL_LOCAL = "SET LOCAL max_parallel_workers_per_gather = 0; SET LOCAL jit = off"
_SERIAL_MARK = "certdesk_serial_plans"


async def unsent_alerts(
    session: AsyncSession, window: ScanWindow
) -> tuple[list[OpenDeadline], set[tuple[int, str]]]:
    """Open case deadlines with at least one alert kind of `window` not in alert_sent (earliest
    first), and those (deadline_id, kind) pairs.

    On PostgreSQL one statement on the driver connection: plain rows, no ORM or Core result
    plumbing, and no transaction when the session has not begun one (a read needs none).
    """
    conn = await session.connection()
    if conn.dialect.name != "postgresql":
        return await _unsent_in_python(session, window)
    pg: Any = (await conn.get_raw_connection()).driver_connection  # asyncpg.Connection
    if pg.is_in_transaction():
        # A session-wide SET in a transaction is undone by its rollback: for this one only.
        await pg.execute(_SERIAL_LOCAL)
    elif not conn.info.get(_SERIAL_MARK):
        # Once per pooled connection (its record's `info` lives as long as the connection): the
        # bot's queries are all small, none gains from parallel workers.
        await pg.execute(_SERIAL)
        conn.info[_SERIAL_MARK] = True
    dates = [day for day, ks in window.dated.items() for _ in ks]
    names = [k for ks in window.dated.values() for k in ks]
    every = sorted({*names, *window.overdue})
    rows = await pg.fetch(
        _UNSENT_PG, dates, names, window.before, window.until, window.overdue_mark, every
    )
    found: dict[int, OpenDeadline] = {}
    unsent: set[tuple[int, str]] = set()
    for id_, due_on, rule_id, clause, provisional, ref, kind, assignee, sent in rows:
        missing = {(id_, k) for k in window.kinds(due_on) if k not in sent}
        if missing and id_ not in found:  # a date with two kinds comes back twice
            found[id_] = OpenDeadline(
                id_, due_on, rule_id, clause, provisional, ref, kind, assignee
            )
        unsent |= missing
    return list(found.values()), unsent


async def _unsent_in_python(
    session: AsyncSession, window: ScanWindow
) -> tuple[list[OpenDeadline], set[tuple[int, str]]]:
    """SQLite: the open rows up to the horizon, then what was sent of them, compared here."""
    found = [
        d
        for d in await open_case_deadlines(session, due_until=window.until)
        if window.kinds(d.due_on)
    ]
    sent = await sent_alerts(session, (d.id for d in found))
    unsent = {(d.id, k) for d in found for k in window.kinds(d.due_on) if (d.id, k) not in sent}
    return [d for d in found if any((d.id, k) in unsent for k in window.kinds(d.due_on))], unsent


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
