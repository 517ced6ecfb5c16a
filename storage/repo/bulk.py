"""Set-based writes for a batch of letters (bot.services.inbound_mail.batch), and the queries of
storage.repo.batch_reads, re-exported.

A batch is a chunk of stored letters acted upon together: one lock statement for them all, one
query per kind of lookup (the cases their threading headers name, the senders' automatic
answers of the last hour, …) and one multi-row statement per table written. Core statements
only: nothing here reads back what it writes, and nothing goes through the ORM's unit of work.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import (
    OutboxStatus,
)
from storage.repo import pipeline
from storage.repo.batch_reads import (
    CASES,
    DEADLINES,
    EVENTS,
    HEADS,
    INBOUND,
    MESSAGE_IDS,
    OUTBOX,
    _conn,
    automatic_answers,
    case_ids_by_ref,
    cases_by_id,
    cases_by_message_key,
    cases_by_sent_message_id,
    contact_emails,
    heads_of,
    inbound_keys_taken,
    last_events,
    latest_in_groups,
    lock_letters,
    outbox_keys_taken,
    outcome_windows,
    refs_taken,
    senders_of_cases,
    stored_fields,
)
from storage.repo.outbox import address_key
from storage.repo.pipeline import pipelined, settle
from storage.sql import dialect_name, unsized


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
    conn = await session.connection()  # not _conn: the writes in flight may go on
    sql, names, processors = _compiled(
        conn, ("insert", table.name, keys, skip_conflicts), stmt, keys
    )
    params = _params(rows, names, processors)
    await pipeline.send(session, partial(conn.exec_driver_sql, sql, params))


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
    return await _returning(session, table, rows, key, skip_conflicts=False)


async def insert_new(
    session: AsyncSession, table: sa.Table, rows: Sequence[Mapping[str, Any]], key: str
) -> dict[Any, int]:
    """INSERT … ON CONFLICT DO NOTHING of `rows`; the id of each row inserted, by its column
    `key` (a row that met a unique key already stored is left out)."""
    return await _returning(session, table, rows, key, skip_conflicts=True)


_MAX_PARAMS = 30_000  # below SQLite's 32,766 and PostgreSQL's 32,767 parameters a statement
_MULTI: dict[tuple[Any, ...], str] = {}


async def _returning(
    session: AsyncSession,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    key: str,
    *,
    skip_conflicts: bool,
) -> dict[Any, int]:
    """Multi-row INSERT … RETURNING key, id, the values through the one-row statement's bind
    processors (compiled once, as `insert_rows`): on PostgreSQL from one array per column; on
    SQLite its VALUES group repeated, in as few statements as the parameter limit allows."""
    if not rows:
        return {}
    keys = tuple(rows[0])
    stmt = _insert(session, table)
    if skip_conflicts:
        stmt = stmt.on_conflict_do_nothing()
    conn = await _conn(session)
    base = ("insert", table.name, keys, skip_conflicts)
    sql, names, processors = _compiled(conn, base, stmt, keys)
    params = _params(rows, names, processors)
    found: dict[Any, int] = {}
    if conn.dialect.name == "postgresql":  # one array a column: one text, prepared once
        unnest = _unnest_sql(conn, table, base, names, key, skip_conflicts)
        result = await conn.exec_driver_sql(unnest, tuple(map(list, zip(*params, strict=True))))
        found.update(cast(list[tuple[Any, int]], result.all()))
        return found
    per = max(1, _MAX_PARAMS // max(1, len(names)))
    for start in range(0, len(params), per):
        part = params[start : start + per]
        multi = _multi_sql(conn, table, base, sql, key, len(part), skip_conflicts)
        flat = tuple(v for values in part for v in values)
        result = await conn.exec_driver_sql(multi, flat)
        found.update(cast(list[tuple[Any, int]], result.all()))
    return found


def _unnest_sql(
    conn: AsyncConnection,
    table: sa.Table,
    base: tuple[Any, ...],
    names: Sequence[str],
    key: str,
    skip_conflicts: bool,
) -> str:
    """INSERT … SELECT * FROM unnest($1::type[], …) RETURNING key, id (PostgreSQL): the rows
    as one array per column, whatever their number."""
    full = (conn.dialect.name, *base, key, "unnest")
    found = _MULTI.get(full)
    if found is None:
        dialect, prep = conn.dialect, conn.dialect.identifier_preparer
        columns = ", ".join(prep.quote(name) for name in names)
        arrays = ", ".join(
            f"${n}::{unsized(table.c[name].type).compile(dialect=dialect)}[]"
            for n, name in enumerate(names, 1)
        )
        tail = " ON CONFLICT DO NOTHING" if skip_conflicts else ""
        returning = f" RETURNING {prep.quote(key)}, {prep.quote('id')}"
        found = _MULTI[full] = (
            f"INSERT INTO {prep.format_table(table)} ({columns}) "
            f"SELECT * FROM unnest({arrays}){tail}{returning}"
        )
    return found


def _renumbered(group: str, offset: int) -> str:
    """`group`'s $n placeholders moved on by `offset`."""

    def move(m: re.Match[str]) -> str:
        return f"${int(m[1]) + offset}"

    return re.sub(r"\$(\d+)", move, group)


def _multi_sql(
    conn: AsyncConnection,
    table: sa.Table,
    base: tuple[Any, ...],
    sql: str,
    key: str,
    n: int,
    skip_conflicts: bool,
) -> str:
    full = (conn.dialect.name, *base, key, n)
    found = _MULTI.get(full)
    if found is None:
        if " RETURNING " in sql:  # the dialect's own (PostgreSQL returns the new id)
            sql = sql[: sql.rindex(" RETURNING ")]
        tail = " ON CONFLICT DO NOTHING" if skip_conflicts else ""
        assert sql.endswith(tail), sql
        at = sql.index(" VALUES (") + len(" VALUES ")
        head, group = sql[:at], sql[at : len(sql) - len(tail)]
        count = group.count("$")  # numeric placeholders ($1 …), or qmark ones (no renumbering)
        groups = [_renumbered(group, i * count) if count else group for i in range(n)]
        prep = conn.dialect.identifier_preparer
        returning = f" RETURNING {prep.quote(key)}, {prep.quote('id')}"
        found = _MULTI[full] = head + ", ".join(groups) + tail + returning
    return found


async def update_rows(
    session: AsyncSession, table: sa.Table, rows: Sequence[Mapping[str, Any]], key: str = "id"
) -> None:
    """UPDATE each row by its `key` (one executemany per set of columns the rows set, compiled
    once, as `insert_rows`)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        cols = tuple(sorted(k for k in row if k != key))
        groups.setdefault(cols, []).append({f"b_{k}": v for k, v in row.items()})
    conn = await session.connection()  # not _conn: the writes in flight may go on
    for cols, group in groups.items():
        stmt = (
            sa.update(table)
            .where(table.c[key] == sa.bindparam(f"b_{key}", type_=table.c[key].type))
            .values({c: sa.bindparam(f"b_{c}", type_=table.c[c].type) for c in cols})
        )
        sql, names, processors = _compiled(conn, ("update", table.name, key, cols), stmt, ())
        params = _params(group, names, processors)
        await pipeline.send(session, partial(conn.exec_driver_sql, sql, params))


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
    "pipelined",
    "refs_taken",
    "senders_of_cases",
    "settle",
    "stored_fields",
    "update_rows",
]
