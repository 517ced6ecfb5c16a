"""The outbox: what is to be sent, written in the transaction that decided to send it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import select
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
