"""The outbox: what is to be sent, written in the transaction that decided to send it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Channel, OutboxMessage, OutboxStatus, utcnow
from storage.sql import dialect_name

MAIN_LANE = "main"
STAFF_LANE = "staff"


async def enqueue(
    session: AsyncSession,
    *,
    channel: Channel | str,
    recipient: str,
    payload: Mapping[str, Any],
    idempotency_key: str,
    case_id: int | None = None,
    not_before: datetime | None = None,
    now: datetime | None = None,
    lane: str = MAIN_LANE,
    coalesce_key: str | None = None,
) -> OutboxMessage:
    """Queue a message once per `idempotency_key`; a repeat returns the row already queued.

    Nothing is committed here: the message is sent only if the caller's transaction commits.
    `now` (the caller's clock) stamps `created_at`; `not_before` delays the first attempt.
    """
    channel = Channel(channel)  # refuses an unknown channel before it reaches the table
    now = now or utcnow()
    values = {
        "idempotency_key": idempotency_key,
        "channel": channel.value,
        "recipient": recipient,
        "payload": dict(payload),
        "lane": lane,
        "coalesce_key": coalesce_key,
        "coalesced": 0,
        "status": OutboxStatus.QUEUED.value,
        "attempts": 0,
        "next_attempt_at": not_before or now,
        "case_id": case_id,
        "created_at": now,
    }
    # INSERT … ON CONFLICT DO NOTHING rather than SELECT-then-INSERT: two concurrent
    # transactions with the same key cannot both insert, and neither fails.
    insert = pg_insert if dialect_name(session) == "postgresql" else sqlite_insert
    stmt = (
        insert(OutboxMessage)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
    )
    await session.exec(stmt)
    query = select(OutboxMessage).where(OutboxMessage.idempotency_key == idempotency_key)
    return (await session.exec(query)).one()


async def latest_in_group(
    session: AsyncSession, coalesce_key: str, since: datetime
) -> OutboxMessage | None:
    """The newest row of a coalescing group due (or sent) at or after `since`."""
    query = (
        select(OutboxMessage)
        .where(col(OutboxMessage.coalesce_key) == coalesce_key)
        .where(col(OutboxMessage.next_attempt_at) >= since)
        .order_by(col(OutboxMessage.id).desc())
        .limit(1)
    )
    return (await session.exec(query)).first()


async def by_key(session: AsyncSession, idempotency_key: str) -> OutboxMessage | None:
    query = select(OutboxMessage).where(OutboxMessage.idempotency_key == idempotency_key)
    return (await session.exec(query)).first()


async def count_in(
    session: AsyncSession, row_id: int, payload: Callable[[int], Mapping[str, Any]]
) -> int:
    """One more alert folded into a queued summary row; its payload re-rendered for the new
    count. The row is locked by the UPDATE until the caller commits: concurrent folds queue."""
    stmt = (
        update(OutboxMessage)
        .where(col(OutboxMessage.id) == row_id)
        .values(coalesced=col(OutboxMessage.coalesced) + 1)
        .returning(col(OutboxMessage.coalesced))
        .execution_options(synchronize_session=False)
    )
    count = int((await session.exec(stmt)).scalar_one())
    await session.exec(
        update(OutboxMessage)
        .where(col(OutboxMessage.id) == row_id)
        .values(payload=dict(payload(count)))
        .execution_options(synchronize_session=False)
    )
    return count
